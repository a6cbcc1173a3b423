"""Pooling and resampling: avg/max/adaptive pooling, interpolate (nearest, bilinear), pixel
shuffle. All take x: (N, C, H, W).

Every linear op here comes with its adjoint as the backward, and the adjoint's backward is
the op again, so they are differentiable to any order:
    window sum (avg_pool2d, nearest upsampling by an integer factor)  <->  spread over windows
    a sparse map along one axis (interpolate, adaptive pooling)       <->  its transpose
max_pool2d gathers each window's arg-max, and the gather's adjoint scatters the gradient back.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygan.autograd import Function, Tensor
from tinygan.backend import cuda_kernels, get_array_module, kernel_runner, to_device
from tinygan.functions.conv import IntOrPair, Pair, _pair, conv_output_size
from tinygan.functions.reduce import mean
from tinygan.functions.shape import reshape, transpose


def _check_nchw(op: str, x: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be (N, C, H, W), got shape {x.shape}")


def _taps(kernel: Pair, stride: Pair, dilation: Pair, out_size: Pair) -> Any:
    """For each kernel tap (i, j): the slices of the padded image it reads for every window."""
    (KH, KW), (SH, SW), (DH, DW), (OH, OW) = kernel, stride, dilation, out_size
    for i in range(KH):
        for j in range(KW):
            rows = slice(i * DH, i * DH + SH * (OH - 1) + 1, SH)
            columns = slice(j * DW, j * DW + SW * (OW - 1) + 1, SW)
            yield (slice(None), slice(None), rows, columns)


# ---------------------------------------------------------------- window sums (avg pooling)


def _window_sum(x: Any, kernel: Pair, stride: Pair, padding: Pair) -> Any:
    """Σ over each KH×KW window of the zero-padded x: one strided add per kernel tap."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    PH, PW = padding
    out = tuple(conv_output_size(*a, 1) for a in zip((H, W), kernel, stride, padding))
    if PH or PW:
        x = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    y = xp.zeros((N, C) + out, dtype=x.dtype)
    for window in _taps(kernel, stride, (1, 1), out):
        y += x[window]
    return y


def _block_kernel(x: Any, kernel: Pair, stride: Pair, padding: Pair) -> Any:
    """The kernels/upsample_nearest.cu runner when the windows tile the image exactly
    (kernel = stride, no padding), else None."""
    return kernel_runner(x) if kernel == stride and padding == (0, 0) else None


class _WindowSum(Function):
    """y[n, c, oh, ow] = Σ_{window} x_pad / divisor; ``divisor`` is a number or an (OH, OW)
    array. The backward spreads each gradient back over its window (_WindowSpread)."""

    def forward(self, x: Any, kernel: Pair, stride: Pair, padding: Pair, divisor: Any) -> Any:
        self.params = dict(kernel=kernel, stride=stride, padding=padding, divisor=divisor)
        self.size = x.shape[2:]
        runner = _block_kernel(x, kernel, stride, padding)
        if runner is not None and x.shape[2] % kernel[0] == 0 and x.shape[3] % kernel[1] == 0:
            # f×f block sums: nearest upsampling's backward (a gather)
            y = cuda_kernels.upsample_nearest2d_backward_gpu(x, kernel, runner)
        else:
            y = _window_sum(x, kernel, stride, padding)
        y /= divisor
        return y

    def backward(self, grad: Tensor) -> Tensor:
        return _WindowSpread.apply(grad, size=self.size, **self.params)


class _WindowSpread(Function):
    """x_pad[window] += g / divisor for every window, cropped to (H, W): _WindowSum's adjoint."""

    def forward(
        self, g: Any, size: Pair, kernel: Pair, stride: Pair, padding: Pair, divisor: Any
    ) -> Any:
        self.params = dict(kernel=kernel, stride=stride, padding=padding, divisor=divisor)
        N, C, OH, OW = g.shape
        (H, W), (PH, PW) = size, padding
        g = g / divisor
        runner = _block_kernel(g, kernel, stride, padding)
        if runner is not None and (H, W) == (OH * kernel[0], OW * kernel[1]):
            return cuda_kernels.upsample_nearest2d_gpu(g, kernel, runner)  # nearest upsampling
        out = self.xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=g.dtype)
        for window in _taps(kernel, stride, (1, 1), (OH, OW)):
            out[window] += g
        return out[:, :, PH : PH + H, PW : PW + W]

    def backward(self, grad: Tensor) -> Tensor:
        return _WindowSum.apply(grad, **self.params)


