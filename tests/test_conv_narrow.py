"""conv_narrow's stride-1 paths for convolutions with a narrow side (few output channels:
CycleGAN's 7x7 64 -> 3 output layer): kn2row forward, the input gradient by unfolding the
few-channel gy, the weight gradient by unfolding gy over x's padded positions. Each against
conv.py's im2col path (the narrow paths switched off) and against PyTorch; the dispatch in
conv.py takes them exactly where the rule says; first and second derivatives through conv2d
when every product goes the narrow way."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_grad, check_second_order
from spy import count_calls

import tinygan as tg
from tinygan.backend import run_kernels_on_host
from tinygan.functions import conv
from tinygan.functions import conv_narrow as cn

torch = pytest.importorskip("torch")
F = pytest.importorskip("torch.nn.functional")

S1, D1 = (1, 1), (1, 1)

# (N, C, OC, (H, W), kernel, padding): kernel 1, 3, 7 (and a non-square one), padding 0..3,
# OC 1..4 against C 16..64, batch 1..3, non-square maps
GEOMETRIES = [
    (1, 64, 3, (20, 17), (7, 7), (0, 0)),  # CycleGAN's output layer, smaller map
    (2, 16, 1, (9, 12), (3, 3), (1, 1)),
    (3, 24, 4, (7, 5), (3, 3), (0, 2)),
    (1, 32, 2, (6, 11), (1, 1), (0, 0)),
    (2, 16, 3, (5, 8), (1, 1), (2, 1)),
    (1, 48, 4, (10, 9), (7, 7), (3, 3)),
    (2, 20, 1, (8, 6), (3, 5), (3, 0)),  # padding beyond the kernel (K − 1 − P < 0)
]


def _case(geometry, dtype, seed=0):
    N, C, OC, size, kernel, padding = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, *size)).astype(dtype)
    w = rng.standard_normal((OC, C, *kernel)).astype(dtype)
    out = tuple(s + 2 * p - k + 1 for s, p, k in zip(size, padding, kernel))
    gy = rng.standard_normal((N, OC, *out)).astype(dtype)
    return x, w, gy, out


def _tol(dtype):
    return dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-3)


@pytest.fixture
def im2col_only(monkeypatch):
    """Run conv.py's functions on their im2col path."""

    def old(fn, *args, **kwargs):
        monkeypatch.setattr(cn, "ENABLED", False)
        try:
            return fn(*args, **kwargs)
        finally:
            monkeypatch.setattr(cn, "ENABLED", True)

    return old


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_narrow_products_match_im2col_and_pytorch(geometry, dtype, im2col_only):
    x, w, gy, out = _case(geometry, dtype)
    size, kernel, padding = x.shape[2:], w.shape[2:], geometry[5]
    tol = _tol(dtype)
    xt, wt, gt = (torch.from_numpy(a) for a in (x, w, gy))

    y = cn.conv_forward(x, w, padding, out)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_allclose(
        y, im2col_only(conv._conv_forward, x, w, S1, padding, D1, 1, out), **tol
    )
    np.testing.assert_allclose(y, F.conv2d(xt, wt, padding=padding).numpy(), **tol)

    dx = cn.conv_transpose_forward(gy, w, padding, size)
    assert dx.dtype == dtype and dx.shape == x.shape
    old = im2col_only(conv._conv_transpose_forward, gy, w, S1, padding, D1, 1, size)
    np.testing.assert_allclose(dx, old, **tol)
    ref = torch.nn.grad.conv2d_input(x.shape, wt, gt, padding=padding).numpy()
    np.testing.assert_allclose(dx, ref, **tol)

    dw = cn.conv_weight_grad(x, gy, kernel, padding)
    assert dw.dtype == dtype and dw.shape == w.shape
    old = im2col_only(conv._conv_weight_grad, x, gy, kernel, S1, padding, D1, 1)
    np.testing.assert_allclose(dw, old, **tol)
    ref = torch.nn.grad.conv2d_weight(xt, w.shape, gt, padding=padding).numpy()
    np.testing.assert_allclose(dw, ref, **tol)


@pytest.fixture
def narrow_calls(monkeypatch):
    """Count the narrow paths conv.py dispatches to."""
    names = ("conv_forward", "conv_transpose_forward", "conv_weight_grad")
    return count_calls(monkeypatch, cn, names)


