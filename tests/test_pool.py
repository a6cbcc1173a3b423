"""Pooling, interpolation and pixel shuffle: values against naive loops (and PyTorch where
installed), gradients and second derivatives against finite differences, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import check_grad, check_second_order
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygan as tg
from tinygan.functions.pool import (
    adaptive_avg_pool2d,
    avg_pool2d,
    interpolate,
    max_pool2d,
    pixel_shuffle,
    pixel_unshuffle,
    upsample,
)

seeds = st.integers(0, 2**31 - 1)


@st.composite
def pool_cases(draw, dilation=False):
    """x (N, C, H, W) and a consistent (kernel, stride, padding, dilation)."""
    kernel = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(
        draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 6))
        for k, d, p in zip(kernel, dil, padding)
    )
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(seeds))
    # well-separated distinct values: no ties for max pooling, even under finite differences
    x = (rng.permutation(n * c * size[0] * size[1]) * 0.1 + rng.uniform(0, 0.01)).reshape(
        n, c, *size
    )
    return x, kernel, stride, padding, dil


def assume_no_padding_only_window(x, kernel, stride, padding, dilation):
    """Skip geometries whose dilated window can fall entirely in the padding (an error)."""
    for size, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation):
        out = (size + 2 * p - d * (k - 1) - 1) // s + 1
        taps = np.arange(out)[:, None] * s + np.arange(k) * d
        assume(not ((taps < p) | (taps >= p + size)).all(axis=1).any())


def naive_pool(x, kernel, stride, padding, dilation, reduce, fill=0.0):
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    OH = (x.shape[2] + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (x.shape[3] + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    out = np.zeros(x.shape[:2] + (OH, OW))
    for i in range(OH):
        for j in range(OW):
            window = xp[
                :,
                :,
                i * sh : i * sh + dh * (KH - 1) + 1 : dh,
                j * sw : j * sw + dw * (KW - 1) + 1 : dw,
            ]
            out[:, :, i, j] = reduce(window, i, j)
    return out


# ---------------------------------------------------------------- avg pooling


@given(case=pool_cases(), include_pad=st.booleans())
def test_avg_pool2d_values(case, include_pad):
    x, kernel, stride, padding, _ = case
    got = avg_pool2d(tg.tensor(x), kernel, stride, padding, include_pad).numpy()
    inside = np.pad(np.ones(x.shape[2:]), [(padding[0],) * 2, (padding[1],) * 2])

    def average(window, i, j):
        count = kernel[0] * kernel[1]
        if not include_pad:
            count = inside[
                i * stride[0] : i * stride[0] + kernel[0], j * stride[1] : j * stride[1] + kernel[1]
            ].sum()
        return window.sum(axis=(2, 3)) / count

    expected = naive_pool(x, kernel, stride, padding, (1, 1), average)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@settings(max_examples=15)
@given(case=pool_cases(), include_pad=st.booleans())
def test_avg_pool2d_gradients(case, include_pad):
    x, kernel, stride, padding, _ = case
    fn = lambda x: avg_pool2d(x, kernel, stride, padding, include_pad)  # noqa: E731
    check_grad(fn, [x])
    check_second_order(lambda x: fn(x) ** 2, [x])


def test_avg_pool2d_stride_defaults_to_kernel():
    x = tg.tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_allclose(avg_pool2d(x, 2).numpy()[0, 0], [[2.5, 4.5], [10.5, 12.5]])


# ---------------------------------------------------------------- max pooling


@given(case=pool_cases(dilation=True))
def test_max_pool2d_values_and_indices(case):
    x, kernel, stride, padding, dilation = case
    assume_no_padding_only_window(x, kernel, stride, padding, dilation)
    y, index = max_pool2d(tg.tensor(x), kernel, stride, padding, dilation, return_indices=True)
    expected = naive_pool(
        x, kernel, stride, padding, dilation, lambda w, i, j: w.max(axis=(2, 3)), fill=-np.inf
    )
    np.testing.assert_array_equal(y.numpy(), expected)
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    gathered = np.take_along_axis(flat, index.numpy().reshape(*x.shape[:2], -1), axis=2)
    np.testing.assert_array_equal(gathered.reshape(y.shape), expected)


@settings(max_examples=15)
@given(case=pool_cases(dilation=True))
def test_max_pool2d_gradients(case):
    x, kernel, stride, padding, dilation = case
    assume_no_padding_only_window(x, kernel, stride, padding, dilation)
    fn = lambda x: max_pool2d(x, kernel, stride, padding, dilation)  # noqa: E731
    check_grad(fn, [x])
    check_second_order(lambda x: fn(x) ** 2, [x])


def test_max_pool2d_overlapping_windows_accumulate():
    x = tg.tensor(np.array([[[[0.0, 5.0, 1.0], [2.0, 3.0, 4.0]]]]), requires_grad=True)
    max_pool2d(x, (2, 2), stride=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[0, 2, 0], [0, 0, 0]])


# ---------------------------------------------------------------- adaptive pooling


@given(
    h=st.integers(1, 7), w=st.integers(1, 7), oh=st.integers(1, 5), ow=st.integers(1, 5), seed=seeds
)
def test_adaptive_avg_pool2d(h, w, oh, ow, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, h, w))
    got = adaptive_avg_pool2d(tg.tensor(x), (oh, ow)).numpy()
    expected = np.zeros((2, 3, oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * h // oh, math.ceil((i + 1) * h / oh))
            cols = slice(j * w // ow, math.ceil((j + 1) * w / ow))
            expected[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    check_grad(lambda x: adaptive_avg_pool2d(x, (oh, ow)), [x])


def test_global_average_pooling():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    y = adaptive_avg_pool2d(tg.tensor(x), 1)
    assert y.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(y.numpy()[..., 0, 0], x.mean(axis=(2, 3)))
    check_second_order(lambda x: adaptive_avg_pool2d(x, 1) ** 2, [x])


# ---------------------------------------------------------------- interpolation


def naive_resize(x, out, scale, mode, align_corners):
    """Per output pixel: PyTorch's source coordinates, then nearest or bilinear weights."""
    H, W = x.shape[2:]
    y = np.zeros(x.shape[:2] + tuple(out))

    def source(o, n_in, n_out, s):
        if mode == "nearest":
            return min(int(math.floor(o * s)), n_in - 1)
        if align_corners:
            return o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        return max((o + 0.5) * s - 0.5, 0.0)

    for i in range(out[0]):
        for j in range(out[1]):
            si, sj = source(i, H, out[0], scale[0]), source(j, W, out[1], scale[1])
            if mode == "nearest":
                y[:, :, i, j] = x[:, :, si, sj]
                continue
            i0, j0 = min(int(si), H - 1), min(int(sj), W - 1)
            i1, j1 = min(i0 + 1, H - 1), min(j0 + 1, W - 1)
            a, b = si - i0, sj - j0
            y[:, :, i, j] = (
                (1 - a) * (1 - b) * x[:, :, i0, j0]
                + (1 - a) * b * x[:, :, i0, j1]
                + a * (1 - b) * x[:, :, i1, j0]
                + a * b * x[:, :, i1, j1]
            )
    return y


