"""The CUDA kernels of kernels/*.cu, run on the CPU through the host shim, against NumPy.

Each test goes through the same launch helper (tinygan.backend.cuda_kernels.*_gpu) and so the
same launch geometry that the GPU path uses; only the runner differs. test_kernels_cuda.py
re-runs the device-agnostic tests below on a GPU, with its own ``runner`` fixture.

References are written plainly (explicit loops over kernel offsets, np.pad, float64), not
with the kernels' own index arithmetic. Sizes stay small: the shim spends one OS thread per
CUDA thread.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinygan.backend import cuda_kernels as ck

KERNEL_FILES = sorted(p.name for p in ck.KERNEL_DIR.glob("*.cu"))


@pytest.fixture
def runner() -> Any:
    if shutil.which("g++") is None:
        pytest.skip("no g++ to compile the host kernels")
    from tinygan.backend import host_kernels

    return host_kernels.HOST


@pytest.fixture(params=["full grid", "2 blocks"])
def grid_cap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run once with the usual grid and once with at most 2 blocks, so the grid-stride loops
    of the elementwise kernels go round more than once."""
    if request.param == "2 blocks":
        monkeypatch.setattr(ck, "MAX_BLOCKS", 2)


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def to_np(a: Any) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


def close(got: Any, want: np.ndarray, tol: float = 1e-5) -> None:
    np.testing.assert_allclose(to_np(got), want, rtol=tol, atol=tol)


# ---- im2col / col2im ---------------------------------------------------------------------

# (N, C, H, W, kh, kw, stride, padding, dilation)
CONV_CASES = [
    (2, 3, 7, 6, 3, 3, 1, 1, 1),
    (1, 2, 8, 8, 4, 4, 2, 1, 1),  # DCGAN's 4x4 stride 2
    (2, 2, 9, 7, 3, 2, (2, 1), (0, 1), (2, 1)),
    (1, 3, 5, 5, 1, 1, 1, 0, 1),
    (1, 1, 11, 10, 5, 3, 3, 2, (1, 2)),
    (1, 2, 6, 6, 7, 7, 1, 3, 1),  # CycleGAN's 7x7 stem, larger than the image
]


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else v


def im2col_ref(x: np.ndarray, kh: int, kw: int, stride, padding, dilation) -> np.ndarray:
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n, c, h, w = x.shape
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.zeros((n, c, kh, kw, oh, ow))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[
                :, :, i * dh : i * dh + sh * oh : sh, j * dw : j * dw + sw * ow : sw
            ]
    return cols