@pytest.mark.parametrize("geometry", GEOMETRIES[:4])
def test_conv2d_takes_every_narrow_path(geometry, narrow_calls):
    """conv2d forward + backward through the autograd ops: one call of each narrow path and
    the same values and gradients as PyTorch."""
    x, w, gy, _ = _case(geometry, np.float64, seed=1)
    b = np.random.default_rng(2).standard_normal(w.shape[0])
    padding = geometry[5]
    tensors = [tg.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = tg.functions.conv2d(*tensors, padding=padding)
    y.backward(tg.tensor(gy))
    assert sorted(narrow_calls) == ["conv_forward", "conv_transpose_forward", "conv_weight_grad"]
    refs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y_ref = F.conv2d(*refs, padding=padding)
    y_ref.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-10, atol=1e-10)
    for t, r in zip(tensors, refs):
        np.testing.assert_allclose(t.grad.numpy(), r.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("padding", [0, 1, 2, 4])
def test_conv_transpose2d_with_few_input_channels(padding, narrow_calls):
    """A user's stride-1 conv_transpose2d from 2 to 24 channels is the input-gradient case:
    the narrow unfold of its input (padding 4 > K − 1 = 2: the input is cropped)."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 2, 9, 7)), rng.standard_normal((2, 24, 3, 3))
    y = tg.functions.conv_transpose2d(tg.tensor(x), tg.tensor(w), padding=padding)
    assert narrow_calls == ["conv_transpose_forward"]
    ref = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), padding=padding)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-10, atol=1e-10)


def test_which_cases_stay_on_the_im2col_path():
    """Wide outputs, strides, dilations, groups, float32 under the CUDA-kernel runner, and
    a transposed conv whose OUTPUT is the narrow side (its col2im path already multiplies
    the few output channels' taps and folds a small matrix)."""
    x = np.zeros((1, 64, 32, 32))
    narrow, wide = np.zeros((3, 64, 7, 7)), np.zeros((64, 64, 3, 3))
    assert cn.use_forward(x, narrow, S1, (0, 0), D1, 1, (26, 26))
    assert not cn.use_forward(x, narrow, S1, (0, 0), D1, 1, (26, 26), cols=np.zeros(1))
    assert not cn.use_forward(x, wide, S1, (1, 1), D1, 1, (32, 32))
    assert not cn.use_forward(x, narrow, (2, 2), (0, 0), D1, 1, (13, 13))
    assert not cn.use_forward(x, narrow, S1, (0, 0), (2, 2), 1, (20, 20))
    assert not cn.use_forward(x, np.zeros((4, 32, 3, 3)), S1, (1, 1), D1, 2, (32, 32))
    gy = np.zeros((1, 3, 26, 26))
    assert cn.use_weight_grad(x, gy, (7, 7), S1, (0, 0), D1, 1)
    assert not cn.use_weight_grad(x, np.zeros((1, 64, 32, 32)), (3, 3), S1, (1, 1), D1, 1)
    # conv_transpose2d: x (N, Ci, H, W), w (Ci, Co, KH, KW)
    assert cn.use_transpose(gy, narrow, S1, (0, 0), D1, 1, (32, 32))
    assert not cn.use_transpose(x, np.zeros((64, 3, 7, 7)), S1, (0, 0), D1, 1, (38, 38))
    x32, w32 = x.astype(np.float32), narrow.astype(np.float32)
    assert cn.use_forward(x32, w32, S1, (0, 0), D1, 1, (26, 26))
    with run_kernels_on_host():
        assert not cn.use_forward(x32, w32, S1, (0, 0), D1, 1, (26, 26))


def test_the_cyclegan_output_layer_is_narrow():
    x = np.zeros((1, 64, 134, 134), np.float32)
    w = np.zeros((3, 64, 7, 7), np.float32)
    gy = np.zeros((1, 3, 128, 128), np.float32)
    assert cn.use_forward(x, w, S1, (0, 0), D1, 1, (128, 128))
    assert cn.use_transpose(gy, w, S1, (0, 0), D1, 1, (134, 134))
    assert cn.use_weight_grad(x, gy, (7, 7), S1, (0, 0), D1, 1)


@pytest.mark.parametrize("padding", [(1, 0), (0, 2)])
def test_conv2d_derivatives_on_the_narrow_paths(padding, narrow_calls):
    """First and second derivatives of conv2d (x, W and b) by finite differences, with every
    product of the forward, the backward and the backward's backward on the narrow paths."""
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((1, 8, 4, 5)), rng.standard_normal((1, 8, 3, 3)), np.ones(1)

    def fn(x, w, b):
        return tg.functions.conv2d(x, w, b, padding=padding)

    check_grad(fn, [x, w, b])
    assert set(narrow_calls) == {"conv_forward", "conv_transpose_forward", "conv_weight_grad"}
    narrow_calls.clear()
    check_second_order(fn, [x, w, b])
    assert set(narrow_calls) == {"conv_forward", "conv_transpose_forward", "conv_weight_grad"}