@st.composite
def resize_cases(draw):
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    corners = draw(st.booleans()) if mode == "bilinear" else None
    x = np.random.default_rng(draw(seeds)).standard_normal((2, 2, h, w))
    if draw(st.booleans()):
        size = draw(st.integers(1, 8)), draw(st.integers(1, 8))
        return (
            x,
            dict(size=size, mode=mode, align_corners=corners),
            size,
            (h / size[0], w / size[1]),
        )
    factor = draw(st.sampled_from([1, 2, 3, 0.5, 1.5, (2, 3)]))
    fh, fw = factor if isinstance(factor, tuple) else (factor, factor)
    out = (max(1, math.floor(h * fh)), max(1, math.floor(w * fw)))
    if math.floor(h * fh) < 1 or math.floor(w * fw) < 1:
        factor = 2
        fh = fw = 2
        out = (2 * h, 2 * w)
    return x, dict(scale_factor=factor, mode=mode, align_corners=corners), out, (1 / fh, 1 / fw)


@given(case=resize_cases())
def test_interpolate_values(case):
    x, kwargs, out, scale = case
    got = interpolate(tg.tensor(x), **kwargs).numpy()
    expected = naive_resize(x, out, scale, kwargs["mode"], kwargs["align_corners"])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@settings(max_examples=15)