def col2im_ref(cols: np.ndarray, h: int, w: int, stride, padding, dilation) -> np.ndarray:
    """Add every column entry back at the pixel it was read from (the adjoint of im2col)."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n, c, kh, kw, oh, ow = cols.shape
    big = np.zeros((n, c, max(h + 2 * ph, dh * kh + sh * oh), max(w + 2 * pw, dw * kw + sw * ow)))
    for i in range(kh):
        for j in range(kw):
            big[:, :, i * dh : i * dh + sh * oh : sh, j * dw : j * dw + sw * ow : sw] += cols[
                :, :, i, j
            ]
    return big[:, :, ph : ph + h, pw : pw + w]


@pytest.mark.parametrize("case", CONV_CASES)
def test_im2col(runner: Any, grid_cap: None, case: tuple) -> None:
    n, c, h, w, kh, kw, s, p, d = case
    x = rand(np.random.default_rng(0), n, c, h, w)
    cols = ck.im2col_gpu(runner.xp.asarray(x), kh, kw, s, p, d, runner=runner)
    close(cols, im2col_ref(x, kh, kw, s, p, d), tol=0)


@pytest.mark.parametrize("case", CONV_CASES)
def test_col2im(runner: Any, grid_cap: None, case: tuple) -> None:
    n, c, h, w, kh, kw, s, p, d = case
    rng = np.random.default_rng(1)
    oh, ow = im2col_ref(np.zeros((1, 1, h, w)), kh, kw, s, p, d).shape[-2:]
    cols = rand(rng, n, c, kh, kw, oh, ow)
    x = ck.col2im_gpu(runner.xp.asarray(cols), (h, w), s, p, d, runner=runner)
    close(x, col2im_ref(cols, h, w, s, p, d))
    # The adjoint identity <im2col(y), cols> = <y, col2im(cols)>.
    y = rand(rng, n, c, h, w)
    lhs = np.vdot(im2col_ref(y, kh, kw, s, p, d), cols)
    assert np.isclose(lhs, np.vdot(y, to_np(x)), rtol=1e-4)


def test_col2im_output_padding(runner: Any) -> None:
    """A transposed convolution's output_padding: the image is larger than im2col would need,
    so its last row and column receive no column at all."""
    cols = rand(np.random.default_rng(2), 1, 2, 3, 3, 4, 4)  # k=3, s=2, p=1 over a 4x4 input
    x = ck.col2im_gpu(runner.xp.asarray(cols), (8, 8), 2, 1, 1, runner=runner)
    close(x, col2im_ref(cols, 8, 8, 2, 1, 1))


# ---- bias + activation -------------------------------------------------------------------


def act_ref(z: np.ndarray, act: str, slope: float) -> tuple[np.ndarray, np.ndarray]:
    """act(z) and act'(z), from the pre-activation z."""
    if act == "relu":
        return np.maximum(z, 0), (z > 0).astype(z.dtype)
    if act == "leaky_relu":
        return np.where(z > 0, z, slope * z), np.where(z > 0, 1.0, slope)
    if act == "tanh":
        return np.tanh(z), 1 - np.tanh(z) ** 2
    if act == "sigmoid":
        sig = 1 / (1 + np.exp(-z))
        return sig, sig * (1 - sig)
    return z, np.ones_like(z)


@pytest.mark.parametrize("act", list(ck.ACTIVATIONS))
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 6)], ids=["conv", "linear"])
def test_bias_act(runner: Any, grid_cap: None, act: str, shape: tuple) -> None:
    rng = np.random.default_rng(3)
    x, b, dy = rand(rng, *shape), rand(rng, shape[1]), rand(rng, *shape)
    slope = 0.2
    z = x.astype(np.float64) + b.reshape(-1, *[1] * (len(shape) - 2))
    want_y, want_grad = act_ref(z, act, slope)
    y = ck.bias_act_gpu(runner.xp.asarray(x), runner.xp.asarray(b), act, slope, runner=runner)
    close(y, want_y)
    dz = ck.bias_act_backward_gpu(runner.xp.asarray(dy), y, act, slope, runner=runner)
    close(dz, dy * want_grad)


def test_bias_act_without_bias(runner: Any) -> None:
    x = rand(np.random.default_rng(4), 2, 5, 3)
    close(ck.bias_act_gpu(runner.xp.asarray(x), None, "relu", runner=runner), np.maximum(x, 0))


@pytest.mark.parametrize("shape", [(3, 4, 10, 11), (5, 7), (1, 2, 1, 1)])
def test_bias_grad(runner: Any, shape: tuple) -> None:
    """Per-channel sums; (3, 4, 10, 11) has 330 values per channel, more than a block."""
    dz = rand(np.random.default_rng(5), *shape)
    want = dz.astype(np.float64).sum(axis=tuple(i for i in range(len(shape)) if i != 1))
    close(ck.bias_grad_gpu(runner.xp.asarray(dz), runner=runner), want, tol=1e-4)