def avg_pool2d(
    x: Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    count_include_pad: bool = True,
) -> Tensor:
    """Average over each KH×KW window, as PyTorch's ``F.avg_pool2d`` (floor mode).

    y[n, c, i, j] = (1 / |window|) Σ_{kh, kw} x_pad[n, c, i·SH + kh, j·SW + kw]
    x: (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2·PH − KH) // SH + 1; stride defaults to the
    kernel. |window| = KH·KW, or only the pixels inside the image if not count_include_pad.
    """
    op = "avg_pool2d"
    _check_nchw(op, x)
    kernel = _pair(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else _pair(stride, "stride", op, 1)
    padding = _pair(padding, "padding", op, 0)
    _check_pool(op, x, kernel, stride, padding, (1, 1))
    divisor: Any = kernel[0] * kernel[1]
    if not count_include_pad and (padding[0] or padding[1]):
        ones = np.ones((1, 1) + x.shape[2:], dtype=x.dtype)
        divisor = to_device(_window_sum(ones, kernel, stride, padding)[0, 0], x.device)
    return _WindowSum.apply(x, kernel=kernel, stride=stride, padding=padding, divisor=divisor)


def _check_pool(
    op: str, x: Tensor, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> None:
    """PyTorch's rules: padding at most half the kernel, a positive output size; and (with
    dilation) no window made of padding only."""
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    geometry = list(zip(x.shape[2:], kernel, stride, padding, dilation))
    out = [conv_output_size(*g) for g in geometry]
    if min(out) <= 0:
        raise ValueError(
            f"{op}: output size {tuple(out)} is not positive for input {x.shape}, "
            f"kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation}"
        )
    for (size, k, s, p, d), o in zip(geometry, out):
        taps = np.arange(o)[:, None] * s + np.arange(k) * d  # padded positions read
        if np.any(((taps < p) | (taps >= p + size)).all(axis=1)):
            raise ValueError(
                f"{op}: with input {x.shape}, kernel {kernel}, padding {padding} and dilation "
                f"{dilation} a window reads only padding"
            )


# ---------------------------------------------------------------- max pooling


def _argmax_index(x: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Any:
    """For each window, the flat index h·W + w of its (first) largest pixel: (N, C, OH, OW)."""
    xp = get_array_module(x)
    H, W = x.shape[2:]
    KW, (SH, SW), (PH, PW), (DH, DW) = kernel[1], stride, padding, dilation
    OH, OW = (conv_output_size(*a) for a in zip((H, W), kernel, stride, padding, dilation))
    if PH or PW:
        x = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)), constant_values=-np.inf)
    windows = xp.stack([x[w] for w in _taps(kernel, stride, dilation, (OH, OW))], axis=-1)
    tap = windows.argmax(axis=-1)  # which of the KH·KW taps holds the maximum
    rows = xp.arange(OH).reshape(-1, 1) * SH + (tap // KW) * DH - PH
    cols = xp.arange(OW) * SW + (tap % KW) * DW - PW
    return rows * W + cols  # never a padding position: padding is at most half the kernel


class _ScatterFlat(Function):
    """out (N, C, H, W) = zeros, then out.flat[index] += g per (n, c): max pooling's backward."""

    def forward(self, g: Any, index: Any, size: Pair) -> Any:
        xp = self.xp
        self.index = index
        N, C = g.shape[:2]
        area = size[0] * size[1]
        flat = index.reshape(N * C, -1) + xp.arange(N * C).reshape(-1, 1) * area
        out = xp.bincount(flat.ravel(), weights=g.ravel(), minlength=N * C * area)
        return out.astype(g.dtype, copy=False).reshape(N, C, *size)

    def backward(self, grad: Tensor) -> Tensor:
        return _GatherFlat.apply(grad, index=self.index)


class _GatherFlat(Function):
    """y[n, c, ...] = x[n, c].flat[index[n, c, ...]]; the adjoint of _ScatterFlat."""

    def forward(self, x: Any, index: Any) -> Any:
        self.index, self.size = index, x.shape[2:]
        N, C = x.shape[:2]
        flat = x.reshape(N, C, -1)
        return self.xp.take_along_axis(flat, index.reshape(N, C, -1), axis=2).reshape(index.shape)

    def backward(self, grad: Tensor) -> Tensor:
        return _ScatterFlat.apply(grad, index=self.index, size=self.size)


def max_pool2d(
    x: Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Maximum over each window, as PyTorch's ``F.max_pool2d`` (padding counts as −∞).

    x: (N, C, H, W) -> (N, C, OH, OW); OH = (H + 2·PH − DH·(KH − 1) − 1) // SH + 1. The
    gradient goes to the (first) largest element of each window. With ``return_indices``
    also returns each maximum's flat index h·W + w into its (H, W) plane.
    """
    op = "max_pool2d"
    _check_nchw(op, x)
    kernel = _pair(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else _pair(stride, "stride", op, 1)
    padding = _pair(padding, "padding", op, 0)
    dilation = _pair(dilation, "dilation", op, 1)
    _check_pool(op, x, kernel, stride, padding, dilation)
    index = _argmax_index(x.data, kernel, stride, padding, dilation)
    y = _GatherFlat.apply(x, index=index)
    return (y, Tensor._wrap(index)) if return_indices else y


# ---------------------------------------------------------------- sparse maps along one axis


class _AxisMap(Function):
    """y[..., o, ...] = Σ_t w[o, t] · x[..., idx[o, t], ...] along ``axis``.

    ``table`` = (idx, w), both (out, taps); ``adjoint`` is the transposed table, so the
    backward is the same op with the tables swapped.
    """

    def forward(self, x: Any, axis: int, table: tuple, adjoint: tuple) -> Any:
        self.axis, self.table, self.adjoint = axis, table, adjoint
        idx, w = table
        shape = [1] * x.ndim
        shape[axis] = idx.shape[0]
        y = None
        for t in range(idx.shape[1]):
            term = self.xp.take(x, idx[:, t], axis=axis)
            if w is not None:
                term *= w[:, t].reshape(shape).astype(x.dtype, copy=False)
            y = term if y is None else y.__iadd__(term)
        return y

    def backward(self, grad: Tensor) -> Tensor:
        return _AxisMap.apply(grad, axis=self.axis, table=self.adjoint, adjoint=self.table)


def _transpose_table(idx: np.ndarray, w: np.ndarray, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """The adjoint of the map (idx, w): for every input position, the outputs that read it."""
    out = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    src, weight = idx.ravel(), w.ravel()
    keep = weight != 0
    out, src, weight = out[keep], src[keep], weight[keep]
    order = np.argsort(src, kind="stable")
    out, src, weight = out[order], src[order], weight[order]
    counts = np.bincount(src, minlength=n_in)
    rank = np.arange(src.size) - (np.cumsum(counts) - counts)[src]
    idx_t = np.zeros((n_in, max(int(counts.max(initial=0)), 1)), dtype=np.int64)
    w_t = np.zeros(idx_t.shape)
    idx_t[src, rank], w_t[src, rank] = out, weight
    return idx_t, w_t


def _axis_map(x: Tensor, axis: int, idx: np.ndarray, w: np.ndarray) -> Tensor:
    """Apply the map (idx, w) along ``axis``; weights all one are skipped."""
    idx_t, w_t = _transpose_table(idx, w, x.shape[axis])
    device = x.device

    def table(i: np.ndarray, weights: np.ndarray) -> tuple:
        ones = bool(np.all(weights == 1))
        return to_device(i, device), None if ones else to_device(weights, device)

    return _AxisMap.apply(x, axis=axis, table=table(idx, w), adjoint=table(idx_t, w_t))


def _nearest_table(n_in: int, n_out: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's 'nearest': source = min(floor(o · scale), n_in − 1)."""
    src = np.minimum(np.floor(np.arange(n_out) * scale).astype(np.int64), n_in - 1)
    return src[:, None], np.ones((n_out, 1))


def _linear_table(
    n_in: int, n_out: int, scale: float, align_corners: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Two-tap linear interpolation; align_corners maps the corner pixel centres onto each
    other, otherwise pixel centres are scaled (source = (o + ½)·scale − ½, clamped at 0)."""
    o = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = o * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        src = np.maximum((o + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    return np.stack([i0, i1], 1), np.stack([1.0 - frac, frac], 1)


def _adaptive_table(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive average pooling: output o averages inputs floor(o·n/m) .. ceil((o+1)·n/m)."""
    start = (np.arange(n_out) * n_in) // n_out
    end = -((-(np.arange(n_out) + 1) * n_in) // n_out)
    taps = int((end - start).max())
    idx = np.minimum(start[:, None] + np.arange(taps), n_in - 1)
    inside = start[:, None] + np.arange(taps) < end[:, None]
    return idx, inside / (end - start)[:, None]


# ---------------------------------------------------------------- adaptive pooling, resampling


def adaptive_avg_pool2d(x: Tensor, output_size: IntOrPair = 1) -> Tensor:
    """Average pooling to a fixed (OH, OW), as PyTorch's ``F.adaptive_avg_pool2d``: output
    (i, j) averages rows floor(i·H/OH)..ceil((i+1)·H/OH) and likewise columns.

    x: (N, C, H, W) -> (N, C, OH, OW); output_size=1 is global average pooling.
    """
    op = "adaptive_avg_pool2d"
    _check_nchw(op, x)
    OH, OW = _pair(output_size, "output_size", op, 1)
    H, W = x.shape[2:]
    if (OH, OW) == (1, 1):
        return mean(x, axis=(2, 3), keepdims=True)
    if H % OH == 0 and W % OW == 0:
        k = (H // OH, W // OW)
        return _WindowSum.apply(x, kernel=k, stride=k, padding=(0, 0), divisor=k[0] * k[1])
    return _axis_map(_axis_map(x, 2, *_adaptive_table(H, OH)), 3, *_adaptive_table(W, OW))


MODES = ("nearest", "bilinear")


def interpolate(
    x: Tensor,
    size: IntOrPair | None = None,
    scale_factor: float | tuple[float, float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
) -> Tensor:
    """Resize the H and W axes, as PyTorch's ``F.interpolate`` for 4-D input.

    x: (N, C, H, W) -> (N, C, OH, OW), with (OH, OW) = ``size`` or floor(H·scale_factor).
    nearest: y[i] = x[min(floor(i·s), H − 1)], s = 1/scale_factor (or H/OH given a size);
    bilinear: separable linear interpolation (align_corners: see ``_linear_table``).
    Integer nearest upscaling copies each pixel into its f×f block (its adjoint sums blocks).
    """
    op = "interpolate"
    _check_nchw(op, x)
    if mode not in MODES:
        raise ValueError(f"{op}: mode must be one of {MODES}, got {mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{op}: align_corners applies to bilinear, not mode {mode!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor")
    in_size = x.shape[2:]
    if size is not None:
        out = _pair(size, "size", op, 1)
        scales = [i / o for i, o in zip(in_size, out)]
    else:
        factors = (scale_factor,) * 2 if np.isscalar(scale_factor) else tuple(scale_factor)
        if len(factors) != 2 or min(factors) <= 0:
            raise ValueError(
                f"{op}: scale_factor must be positive (one or two), got {scale_factor}"
            )
        out = tuple(int(math.floor(i * f)) for i, f in zip(in_size, factors))
        if min(out) <= 0:
            raise ValueError(f"{op}: scale_factor {scale_factor} gives output {out} for {x.shape}")
        scales = [1.0 / f for f in factors]
    if mode == "nearest":
        fh, fw = (o // i for o, i in zip(out, in_size))
        if out == (in_size[0] * fh, in_size[1] * fw) and scales == [1 / fh, 1 / fw]:
            return _WindowSpread.apply(
                x, size=out, kernel=(fh, fw), stride=(fh, fw), padding=(0, 0), divisor=1
            )
        tables = [_nearest_table(i, o, s) for i, o, s in zip(in_size, out, scales)]
    else:
        corners = bool(align_corners)
        tables = [_linear_table(i, o, s, corners) for i, o, s in zip(in_size, out, scales)]
    return _axis_map(_axis_map(x, 2, *tables[0]), 3, *tables[1])


def upsample(
    x: Tensor,
    size: IntOrPair | None = None,
    scale_factor: float | tuple[float, float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
) -> Tensor:
    """Alias of :func:`interpolate` (PyTorch's ``F.upsample``)."""
    return interpolate(x, size, scale_factor, mode, align_corners)


# ---------------------------------------------------------------- pixel shuffle


def pixel_shuffle(x: Tensor, upscale_factor: int) -> Tensor:
    """Sub-pixel rearrangement (Shi et al. 2016, ESPCN; used by SRGAN, Ledig et al. 2017):
    x: (N, C·r², H, W) -> (N, C, H·r, W·r), y[n, c, h·r + i, w·r + j] = x[n, c·r² + i·r + j, h, w].
    """
    op = "pixel_shuffle"
    _check_nchw(op, x)
    r = int(upscale_factor)
    N, C, H, W = x.shape
    if r < 1 or C % (r * r):
        raise ValueError(f"{op}: channels {C} of {x.shape} must be divisible by r² = {r * r}")
    y = transpose(reshape(x, (N, C // (r * r), r, r, H, W)), (0, 1, 4, 2, 5, 3))
    return reshape(y, (N, C // (r * r), H * r, W * r))


def pixel_unshuffle(x: Tensor, downscale_factor: int) -> Tensor:
    """The inverse of :func:`pixel_shuffle`: x: (N, C, H·r, W·r) -> (N, C·r², H, W)."""
    op = "pixel_unshuffle"
    _check_nchw(op, x)
    r = int(downscale_factor)
    N, C, H, W = x.shape
    if r < 1 or H % r or W % r:
        raise ValueError(f"{op}: height and width of {x.shape} must be divisible by {r}")
    y = transpose(reshape(x, (N, C, H // r, r, W // r, r)), (0, 1, 3, 5, 2, 4))
    return reshape(y, (N, C * r * r, H // r, W // r))