@given(case=resize_cases())
def test_interpolate_gradients(case):
    x, kwargs, _, _ = case
    check_grad(lambda x: interpolate(x, **kwargs), [x])
    check_second_order(lambda x: interpolate(x, **kwargs) ** 2, [x])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(scale_factor=2),
        dict(scale_factor=(1, 3)),
        dict(size=(7, 3)),
        dict(scale_factor=0.5),
        dict(scale_factor=2, mode="bilinear"),
        dict(scale_factor=2, mode="bilinear", align_corners=True),
        dict(size=(9, 4), mode="bilinear"),
        dict(size=(9, 4), mode="bilinear", align_corners=True),
    ],
)
def test_interpolate_against_pytorch(kwargs):
    torch = pytest.importorskip("torch")
    F = pytest.importorskip("torch.nn.functional")
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 5))
    xt = torch.tensor(x, requires_grad=True)
    ours = tg.tensor(x, requires_grad=True)
    y, y_ref = upsample(ours, **kwargs), F.interpolate(xt, **kwargs)
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-12, atol=1e-14)
    g = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(tg.tensor(g))
    y_ref.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- pixel shuffle


@given(
    r=st.integers(1, 3), c=st.integers(1, 2), h=st.integers(1, 3), w=st.integers(1, 3), seed=seeds
)
def test_pixel_shuffle(r, c, h, w, seed):
    x = np.random.default_rng(seed).standard_normal((2, c * r * r, h, w))
    y = pixel_shuffle(tg.tensor(x), r).numpy()
    for i in range(r):
        for j in range(r):
            np.testing.assert_array_equal(y[:, :, i::r, j::r], x[:, i * r + j :: r * r])
    np.testing.assert_array_equal(pixel_unshuffle(tg.tensor(y), r).numpy(), x)
    check_grad(lambda x: pixel_shuffle(x, r), [x])
    check_grad(lambda y: pixel_unshuffle(y, r), [y])


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: avg_pool2d(tg.zeros(1, 1, 4, 4), 2, padding=2), "half the kernel"),
        (lambda: max_pool2d(tg.zeros(1, 1, 1, 1), (1, 2), 1, (0, 1), (1, 2)), "only padding"),
        (lambda: avg_pool2d(tg.zeros(1, 1, 1, 4), 3), "not positive"),
        (lambda: avg_pool2d(tg.zeros(4, 4), 2), "N, C, H, W"),
        (lambda: max_pool2d(tg.zeros(1, 1, 4, 4), 2, stride=0), "stride"),
        (lambda: max_pool2d(tg.zeros(1, 1, 4, 4), 3, padding=-1), "padding"),
        (lambda: interpolate(tg.zeros(1, 1, 4, 4), scale_factor=2, mode="bicubic"), "mode"),
        (
            lambda: interpolate(tg.zeros(1, 1, 4, 4), scale_factor=2, align_corners=True),
            "align_corners",
        ),
        (lambda: interpolate(tg.zeros(1, 1, 4, 4)), "exactly one"),
        (lambda: interpolate(tg.zeros(1, 1, 4, 4), scale_factor=0.1), "gives output"),
        (lambda: pixel_shuffle(tg.zeros(1, 3, 2, 2), 2), "divisible"),
        (lambda: pixel_unshuffle(tg.zeros(1, 3, 3, 2), 2), "divisible"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