# ---- batch norm --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3, 9, 10), (2, 5, 3, 3), (16, 6)])
def test_batch_norm(runner: Any, shape: tuple) -> None:
    """Statistics, normalisation and backward; (4, 3, 9, 10) has 360 values a channel."""
    rng = np.random.default_rng(6)
    c = shape[1]
    x = rand(rng, *shape) * 3 + 2  # an offset mean, as after a ReLU
    gamma, beta, dy = rand(rng, c), rand(rng, c), rand(rng, *shape)
    axes = tuple(i for i in range(len(shape)) if i != 1)
    bshape = (1, c) + (1,) * (len(shape) - 2)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    mean, var = x64.mean(axis=axes), x64.var(axis=axes)
    eps = 1e-5
    xhat = (x64 - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + eps)

    xd = runner.xp.asarray(x)
    m, v, invstd = ck.batch_norm_stats_gpu(xd, eps, runner=runner)
    close(m, mean, tol=1e-5)
    close(v, var, tol=1e-4)
    close(invstd, 1 / np.sqrt(var + eps), tol=1e-4)

    g, b = runner.xp.asarray(gamma), runner.xp.asarray(beta)
    y = ck.batch_norm_forward_gpu(xd, m, invstd, g, b, runner=runner)
    close(y, gamma.reshape(bshape) * xhat + beta.reshape(bshape), tol=1e-4)

    dx, dgamma, dbeta = ck.batch_norm_backward_gpu(
        runner.xp.asarray(dy), xd, m, invstd, g, runner=runner
    )
    want_dbeta, want_dgamma = dy64.sum(axis=axes), (dy64 * xhat).sum(axis=axes)
    close(dbeta, want_dbeta, tol=1e-4)
    close(dgamma, want_dgamma, tol=1e-4)
    mdy, mdyx = dy64.mean(axis=axes).reshape(bshape), (dy64 * xhat).mean(axis=axes).reshape(bshape)
    want_dx = (gamma.reshape(bshape) / np.sqrt(var.reshape(bshape) + eps)) * (
        dy64 - mdy - xhat * mdyx
    )
    close(dx, want_dx, tol=1e-4)


