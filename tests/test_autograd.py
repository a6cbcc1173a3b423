"""The autograd contract: accumulation, freeing, grad(), hooks, grad modes, errors, memory."""

from __future__ import annotations

import gc
import resource

import numpy as np
import pytest
from gradcheck import numeric_grad

import tinygan as tg
import tinygan.functions as F


def test_backward_accumulates_across_calls():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 3)


def test_shared_gradient_arrays_are_not_aliased():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()  # Add passes one gradient to both inputs
    a.grad.data += 10
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0])


def test_first_order_sums_never_write_into_shared_gradients():
    """At first order the engine sums a tensor's gradients in place, into an array of its
    own only: here x's three gradients are one shared array (Add hands it to both inputs),
    then a fresh sum, then an in-place add; the caller's gradient, the intermediate node's
    and the other leaf's stay untouched."""
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([5.0, 7.0], requires_grad=True)
    g = tg.tensor([1.0, 10.0])
    before = g.numpy().copy()
    h = x + w  # an intermediate node that receives the shared gradient twice
    (h + h + x).backward(g)
    np.testing.assert_array_equal(g.numpy(), before)
    np.testing.assert_array_equal(x.grad.numpy(), 3 * before)
    np.testing.assert_array_equal(w.grad.numpy(), 2 * before)
    x.grad.data += 100  # each leaf's .grad is its own array
    np.testing.assert_array_equal(w.grad.numpy(), 2 * before)
    y = tg.tensor([3.0, 4.0], requires_grad=True)
    (y * 1 + y * 2 + y * 4).sum().backward()  # three gradients, two sums
    np.testing.assert_array_equal(y.grad.numpy(), [7.0, 7.0])


class _HandsOn(tg.Function):
    """y = x; the backward hands x the array ``make(dL/dy)`` and notes its id (a reference
    would be a holder of its own)."""

    def forward(self, x, make):
        self.make = make
        return x.copy()

    def backward(self, grad):
        handed = self.make(grad.data)
        self.handed_id = id(handed)
        return tg.Tensor._wrap(handed)


def _read_only(array):
    array.flags.writeable = False
    return array


def _leaf_grad_through(make, hook=None):
    """(x.grad's array, the id of the array the backward handed on, dL/dy's array) after
    y = _HandsOn(x, make), y.backward(dL/dy)."""
    x = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    if hook is not None:
        x.register_hook(hook)
    g = tg.tensor(np.ones((2, 3)))
    y = _HandsOn.apply(x, make=make)
    node = y._node
    y.backward(g)
    return x.grad.data, node.handed_id, g.data


def test_a_gradient_nothing_else_holds_becomes_the_leaf_grad_as_it_is():
    """No copy where nothing else can reach the array that arrives at a leaf: a fresh
    array, or a view over the whole of a fresh array (most ops return a reshaped result)."""
    got, handed, _ = _leaf_grad_through(lambda g: g * 2)
    assert id(got) == handed and got.flags.owndata
    got, handed, _ = _leaf_grad_through(lambda g: (g * 2).reshape(-1).reshape(2, 3))
    assert id(got) == handed and not got.flags.owndata
    np.testing.assert_array_equal(got, np.full((2, 3), 2.0))


def test_a_gradient_something_else_holds_is_copied_for_the_leaf():
    """A copy where the array reaching a leaf is shared: the caller's dL/dy handed on as it
    is, an array the op keeps or a view of one, one a hook keeps, a slice of a larger array
    (which a view would keep alive); or is read-only or Fortran-ordered. Each leaf's .grad
    is then a writable C-contiguous array of its own."""
    got, handed, g = _leaf_grad_through(lambda g: g)
    assert id(got) != handed and not np.shares_memory(got, g)
    kept = []
    got, handed, _ = _leaf_grad_through(lambda g: kept.append(g * 2) or kept[-1])
    assert id(got) != handed and not np.shares_memory(got, kept[-1])
    got, handed, _ = _leaf_grad_through(lambda g: kept.append(g * 2) or kept[-1].reshape(2, 3))
    assert id(got) != handed and not np.shares_memory(got, kept[-1])  # a view of a kept array
    hooked = []
    got, handed, _ = _leaf_grad_through(lambda g: g * 2, hook=hooked.append)
    assert id(got) != handed and not np.shares_memory(got, hooked[-1].data)
    got, handed, _ = _leaf_grad_through(lambda g: np.concatenate([g, g])[:2])
    assert id(got) != handed and got.base is None
    got, handed, _ = _leaf_grad_through(lambda g: _read_only(g * 2))
    assert id(got) != handed and got.flags.writeable
    got, handed, _ = _leaf_grad_through(lambda g: np.asfortranarray(g * 2))
    assert id(got) != handed and got.flags.c_contiguous
    np.testing.assert_array_equal(got, np.full((2, 3), 2.0))


def test_second_backward_through_freed_graph_is_an_error():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp()).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp()).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-6)


def test_backward_of_non_scalar_needs_a_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2).backward()
    (x * 2).backward(tg.tensor([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])


def test_requires_grad_on_integer_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="floating-point"):
        tg.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError):
        tg.arange(3).requires_grad_()


def test_no_grad_and_enable_grad():
    x = tg.tensor([1.0], requires_grad=True)
    with tg.no_grad():
        y = x * 2
        assert not y.requires_grad and y.grad_fn is None
        with tg.enable_grad():
            z = x * 2
        assert z.requires_grad and z.grad_fn is not None
    assert tg.is_grad_enabled()


def test_create_graph_false_builds_no_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (g,) = tg.grad((x**3).sum(), x)
    assert g.grad_fn is None and not g.requires_grad


