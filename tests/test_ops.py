"""Property tests of the basic ops: gradients (first and second order) against finite
differences over random shapes, broadcasting, axes and values; forward values against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_grad, check_second_order
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygan as tg
import tinygan.functions as F

small_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**31 - 1)


def rand(shape, seed, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def away_from_zero(shape, seed, margin=0.2):
    """Values whose magnitude exceeds ``margin`` (keeps kinks out of finite differences)."""
    x = rand(shape, seed, margin, 2.0)
    return x * np.where(np.random.default_rng(seed + 1).random(shape) < 0.5, -1, 1)


@st.composite
def broadcast_pair(draw):
    shapes = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)
    )
    return shapes.input_shapes


BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "maximum": (F.maximum, np.maximum),
    "minimum": (F.minimum, np.minimum),
}


@pytest.mark.parametrize("name", BINARY)
@given(shapes=broadcast_pair(), seed=seeds)
def test_binary_ops_broadcast(name, shapes, seed):
    op, reference = BINARY[name]
    a = away_from_zero(shapes[0], seed)
    b = away_from_zero(shapes[1], seed + 7)
    if name in ("maximum", "minimum"):
        b = b + 0.05  # no ties
    out = op(tg.tensor(a), tg.tensor(b))
    np.testing.assert_allclose(out.numpy(), reference(a, b), rtol=1e-12)
    check_grad(op, [a, b])
    if name in ("mul", "div"):
        check_second_order(op, [a, b])


@given(shapes=broadcast_pair(), seed=seeds)
def test_pow_with_tensor_and_scalar_exponents(shapes, seed):
    a = rand(shapes[0], seed, 0.5, 2.0)
    b = rand(shapes[1], seed + 1, -1.5, 1.5)
    check_grad(lambda x, y: x**y, [a, b])
    check_second_order(lambda x, y: x**y, [a, b])
    for p in (2, 3, -1.5, 0.5):
        check_grad(lambda x, p=p: x**p, [a])
        check_second_order(lambda x, p=p: x**p, [a])
    check_grad(lambda x: 2.0**x, [b])


UNARY = {
    "exp": (F.exp, np.exp, None),
    "log": (F.log, np.log, "positive"),
    "sqrt": (F.sqrt, np.sqrt, "positive"),
    "abs": (F.abs, np.abs, "nonzero"),
    "neg": (F.neg, np.negative, None),
    "relu": (F.relu, lambda x: np.maximum(x, 0), "nonzero"),
    "leaky_relu": (
        lambda x: F.leaky_relu(x, 0.2),
        lambda x: np.where(x > 0, x, 0.2 * x),
        "nonzero",
    ),
    "elu": (F.elu, lambda x: np.where(x > 0, x, np.expm1(x)), "nonzero"),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), None),
    "tanh": (F.tanh, np.tanh, None),
    "softplus": (F.softplus, lambda x: np.log1p(np.exp(x)), None),
    "softplus_beta": (lambda x: F.softplus(x, 2.0), lambda x: np.log1p(np.exp(2 * x)) / 2, None),
    "clip": (lambda x: F.clip(x, -1.0, 1.0), lambda x: np.clip(x, -1, 1), "clip"),
}


def unary_input(kind, shape, seed):
    if kind == "positive":
        return rand(shape, seed, 0.3, 3.0)
    if kind == "nonzero":
        return away_from_zero(shape, seed)
    if kind == "clip":  # keep away from the bounds ±1
        x = away_from_zero(shape, seed)
        return np.where(np.abs(np.abs(x) - 1) < 0.1, x * 0.5, x)
    return rand(shape, seed)


@pytest.mark.parametrize("name", UNARY)
@given(shape=small_shapes, seed=seeds)
def test_unary_ops(name, shape, seed):
    op, reference, kind = UNARY[name]
    x = unary_input(kind, shape, seed)
    np.testing.assert_allclose(op(tg.tensor(x)).numpy(), reference(x), rtol=1e-10, atol=1e-12)
    check_grad(op, [x])
    check_second_order(op, [x])


@given(shape=small_shapes, seed=seeds)
def test_prelu(shape, seed):
    x = away_from_zero(shape, seed)
    channels = shape[1] if len(shape) >= 2 else 1
    w = rand((channels,), seed + 3, 0.05, 0.5)
    expected_w = w.reshape((1, channels) + (1,) * (len(shape) - 2)) if len(shape) >= 2 else w
    out = F.prelu(tg.tensor(x), tg.tensor(w))
    np.testing.assert_allclose(out.numpy(), np.where(x > 0, x, expected_w * x))
    check_grad(F.prelu, [x, w])
    check_second_order(F.prelu, [x, w])


@st.composite
def shape_and_axis(draw):
    shape = draw(small_shapes)
    axis = draw(
        st.one_of(
            st.none(), st.integers(-len(shape), len(shape) - 1), st.just(tuple(range(len(shape))))
        )
    )
    return shape, axis


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "max", "min"])
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reductions(name, case, keepdims, seed):
    shape, axis = case
    x = rand(shape, seed)
    op = getattr(F, name)
    reference = getattr(np, name)
    np.testing.assert_allclose(
        op(tg.tensor(x), axis, keepdims).numpy(), reference(x, axis=axis, keepdims=keepdims)
    )
    reduced = np.size(x) // max(1, np.size(reference(x, axis=axis)))
    if name == "std" and reduced == 1:
        return  # a single element has zero variance, where sqrt has no derivative
    check_grad(lambda t: op(t, axis, keepdims), [x])
    check_second_order(lambda t: op(t, axis, keepdims), [x])


def test_var_ddof_and_argmax():
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(F.var(tg.tensor(x), 1, ddof=1).numpy(), x.var(axis=1, ddof=1))
    check_grad(lambda t: F.std(t, 0, ddof=1), [x])
    assert F.argmax(tg.tensor(x), 1).numpy().tolist() == x.argmax(1).tolist()
    assert F.argmin(tg.tensor(x)).item() == x.argmin()


@st.composite
def matmul_case(draw):
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    batch_a = draw(st.sampled_from([(), (2,), (1,), (2, 1)]))
    batch_b = draw(st.sampled_from([(), (2,), (1,), (3, 1)]))
    a_shape = draw(st.sampled_from([(k,), batch_a + (m, k)]))
    b_shape = draw(st.sampled_from([(k,), batch_b + (k, n)]))
    if len(a_shape) > 2 and len(b_shape) > 2:
        try:
            np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
        except ValueError:
            b_shape = b_shape[-2:]
    return a_shape, b_shape


@given(case=matmul_case(), seed=seeds)
def test_matmul(case, seed):
    a, b = rand(case[0], seed), rand(case[1], seed + 1)
    np.testing.assert_allclose(F.matmul(tg.tensor(a), tg.tensor(b)).numpy(), a @ b, rtol=1e-12)
    check_grad(F.matmul, [a, b])
    check_second_order(lambda x, y: F.tanh(F.matmul(x, y)), [a, b])


@given(
    n=st.integers(1, 4),
    fin=st.integers(1, 4),
    fout=st.integers(1, 4),
    lead=st.booleans(),
    seed=seeds,
)
def test_linear(n, fin, fout, lead, seed):
    x = rand((2, n, fin) if lead else (n, fin), seed)
    w, b = rand((fout, fin), seed + 1), rand((fout,), seed + 2)
    np.testing.assert_allclose(
        F.linear(tg.tensor(x), tg.tensor(w), tg.tensor(b)).numpy(), x @ w.T + b
    )
    check_grad(F.linear, [x, w, b])
    check_grad(lambda x, w: F.linear(x, w), [x, w])
    check_second_order(lambda x, w, b: F.sigmoid(F.linear(x, w, b)), [x, w, b])


@given(shape=small_shapes, seed=seeds)
def test_shape_ops(shape, seed):
    x = rand(shape, seed)
    size = x.size
    check_grad(lambda t: t.reshape(size), [x])
    check_grad(lambda t: t.transpose(), [x])
    check_grad(lambda t: F.flip(t, 0), [x])
    check_grad(lambda t: F.unsqueeze(t, 0).squeeze(0), [x])
    check_grad(lambda t: F.flatten(t), [x])
    check_grad(lambda t: F.broadcast_to(t, (2,) + shape), [x])
    check_second_order(
        lambda t: F.broadcast_to(t, (2,) + shape) * F.broadcast_to(t, (2,) + shape), [x]
    )
    np.testing.assert_array_equal(F.flip(tg.tensor(x), 0).numpy(), np.flip(x, 0))
    np.testing.assert_array_equal(tg.tensor(x).transpose().numpy(), x.T)


@given(shape=small_shapes, seed=seeds)
def test_indexing(shape, seed):
    x = rand(shape, seed)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, shape[0], size=5)  # repeated indices must accumulate
    np.testing.assert_array_equal(tg.tensor(x)[idx].numpy(), x[idx])
    check_grad(lambda t: t[idx], [x])
    check_grad(lambda t: t[1:], [x])
    check_grad(lambda t: t[..., ::-1], [x])
    mask = x > 0
    check_grad(lambda t: t[mask], [x])
    check_second_order(lambda t: t[idx] * t[idx], [x])


@given(shape=small_shapes, seed=seeds, n=st.integers(1, 3))
def test_concat_stack_split_chunk(shape, seed, n):
    arrays = [rand(shape, seed + i) for i in range(n)]
    axis = len(shape) - 1
    np.testing.assert_array_equal(
        F.concat([tg.tensor(a) for a in arrays], axis).numpy(), np.concatenate(arrays, axis)
    )
    np.testing.assert_array_equal(
        F.stack([tg.tensor(a) for a in arrays], 0).numpy(), np.stack(arrays)
    )
    check_grad(lambda *ts: F.concat(ts, axis), arrays)
    check_grad(lambda *ts: F.stack(ts, 0), arrays)
    x = rand((4,) + shape, seed)
    check_grad(lambda t: F.split(t, 3)[-1] * 2 + 0, [x])
    check_grad(lambda t: F.concat(F.chunk(t, 3), 0), [x])
    assert [p.shape[0] for p in F.split(tg.tensor(x), [1, 3])] == [1, 3]


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4),
    seed=seeds,
    data=st.data(),
)
def test_pad(mode, shape, seed, data):
    x = rand(shape, seed)
    widths = tuple(
        (data.draw(st.integers(0, s - 1)), data.draw(st.integers(0, s - 1))) for s in shape
    )
    numpy_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}[mode]
    np.testing.assert_array_equal(
        F.pad(tg.tensor(x), widths, mode).numpy(), np.pad(x, widths, mode=numpy_mode)
    )
    check_grad(lambda t: F.pad(t, widths, mode), [x])
    check_second_order(lambda t: F.pad(t, widths, mode) ** 2, [x])


@given(shape=small_shapes, seed=seeds)
def test_where(shape, seed):
    a, b = rand(shape, seed), rand(shape, seed + 1)
    cond = rand(shape, seed + 2) > 0
    np.testing.assert_array_equal(
        F.where(cond, tg.tensor(a), tg.tensor(b)).numpy(), np.where(cond, a, b)
    )
    check_grad(lambda x, y: F.where(cond, x, y), [a, b])


@given(n=st.integers(1, 5), c=st.integers(2, 5), seed=seeds)
def test_softmax_family(n, c, seed):
    x = rand((n, c), seed) * 3
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(F.softmax(tg.tensor(x)).numpy(), e / e.sum(1, keepdims=True))
    np.testing.assert_allclose(
        F.log_softmax(tg.tensor(x), 1).numpy(), np.log(e / e.sum(1, keepdims=True))
    )
    for op in (F.softmax, F.log_softmax, lambda t: F.softmax(t, 0)):
        check_grad(op, [x])
        check_second_order(op, [x])


# ---------------------------------------------------------------- losses


@given(n=st.integers(1, 6), seed=seeds)
def test_bce_losses(n, seed):
    x = rand((n,), seed, -4, 4)
    t = rand((n,), seed + 1, 0, 1)
    p = 1 / (1 + np.exp(-x))
    expected = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    np.testing.assert_allclose(
        F.bce_with_logits(tg.tensor(x), tg.tensor(t), "none").numpy(), expected, rtol=1e-9
    )
    np.testing.assert_allclose(
        F.binary_cross_entropy(tg.tensor(p), tg.tensor(t), "sum").item(), expected.sum(), rtol=1e-9
    )
    check_grad(F.bce_with_logits, [x, t])
    check_second_order(F.bce_with_logits, [x, t])
    check_grad(F.binary_cross_entropy, [p, t], rtol=1e-4)


def test_losses_stable_at_extremes():
    x = tg.tensor([1e4, -1e4, 0.0], requires_grad=True)
    with np.errstate(
        all="raise", under="ignore"
    ):  # any overflow or division warning fails the test
        loss = F.bce_with_logits(x, tg.tensor([0.0, 1.0, 1.0]), "none")
        loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [1e4, 1e4, np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), [1.0, -1.0, -0.5])
    p = tg.tensor([0.0, 1.0, 0.5], requires_grad=True)
    with np.errstate(all="raise", under="ignore"):
        loss = F.binary_cross_entropy(p, tg.tensor([1.0, 0.0, 1.0]), "none")
        loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [100.0, 100.0, np.log(2)], rtol=1e-6)
    assert np.all(np.isfinite(p.grad.numpy()))


@given(n=st.integers(1, 5), c=st.integers(2, 4), smoothing=st.sampled_from([0.0, 0.1]), seed=seeds)
def test_cross_entropy_and_nll(n, c, smoothing, seed):
    x = rand((n, c), seed) * 2
    labels = np.random.default_rng(seed).integers(0, c, n)
    logp = x - x.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    target = np.full((n, c), smoothing / c)
    target[np.arange(n), labels] += 1 - smoothing
    expected = -(target * logp).sum(1).mean()
    got = F.cross_entropy(tg.tensor(x), tg.tensor(labels), label_smoothing=smoothing)
    np.testing.assert_allclose(got.item(), expected, rtol=1e-10)
    check_grad(lambda t: F.cross_entropy(t, tg.tensor(labels), label_smoothing=smoothing), [x])
    check_second_order(lambda t: F.cross_entropy(t, tg.tensor(labels)), [x])
    np.testing.assert_allclose(
        F.nll(tg.tensor(logp), tg.tensor(labels), "sum").item(), -logp[np.arange(n), labels].sum()
    )


def test_cross_entropy_spatial():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 2, 2))
    labels = rng.integers(0, 3, (2, 2, 2))
    flat = np.moveaxis(x, 1, -1).reshape(-1, 3)
    expected = F.cross_entropy(tg.tensor(flat), tg.tensor(labels.reshape(-1))).item()
    np.testing.assert_allclose(F.cross_entropy(tg.tensor(x), tg.tensor(labels)).item(), expected)
    check_grad(lambda t: F.cross_entropy(t, tg.tensor(labels)), [x])


@given(shape=small_shapes, seed=seeds)
def test_regression_and_hinge_losses(shape, seed):
    a, b = rand(shape, seed), rand(shape, seed + 1)
    np.testing.assert_allclose(F.mse(tg.tensor(a), tg.tensor(b)).item(), ((a - b) ** 2).mean())
    np.testing.assert_allclose(F.l1(tg.tensor(a), tg.tensor(b), "sum").item(), np.abs(a - b).sum())
    np.testing.assert_allclose(F.mse(tg.tensor(a), 1.0, "none").numpy(), (a - 1) ** 2)
    check_grad(F.mse, [a, b])
    check_second_order(F.mse, [a, b])
    a = np.where(np.abs(np.abs(a) - 1) < 0.1, a + 0.3, a)  # hinge kinks at ±1
    b = np.where(np.abs(np.abs(b) - 1) < 0.1, b + 0.3, b)
    np.testing.assert_allclose(
        F.hinge_d(tg.tensor(a), tg.tensor(b)).item(),
        np.maximum(0, 1 - a).mean() + np.maximum(0, 1 + b).mean(),
    )
    check_grad(F.hinge_d, [a, b])
    check_grad(F.hinge_g, [a])


# ---------------------------------------------------------------- errors


def test_shape_errors_name_the_op_and_shapes():
    a, b = tg.zeros(2, 3), tg.zeros(4, 5)
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"add.*\(2, 3\).*\(4, 5\)"):
        a + b
    with pytest.raises(ValueError, match=r"concat.*\(2, 3\).*\(4, 5\)"):
        F.concat([a, b], 0)
    with pytest.raises(ValueError, match="reshape"):
        a.reshape(7)
    with pytest.raises(ValueError, match="linear"):
        F.linear(a, tg.zeros(3, 4))
    with pytest.raises(ValueError, match="reduction"):
        F.mse(a, a, reduction="avg")
    with pytest.raises(ValueError, match="pad: reflect"):
        F.pad(a, 3, "reflect")
    with pytest.raises(ValueError, match="sum: axis 2"):
        a.sum(2)
    with pytest.raises(ValueError, match="nll: labels"):
        F.cross_entropy(a, tg.tensor([0, 3]))


def test_leaky_relu_rejects_negative_slope():
    with pytest.raises(ValueError, match="leaky_relu: negative_slope"):
        F.leaky_relu(tg.zeros(2), -0.1)