def test_batch_norm_against_torch(runner: Any) -> None:
    """An independent oracle for the backward formula: PyTorch's autograd."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x, dy, gamma, beta = rand(rng, 3, 4, 5, 6), rand(rng, 3, 4, 5, 6), rand(rng, 4), rand(rng, 4)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    ty = torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True, eps=1e-5)
    ty.backward(torch.tensor(dy))

    xd, g = runner.xp.asarray(x), runner.xp.asarray(gamma)
    m, _, invstd = ck.batch_norm_stats_gpu(xd, 1e-5, runner=runner)
    y = ck.batch_norm_forward_gpu(xd, m, invstd, g, runner.xp.asarray(beta), runner=runner)
    dx, dgamma, dbeta = ck.batch_norm_backward_gpu(
        runner.xp.asarray(dy), xd, m, invstd, g, runner=runner
    )
    close(y, ty.detach().numpy(), tol=1e-4)
    close(dx, tx.grad.numpy(), tol=1e-4)
    close(dgamma, tg.grad.numpy(), tol=1e-4)
    close(dbeta, tb.grad.numpy(), tol=1e-4)


# ---- instance norm / AdaIN ---------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 17, 19), (3, 2, 3, 3)])
@pytest.mark.parametrize("affine", ["adain", "per-channel", "none"])
def test_instance_norm(runner: Any, shape: tuple, affine: str) -> None:
    """(2, 3, 17, 19) has 323 values a plane, more than one block; 3x3 leaves most idle."""
    rng = np.random.default_rng(8)
    n, c = shape[:2]
    x, dy = rand(rng, *shape) * 2 - 1, rand(rng, *shape)
    scale = {"adain": rand(rng, n, c), "per-channel": rand(rng, c), "none": None}[affine]
    bias = {"adain": rand(rng, n, c), "per-channel": rand(rng, c), "none": None}[affine]
    full_scale = np.broadcast_to(1.0 if scale is None else scale, (n, c))[:, :, None, None]
    full_bias = np.broadcast_to(0.0 if bias is None else bias, (n, c))[:, :, None, None]
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    mean, var = x64.mean(axis=(2, 3), keepdims=True), x64.var(axis=(2, 3), keepdims=True)
    eps = 1e-5
    xhat = (x64 - mean) / np.sqrt(var + eps)

    dev = runner.xp.asarray
    sd, bd = (None if a is None else dev(a) for a in (scale, bias))
    y, m, invstd = ck.instance_norm_forward_gpu(dev(x), sd, bd, eps, runner=runner)
    close(y, full_scale * xhat + full_bias, tol=1e-4)
    close(m, mean[:, :, 0, 0], tol=1e-5)
    close(invstd, 1 / np.sqrt(var[:, :, 0, 0] + eps), tol=1e-4)

    dx, dscale, dbias = ck.instance_norm_backward_gpu(dev(dy), dev(x), m, invstd, sd, runner=runner)
    close(dbias, dy64.sum(axis=(2, 3)), tol=1e-4)
    close(dscale, (dy64 * xhat).sum(axis=(2, 3)), tol=1e-4)
    mdy = dy64.mean(axis=(2, 3), keepdims=True)
    mdyx = (dy64 * xhat).mean(axis=(2, 3), keepdims=True)
    close(dx, full_scale / np.sqrt(var + eps) * (dy64 - mdy - xhat * mdyx), tol=1e-4)


def test_instance_norm_against_torch(runner: Any) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    x, dy, w, b = rand(rng, 2, 3, 6, 7), rand(rng, 2, 3, 6, 7), rand(rng, 3), rand(rng, 3)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.instance_norm(tx, weight=tw, bias=tb, eps=1e-5)
    ty.backward(torch.tensor(dy))

    dev = runner.xp.asarray
    y, m, invstd = ck.instance_norm_forward_gpu(dev(x), dev(w), dev(b), 1e-5, runner=runner)
    dx, dscale, dbias = ck.instance_norm_backward_gpu(
        dev(dy), dev(x), m, invstd, dev(w), runner=runner
    )
    close(y, ty.detach().numpy(), tol=1e-4)
    close(dx, tx.grad.numpy(), tol=1e-4)
    close(to_np(dscale).sum(axis=0), tw.grad.numpy(), tol=1e-4)
    close(to_np(dbias).sum(axis=0), tb.grad.numpy(), tol=1e-4)


# ---- reflection pad ----------------------------------------------------------------------


def reflect_index(n: int, before: int, after: int) -> np.ndarray:
    """For each padded position, the input position it copies (np.pad's 'reflect' mode)."""
    return np.pad(np.arange(n), (before, after), mode="reflect")


@pytest.mark.parametrize(
    "shape, padding",
    [((2, 3, 5, 6), 1), ((1, 2, 4, 4), 3), ((1, 1, 3, 7), (2, 6, 1, 2)), ((2, 4, 6), (0, 2, 3, 0))],
)
def test_reflection_pad(runner: Any, grid_cap: None, shape: tuple, padding: Any) -> None:
    """Includes pads of H-1 (the largest allowed), where one input row gets three outputs."""
    rng = np.random.default_rng(10)
    left, right, top, bottom = (padding,) * 4 if isinstance(padding, int) else padding
    x = rand(rng, *shape)
    lead = [(0, 0)] * (len(shape) - 2)
    want = np.pad(x, [*lead, (top, bottom), (left, right)], mode="reflect")
    y = ck.reflection_pad2d_gpu(runner.xp.asarray(x), padding, runner=runner)
    close(y, want, tol=0)

    dy = rand(rng, *want.shape)
    rows, cols = reflect_index(shape[-2], top, bottom), reflect_index(shape[-1], left, right)
    want_dx = np.zeros(shape)
    for oh, ih in enumerate(rows):
        for ow, iw in enumerate(cols):
            want_dx[..., ih, iw] += dy[..., oh, ow]
    dx = ck.reflection_pad2d_backward_gpu(runner.xp.asarray(dy), padding, runner=runner)
    close(dx, want_dx)


def test_reflection_pad_rejects_large_padding(runner: Any) -> None:
    with pytest.raises(ValueError, match="reflection_pad2d"):
        ck.reflection_pad2d_gpu(runner.xp.zeros((1, 1, 3, 3), np.float32), 3, runner=runner)


# ---- nearest upsampling ------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, factor", [((2, 3, 4, 5), 2), ((1, 2, 3, 3), (3, 1)), ((5, 2, 1), 4)]
)
def test_upsample_nearest(runner: Any, grid_cap: None, shape: tuple, factor: Any) -> None:
    rng = np.random.default_rng(11)
    fh, fw = pair(factor)
    x = rand(rng, *shape)
    y = ck.upsample_nearest2d_gpu(runner.xp.asarray(x), factor, runner=runner)
    close(y, x.repeat(fh, axis=-2).repeat(fw, axis=-1), tol=0)

    dy = rand(rng, *shape[:-2], shape[-2] * fh, shape[-1] * fw)
    blocks = dy.astype(np.float64).reshape(*shape[:-2], shape[-2], fh, shape[-1], fw)
    dx = ck.upsample_nearest2d_backward_gpu(runner.xp.asarray(dy), factor, runner=runner)
    close(dx, blocks.sum(axis=(-3, -1)))