def test_create_graph_gives_second_derivative():
    x = tg.tensor([0.5, -1.5], dtype=np.float64, requires_grad=True)
    (g,) = tg.grad((x**3).sum(), x, create_graph=True)
    (h,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy())


def test_grad_does_not_touch_dot_grad_and_prunes():
    w = tg.tensor([2.0], requires_grad=True)
    x = tg.tensor([3.0], requires_grad=True)
    (gx,) = tg.grad((w * x).sum(), x)
    assert w.grad is None and x.grad is None
    np.testing.assert_allclose(gx.numpy(), [2.0])


def test_grad_allow_unused():
    x = tg.tensor([1.0], requires_grad=True)
    y = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused"):
        tg.grad((x * 2).sum(), [x, y])
    gx, gy = tg.grad((x * 2).sum(), [x, y], allow_unused=True)
    assert gy is None and gx.item() == 2.0


def test_grad_with_respect_to_intermediate_tensor():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    (gh,) = tg.grad(y, h)
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())


def test_hooks_on_leaf_and_intermediate():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h = x * 2
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    handle = x.register_hook(lambda g: g * 0)
    (h * h).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * h.numpy())
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0])
    handle.remove()
    x.grad = None
    (x * 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_in_place_modification_of_saved_input_is_detected():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()
    w.data_update_(lambda a: a.__imul__(2))
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_replacing_data_of_saved_input_is_detected():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()
    w.data = np.array([5.0, 5.0], dtype=np.float32)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_float32_and_float64_flow():
    for dtype in (np.float32, np.float64):
        x = tg.randn(3, 4, dtype=dtype, requires_grad=True)
        y = F.tanh(x @ tg.ones(4, 2, dtype=dtype)).sum()
        assert y.dtype == dtype
        y.backward()
        assert x.grad.dtype == dtype


def test_mixed_precision_gradient_is_cast_back():
    x = tg.randn(3, dtype=np.float32, requires_grad=True)
    y = (x * tg.tensor(np.ones(3))).sum()  # float64 constant promotes the product
    y.backward()
    assert x.grad.dtype == np.float32


def test_detach_shares_memory_but_not_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert d.grad_fn is None and not d.requires_grad
    y = (x * d).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), d.numpy())


def test_seeded_generator_is_reproducible():
    tg.manual_seed(123)
    a = tg.randn(5).numpy()
    tg.manual_seed(123)
    b = tg.randn(5).numpy()
    gen = tg.Generator(7)
    state = gen.state_dict()
    c = tg.rand(4, generator=gen).numpy()
    gen.load_state_dict(state)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(c, tg.rand(4, generator=gen).numpy())


def test_constructors():
    assert tg.zeros(2, 3).shape == (2, 3) and tg.zeros(2, 3).dtype == np.float32
    assert tg.ones((2,), dtype=np.float64).dtype == np.float64
    assert tg.full((2, 2), 7.0).numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert tg.arange(4).dtype == np.int64 and tg.arange(0, 1, 0.25).shape == (4,)
    x = tg.randn(3, 2)
    assert tg.zeros_like(x).shape == (3, 2) and tg.randn_like(x).shape == (3, 2)
    assert tg.tensor([1.5, 2.5]).dtype == np.float32
    assert tg.tensor(np.zeros(2)).dtype == np.float64  # ndarrays keep their dtype
    assert tg.tensor([1.0]).item() == 1.0
    with pytest.raises(ValueError, match="unknown device"):
        tg.zeros(2, device="tpu")


def test_cuda_without_cupy_or_gpu_gives_one_clear_message():
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="CuPy"):
        tg.zeros(2, device="cuda")


def _mlp(params, x):
    w1, b1, w2, b2 = params
    return F.linear(F.tanh(F.linear(x, w1, b1)), w2, b2)


def test_gradient_penalty_matches_finite_differences():
    """WGAN-GP's penalty mean((‖∂f/∂x‖₂ − 1)²) differentiated w.r.t. the MLP's weights."""
    rng = np.random.default_rng(0)
    arrays = [
        rng.standard_normal((5, 3)),
        rng.standard_normal(5),
        rng.standard_normal((1, 5)),
        rng.standard_normal(1),
    ]
    x_np = rng.standard_normal((4, 3))

    def penalty(param_tensors, create_graph):
        x = tg.tensor(x_np, requires_grad=True)
        out = _mlp(param_tensors, x)
        (gx,) = tg.grad(out.sum(), x, create_graph=create_graph)
        norms = ((gx * gx).sum(axis=1) + 1e-12).sqrt()
        return ((norms - 1) ** 2).mean()

    params = [tg.tensor(a, requires_grad=True) for a in arrays]
    grads = tg.grad(penalty(params, True), params, allow_unused=True)
    assert grads[3] is None  # the output bias does not change ∂f/∂x

    def value(values):
        return penalty([tg.tensor(v, requires_grad=True) for v in values], False).item()

    for i, g in enumerate(grads[:3]):
        np.testing.assert_allclose(
            g.numpy(), numeric_grad(value, arrays, i, 1e-6), rtol=1e-5, atol=1e-7
        )


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def test_training_loop_memory_stays_flat():
    """10,000 forward/backward iterations of a small MLP leave no graph behind."""
    tg.manual_seed(0)
    params = [tg.randn(*s, requires_grad=True) for s in [(32, 16), (32,), (1, 32), (1,)]]
    x = tg.randn(64, 16)

    def step():
        loss = (_mlp(params, x) ** 2).mean()
        loss.backward()
        for p in params:
            p.data_update_(lambda a, g=p.grad.data: a.__isub__(1e-4 * g))
            p.grad = None

    for _ in range(500):
        step()
    gc.collect()
    before = _rss_mb()
    for _ in range(10_000):
        step()
    gc.collect()
    assert _rss_mb() - before < 5.0
