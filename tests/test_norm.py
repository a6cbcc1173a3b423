"""Normalisation ops: values against the formulas (and PyTorch where installed), running
statistics, gradients and second derivatives against finite differences, errors."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_grad, check_second_order
from hypothesis import given, settings
from hypothesis import strategies as st
from spy import count_calls

import tinygan as tg
from tinygan.functions.norm import (
    adain,
    batch_norm,
    instance_norm,
    layer_norm,
    minibatch_stddev,
    pixel_norm,
    style_modulation,
)

seeds = st.integers(0, 2**31 - 1)


@st.composite
def nchw(draw, min_n=1, min_hw=1):
    n = draw(st.integers(min_n, 3))
    c = draw(st.integers(1, 3))
    shape = (n, c) + tuple(draw(st.integers(min_hw, 3)) for _ in range(draw(st.integers(0, 2))))
    rng = np.random.default_rng(draw(seeds))
    return rng.standard_normal(shape), rng.standard_normal(c), rng.standard_normal(c)


def normalise(x, axes, eps):
    mu = x.mean(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)


def per_channel(a, x):
    return a.reshape((1, -1) + (1,) * (x.ndim - 2))


# ---------------------------------------------------------------- batch norm


@settings(max_examples=15)
@given(case=nchw(min_n=2))
def test_batch_norm_training(case):
    x, w, b = case
    axes = (0,) + tuple(range(2, x.ndim))
    y = batch_norm(tg.tensor(x), None, None, tg.tensor(w), tg.tensor(b), training=True)
    expected = normalise(x, axes, 1e-5) * per_channel(w, x) + per_channel(b, x)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)
    fn = lambda x, w, b: batch_norm(x, None, None, w, b, training=True)  # noqa: E731
    check_grad(fn, [x, w, b], rtol=1e-4, atol=1e-6)
    check_second_order(fn, [x, w, b], rtol=1e-3, atol=1e-4)


def test_batch_norm_running_statistics_follow_the_formula():
    rng = np.random.default_rng(0)
    running_mean, running_var = np.zeros(3), np.ones(3)
    expected_mean, expected_var = np.zeros(3), np.ones(3)
    m = 0.2
    for _ in range(4):
        x = rng.standard_normal((5, 3, 4, 2)) * 3 + 1
        batch_norm(tg.tensor(x), running_mean, running_var, training=True, momentum=m)
        n = 5 * 4 * 2
        expected_mean = (1 - m) * expected_mean + m * x.mean(axis=(0, 2, 3))
        expected_var = (1 - m) * expected_var + m * x.var(axis=(0, 2, 3)) * n / (n - 1)
    np.testing.assert_allclose(running_mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(running_var, expected_var, rtol=1e-12)
    # eval mode: the running statistics, not the batch's
    x = rng.standard_normal((2, 3, 4, 2))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    y = batch_norm(tg.tensor(x), running_mean, running_var, tg.tensor(w), tg.tensor(b))
    expected = (x - per_channel(running_mean, x)) / np.sqrt(per_channel(running_var, x) + 1e-5)
    np.testing.assert_allclose(y.numpy(), expected * per_channel(w, x) + per_channel(b, x))
    fn = lambda x, w, b: batch_norm(x, running_mean, running_var, w, b)  # noqa: E731
    check_grad(fn, [x, w, b])


def test_batch_norm_updates_tensor_buffers_in_place():
    rm, rv = tg.zeros(2), tg.ones(2)
    data = rm.data
    x = tg.tensor(np.array([[1.0, 2.0], [3.0, 6.0]]))
    batch_norm(x, rm, rv, training=True, momentum=0.5)
    assert rm.data is data
    np.testing.assert_allclose(rm.numpy(), [1.0, 2.0])
    np.testing.assert_allclose(rv.numpy(), [0.5 + 0.5 * 2.0, 0.5 + 0.5 * 8.0])


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 2)])
def test_batch_norm_against_pytorch(shape):
    torch = pytest.importorskip("torch")
    F = pytest.importorskip("torch.nn.functional")
    rng = np.random.default_rng(1)
    ours = [
        tg.tensor(a, requires_grad=True)
        for a in (rng.standard_normal(shape), rng.standard_normal(3), rng.standard_normal(3))
    ]
    refs = [torch.tensor(t.numpy(), requires_grad=True) for t in ours]
    rm, rv = np.zeros(3), np.ones(3)
    rm_t, rv_t = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for training in (True, True, False):
        y = batch_norm(ours[0], rm, rv, ours[1], ours[2], training, 0.3)
        y_ref = F.batch_norm(refs[0], rm_t, rv_t, refs[1], refs[2], training, 0.3)
        np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-10, atol=1e-12)
        g = rng.standard_normal(shape)
        y.backward(tg.tensor(g))
        y_ref.backward(torch.tensor(g))
        for t, r in zip(ours, refs):
            np.testing.assert_allclose(t.grad.numpy(), r.grad.numpy(), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(rm, rm_t.numpy())
        np.testing.assert_allclose(rv, rv_t.numpy())


# ---------------------------------------------------------------- instance / layer norm


@settings(max_examples=15)
@given(case=nchw(min_hw=2), affine=st.booleans())
def test_instance_norm(case, affine):
    x, w, b = case
    if x.ndim < 3:
        x = x[..., None].repeat(2, axis=-1) + np.arange(2)
    w, b = (w, b) if affine else (None, None)
    axes = tuple(range(2, x.ndim))
    y = instance_norm(
        tg.tensor(x),
        weight=None if w is None else tg.tensor(w),
        bias=None if b is None else tg.tensor(b),
    )
    expected = normalise(x, axes, 1e-5)
    if affine:
        expected = expected * per_channel(w, x) + per_channel(b, x)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)
    if affine:
        fn = lambda x, w, b: instance_norm(x, weight=w, bias=b)  # noqa: E731
        arrays = [x, w, b]
    else:
        fn, arrays = instance_norm, [x]
    check_grad(fn, arrays, rtol=1e-4, atol=1e-6)
    check_second_order(fn, arrays, rtol=1e-3, atol=1e-4)


def test_instance_norm_running_statistics():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 5, 5))
    rm, rv = np.zeros(3), np.ones(3)
    instance_norm(x=tg.tensor(x), running_mean=rm, running_var=rv, momentum=0.1)
    np.testing.assert_allclose(rm, 0.1 * x.mean(axis=(2, 3)).mean(axis=0))
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(axis=(2, 3), ddof=1).mean(axis=0))
    y = instance_norm(tg.tensor(x), rm, rv, use_input_stats=False)
    expected = (x - per_channel(rm, x)) / np.sqrt(per_channel(rv, x) + 1e-5)
    np.testing.assert_allclose(y.numpy(), expected)


@settings(max_examples=15)
@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    k=st.integers(1, 3),
    affine=st.booleans(),
    seed=seeds,
)
def test_layer_norm(shape, k, affine, seed):
    k = min(k, len(shape))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) + rng.standard_normal(shape[-1])
    normalized = tuple(shape[-k:])
    w = rng.standard_normal(normalized) if affine else None
    b = rng.standard_normal(normalized) if affine else None
    axes = tuple(range(len(shape) - k, len(shape)))
    y = layer_norm(
        tg.tensor(x),
        normalized,
        None if w is None else tg.tensor(w),
        None if b is None else tg.tensor(b),
    )
    expected = normalise(x, axes, 1e-5)
    if affine:
        expected = expected * w + b
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)
    if affine:
        fn = lambda x, w, b: layer_norm(x, normalized, w, b)  # noqa: E731
        arrays = [x, w, b]
    else:
        fn, arrays = (lambda x: layer_norm(x, normalized)), [x]
    check_grad(fn, arrays, rtol=1e-4, atol=1e-6)
    check_second_order(fn, arrays, rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------- AdaIN and friends


@settings(max_examples=15)
@given(n=st.integers(1, 2), c=st.integers(1, 3), seed=seeds)
def test_adain(n, c, seed):
    rng = np.random.default_rng(seed)
    content = rng.standard_normal((n, c, 3, 2))
    style = rng.standard_normal((n, c, 2, 3)) * 2 + 1
    y = adain(tg.tensor(content), tg.tensor(style)).numpy()
    s_mean = style.mean(axis=(2, 3), keepdims=True)
    s_std = np.sqrt(style.var(axis=(2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, normalise(content, (2, 3), 1e-5) * s_std + s_mean)
    # the output carries the style's statistics
    np.testing.assert_allclose(y.mean(axis=(2, 3)), s_mean[..., 0, 0], atol=1e-10)
    check_grad(adain, [content, style], rtol=1e-4, atol=1e-6)
    check_second_order(adain, [content, style], rtol=1e-3, atol=1e-4)


@settings(max_examples=15)
@given(n=st.integers(1, 2), c=st.integers(1, 3), seed=seeds)
def test_style_modulation(n, c, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, 2, 3))
    scale, bias = rng.standard_normal((n, c)), rng.standard_normal((n, c))
    y = style_modulation(tg.tensor(x), tg.tensor(scale), tg.tensor(bias)).numpy()
    expected = normalise(x, (2, 3), 1e-5) * scale[..., None, None] + bias[..., None, None]
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    check_grad(style_modulation, [x, scale, bias], rtol=1e-4, atol=1e-6)


@given(case=nchw())
def test_pixel_norm(case):
    x = case[0]
    y = pixel_norm(tg.tensor(x)).numpy()
    np.testing.assert_allclose(y, x / np.sqrt((x**2).mean(axis=1, keepdims=True) + 1e-8))
    check_grad(pixel_norm, [x], rtol=1e-4, atol=1e-6)
    check_second_order(pixel_norm, [x], rtol=1e-3, atol=1e-4)


@settings(max_examples=15)
@given(groups=st.integers(1, 3), per_group=st.integers(1, 2), f=st.integers(1, 2), seed=seeds)
def test_minibatch_stddev(groups, per_group, f, seed):
    n, c, h, w = groups * per_group, 2 * f, 2, 3
    x = np.random.default_rng(seed).standard_normal((n, c, h, w))
    y = minibatch_stddev(tg.tensor(x), group_size=groups, num_channels=f).numpy()
    assert y.shape == (n, c + f, h, w)
    np.testing.assert_array_equal(y[:, :c], x)
    for i in range(n):
        members = x[i % per_group :: per_group]  # sample i's group: same index mod N/G
        std = np.sqrt(members.var(axis=0) + 1e-8).reshape(f, c // f, h, w).mean(axis=(1, 2, 3))
        np.testing.assert_allclose(y[i, c:], np.broadcast_to(std[:, None, None], (f, h, w)))
    check_grad(lambda x: minibatch_stddev(x, groups, f), [x], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: batch_norm(tg.zeros(2, 3), None, None, tg.ones(4)), "weight"),
        (lambda: batch_norm(tg.zeros(2, 3), np.zeros(3), None), "both"),
        (lambda: batch_norm(tg.zeros(1, 3), None, None, training=True), "more than one"),
        (lambda: batch_norm(tg.zeros(3), None, None, training=True), "N, C"),
        (lambda: instance_norm(tg.zeros(2, 3)), "N, C, H, W"),
        (lambda: instance_norm(tg.zeros(2, 3, 4), use_input_stats=False), "running"),
        (lambda: layer_norm(tg.zeros(2, 3), (2,)), "normalized_shape"),
        (lambda: layer_norm(tg.zeros(2, 3), 3, tg.ones(2)), "weight"),
        (lambda: adain(tg.zeros(2, 3, 4, 4), tg.zeros(2, 2, 4, 4)), "same N and C"),
        (lambda: style_modulation(tg.zeros(2, 3, 4, 4), tg.zeros(2, 3), tg.zeros(3)), "bias"),
        (lambda: minibatch_stddev(tg.zeros(6, 2, 2, 2), group_size=4), "divisible"),
        (lambda: minibatch_stddev(tg.zeros(4, 3, 2, 2), num_channels=2), "divisible"),
        (lambda: batch_norm(tg.zeros(2, 3), None, None, activation="tanh"), "'tanh'"),
        (
            lambda: instance_norm(tg.zeros(2, 3, 4), activation="leaky_relu", negative_slope=2),
            "0 <= negative_slope <= 1, got 2",
        ),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


@pytest.mark.parametrize("kind", ["batch", "instance"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (2, 5, 7), (2, 3, 2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_cpu_path_matches_the_array_path(monkeypatch, kind, affine, shape, dtype):
    """norm_kernels.py (Numba) against norm.py's NumPy passes: outputs, running statistics,
    and the first-order gradients of x, weight and bias."""
    from tinygan.functions import norm_kernels

    rng = np.random.default_rng(0)
    x = (3 + 2 * rng.standard_normal(shape)).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    C = shape[1]
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    op = batch_norm if kind == "batch" else instance_norm

    def run(fused: bool) -> list:
        monkeypatch.setattr(norm_kernels, "usable", lambda a: fused)
        calls = count_calls(monkeypatch, norm_kernels, ("forward", "backward"))
        xt = tg.tensor(x, requires_grad=True)
        wt, bt = (tg.tensor(p, requires_grad=True) for p in (w, b)) if affine else (None, None)
        running = (np.zeros(C, dtype), np.ones(C, dtype))
        extra = {"training": True} if kind == "batch" else {}
        y = op(xt, *running, wt, bt, **extra)
        y.backward(tg.tensor(g))
        assert calls == (["forward", "backward"] if fused else [])
        grads = [xt.grad.numpy()] + ([wt.grad.numpy(), bt.grad.numpy()] if affine else [])
        return [y.numpy(), *running, *grads]

    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for fused, arrays in zip(run(True), run(False)):
        np.testing.assert_allclose(fused, arrays, **tol)


@pytest.mark.parametrize("block", [1, 2, 5, 7, 13])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [1.0, 0.0, 0.2])
def test_batch_norm_kernels_in_channel_blocks(monkeypatch, block, dtype, slope):
    """norm_kernels' batch-norm loops walk blocks of channels sample by sample; every block
    size (dividing C or not, one channel, all of them) gives the NumPy formulas' results:
    statistics, output, and the gradients of x, w and b; with the activation that follows
    (slope 1: none, 0: ReLU, 0.2: leaky) applied forward and taken back in the backward."""
    from tinygan.functions import norm_kernels

    monkeypatch.setattr(norm_kernels, "_channel_block", lambda C, L: block)
    rng = np.random.default_rng(block)
    N, C = 5, 13
    x = (2 + 3 * rng.standard_normal((N, C, 3, 4))).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    z, mean, var, invstd, affine = norm_kernels.forward(x, w, b, 1e-5, False, slope)
    axes = (0, 2, 3)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    mu, sigma2 = x64.mean(axis=axes), x64.var(axis=axes)
    xhat = (x64 - mu[:, None, None]) / np.sqrt(sigma2[:, None, None] + 1e-5)
    y = xhat * w[:, None, None] + b[:, None, None]
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mean, mu, **tol)
    np.testing.assert_allclose(var, sigma2, **tol)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(sigma2 + 1e-5), **tol)
    np.testing.assert_allclose(z, np.maximum(y, slope * y), **tol)
    assert (y < 0).mean() > 0.2  # the activation's negative side is exercised
    dx, dw, db = norm_kernels.backward(g, x, w, mean, invstd, False, slope, affine)
    gy = np.where(y > 0, g64, slope * g64)  # dL/dy from the given dL/dz
    n = N * 12
    expected_dx = (w / np.sqrt(sigma2 + 1e-5))[:, None, None] * (
        gy
        - gy.sum(axis=axes)[:, None, None] / n
        - xhat * (gy * xhat).sum(axis=axes)[:, None, None] / n
    )
    np.testing.assert_allclose(dx, expected_dx, **tol)
    np.testing.assert_allclose(dw, (gy * xhat).sum(axis=axes), **tol)
    np.testing.assert_allclose(db, gy.sum(axis=axes), **tol)


def test_channel_block_sizes():
    """Runs of at least BLOCK_RUN values per sample, cut for balance, never 0 or above C."""
    import numba

    from tinygan.functions.norm_kernels import BLOCK_RUN, BLOCKS_PER_THREAD, _channel_block

    threads = numba.get_num_threads()
    assert _channel_block(1, 4) == 1
    assert _channel_block(64, BLOCK_RUN) == 1  # a run per channel is long enough
    wide = 1024 * BLOCKS_PER_THREAD * threads
    assert _channel_block(wide, 16) == -(-BLOCK_RUN // 16)  # many channels: runs decide
    assert _channel_block(2 * BLOCKS_PER_THREAD * threads, 16) == 2  # few: balance decides


# ---------------------------------------------------------------- a fused activation


@pytest.mark.parametrize("kind", ["batch", "instance"])
@pytest.mark.parametrize("activation, slope", [("relu", 0.0), ("leaky_relu", 0.2), (None, 0.0)])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_argument_equals_the_separate_op(
    monkeypatch, kind, activation, slope, fused, dtype
):
    """batch_norm / instance_norm with ``activation=`` give relu / leaky_relu of the plain
    norm: output, running statistics, and the gradients of x, w and b, on the Numba
    kernels (the activation inside their passes) and on the NumPy path (a step of its own)."""
    from tinygan.functions import leaky_relu, norm_kernels, relu

    monkeypatch.setattr(norm_kernels, "usable", lambda a: fused)
    calls = count_calls(monkeypatch, norm_kernels, ("forward", "backward"))
    rng = np.random.default_rng(1)
    shape, C = (4, 3, 5, 6), 3
    x = (1 + 2 * rng.standard_normal(shape)).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    op = batch_norm if kind == "batch" else instance_norm

    def run(combined: bool) -> list:
        xt, wt, bt = (tg.tensor(a, requires_grad=True) for a in (x, w, b))
        running = (np.zeros(C, dtype), np.ones(C, dtype))
        extra = {"training": True} if kind == "batch" else {}
        if combined:
            y = op(xt, *running, wt, bt, **extra, activation=activation, negative_slope=slope)
        else:
            y = op(xt, *running, wt, bt, **extra)
            y = y if activation is None else relu(y) if slope == 0 else leaky_relu(y, slope)
        y.backward(tg.tensor(g))
        return [y.numpy(), *running, xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()]

    combined = run(True)
    assert calls == (["forward", "backward"] if fused else [])
    assert (combined[0] < 0).any() == (slope > 0 or activation is None)  # the negative side
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for got, expected in zip(combined, run(False)):
        np.testing.assert_allclose(got, expected, **tol)


@settings(max_examples=10)
@given(case=nchw(min_n=2, min_hw=2), slope=st.sampled_from([0.0, 0.2]))
def test_fused_activation_gradients(case, slope):
    """First and second derivatives against finite differences (the second through the
    differentiable path, with the activation's derivative a constant mask)."""
    x, w, b = case
    if x.ndim < 3:
        x = x[..., None, None].repeat(2, axis=2)
    act = "relu" if slope == 0 else "leaky_relu"
    fn = lambda x, w, b: batch_norm(x, None, None, w, b, True, activation=act, negative_slope=slope)  # noqa: E731, E501
    check_grad(fn, [x, w, b], rtol=1e-4, atol=1e-6)
    check_second_order(fn, [x, w, b], rtol=1e-3, atol=1e-4)
    fn = lambda x, w, b: instance_norm(x, None, None, w, b, activation=act, negative_slope=slope)  # noqa: E731, E501
    check_grad(fn, [x, w, b], rtol=1e-4, atol=1e-6)


def test_fused_activation_in_eval_mode_uses_the_running_statistics():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 4, 4))
    mean, var = rng.standard_normal(2), 1 + rng.random(2)
    y = batch_norm(tg.tensor(x), mean, var, activation="leaky_relu", negative_slope=0.1)
    plain = (x - per_channel(mean, x)) / np.sqrt(per_channel(var, x) + 1e-5)
    np.testing.assert_allclose(y.numpy(), np.maximum(plain, 0.1 * plain), rtol=1e-12)