# ---- checks on the helpers themselves ----------------------------------------------------


def test_helpers_reject_bad_input(runner: Any) -> None:
    x64 = runner.xp.zeros((1, 1, 4, 4))
    with pytest.raises(TypeError, match="im2col: x must be float32"):
        ck.im2col_gpu(x64, 3, 3, runner=runner)
    x = runner.xp.zeros((1, 1, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        ck.im2col_gpu(x, 5, 5, runner=runner)
    with pytest.raises(ValueError, match="unknown activation"):
        ck.bias_act_gpu(x, None, "gelu", runner=runner)
    with pytest.raises(ValueError, match="does not broadcast"):
        ck.instance_norm_forward_gpu(x, runner.xp.ones(3, dtype=np.float32), runner=runner)
    with pytest.raises(TypeError, match="takes 16 arguments"):
        runner.launch("im2col.cu", "im2col_kernel", (1, 1, 1), (32, 1, 1), x)


def test_every_kernel_has_a_launch_helper() -> None:
    """Each extern "C" kernel is launched by some helper in cuda_kernels.py (by name)."""
    helpers = Path(ck.__file__).read_text()
    for file in KERNEL_FILES:
        for name in ck.kernel_signatures(file):
            assert re.search(rf'"{file}", "{name}"', helpers), f"{file}:{name} has no helper"


def test_reduce_geometry() -> None:
    for length in (0, 1, 31, 33, 200, 256, 10_000):
        (rows, _, _), (threads, _, _) = ck.reduce_geometry(7, length)
        assert rows == 7 and 32 <= threads <= ck.REDUCE_BLOCK and threads & (threads - 1) == 0
        assert threads >= min(length, ck.REDUCE_BLOCK)


# ---- host shim specifics -----------------------------------------------------------------


def test_shim_early_return_before_syncthreads(runner: Any) -> None:
    """More blocks than rows: the extra blocks return before their __syncthreads, which must
    neither deadlock nor disturb the blocks that do work (CUDA's exited-thread semantics)."""
    from tinygan.backend import host_kernels

    x = rand(np.random.default_rng(12), 3, 40)
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    y, mean, invstd = np.empty_like(x), np.empty(3, np.float32), np.empty(3, np.float32)
    args = (x, ones, zeros, y, mean, invstd, 3, 40, 1e-5)
    host_kernels.launch("instance_norm.cu", "instance_norm_forward", 5, 64, *args)
    close(mean, x.astype(np.float64).mean(axis=1))


def test_shim_rejects_read_only_output(runner: Any) -> None:
    from tinygan.backend import host_kernels

    x = np.zeros(4, np.float32)
    y = np.zeros(4, np.float32)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        host_kernels.launch(
            "upsample_nearest.cu", "upsample_nearest2d_forward", 1, 32, x, y, 1, 2, 2, 1, 1
        )
