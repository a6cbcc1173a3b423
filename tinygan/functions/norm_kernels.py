"""Batch and instance norm on the CPU, compiled with Numba: the passes of norm.py fused.

norm.py's NumPy form makes about eight full passes over x for a forward and backward (mean,
centring, square, mean, scale, shift; x̂, g·x̂, two sums, three updates). Here each is a
loop over a block of channels (batch norm) or one (sample, channel) row (instance norm) in
parallel: the statistics in two reads of x (the two-pass variance, accumulated in float64),
y in one read and one write; the backward's two sums Σg and Σg·x̂ in one read of (g, x) and
dx = a·(g − Σg/n − x̂·Σg·x̂/n), a = w/σ, in one more. Same results as the NumPy form to
rounding; the CUDA kernels in kernels/ follow the same plan on the GPU.

Batch norm's groups are channels, and one channel's values lie in N runs of L (one per
sample), far apart; for a small map (L = 16 for DCGAN's 4×4 layers) a loop over one channel
reads one cache line per run and waits on every one (4-16 GB/s here). Its loops therefore
take a block of neighbouring channels at a time and walk it sample by sample, so that each
sample's part of the block is one contiguous run of ``BLOCK_RUN`` values or more, and the
block's later passes find it in L2 (``_channel_block``). Instance norm's groups, one sample's
channel, are contiguous already.

Each kernel also applies an activation that follows the norm, z = max(y, s·y) (ReLU for
s = 0, leaky ReLU for 0 < s < 1, none for s = 1; nn.Sequential fuses these pairs): the
forward writes z instead of y, and the backward takes dL/dz and forms dL/dy = dL/dz·[y > 0 ?
1 : s] as it reads it, y recomputed from x with the forward's own per-group scale and shift
(kept in float64, so the sign is the forward's). That saves the activation's own passes,
a read and a write of the map each way (benchmarks/NOTES.md, item 34).

x, g, y, dx are (N, C, L) views of (N, C, ...) arrays; w and b are per channel.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import prange

from tinygan.functions.winograd_kernels import one_at_a_time  # (also starts the pool)

_JIT = {"parallel": True, "fastmath": True, "cache": True}


# One run of values (a row of a sample's channel) in each pass; y = x·a + z is the norm's
# output before the activation z = max(y, s·y). Slope 1 (no activation) keeps loops of its
# own, without the per-value select.


@numba.njit(fastmath=True, inline="always")
def _run_out(row, a, z, slope, out):  # noqa: ANN001, ANN202
    """out = max(y, slope·y), y = row·a + z."""
    if slope == 1.0:
        for j in range(row.size):
            out[j] = row[j] * a + z
    else:
        for j in range(row.size):
            y = row[j] * a + z
            out[j] = max(y, slope * y)


@numba.njit(fastmath=True, inline="always")
def _dl_dy(g, x, a, z, slope):  # noqa: ANN001, ANN202
    """dL/dy from dL/dz = g: g where the pre-activation y = x·a + z is positive, else slope·g."""
    return g if x * a + z > 0 else slope * g


@numba.njit(fastmath=True, inline="always")
def _run_sums(grow, xrow, mu, a, z, slope):  # noqa: ANN001, ANN202
    """(Σg, Σg·(x − μ)) over the run, g = dL/dy (``_dl_dy``) from the given dL/dz."""
    s, sx = 0.0, 0.0
    if slope == 1.0:
        for j in range(xrow.size):
            s += grow[j]
            sx += grow[j] * (xrow[j] - mu)
    else:
        for j in range(xrow.size):
            gj = _dl_dy(grow[j], xrow[j], a, z, slope)
            s += gj
            sx += gj * (xrow[j] - mu)
    return s, sx


@numba.njit(fastmath=True, inline="always")
def _run_dx(grow, xrow, k1, k2, k0, a, z, slope, out):  # noqa: ANN001, ANN202
    """out = k1·g − k2·x − k0, g = dL/dy (``_dl_dy``) from the given dL/dz."""
    if slope == 1.0:
        for j in range(xrow.size):
            out[j] = k1 * grow[j] - k2 * xrow[j] - k0
    else:
        for j in range(xrow.size):
            out[j] = k1 * _dl_dy(grow[j], xrow[j], a, z, slope) - k2 * xrow[j] - k0


@numba.njit(**_JIT)
def _normalize_rows(x, w, b, eps, slope, y, mean, var, invstd, scale, shift):  # noqa: ANN001, ANN202
    """Instance norm's y = (x − μ)·invstd·w + b per (sample, channel) row k = n·C + c: the
    mean and variance in two reads of the row (the variance of the centred values,
    accumulated in float64), max(y, slope·y) in one more; y = x·scale[k] + shift[k]."""
    N, C, L = x.shape
    for k in prange(N * C):
        row, out = x[k // C, k % C], y[k // C, k % C]
        total = 0.0
        for j in range(L):
            total += row[j]
        mu = total / L
        squares = 0.0
        for j in range(L):
            d = row[j] - mu
            squares += d * d
        v = squares / L
        inv = 1.0 / np.sqrt(v + eps)
        mean[k], var[k], invstd[k] = mu, v, inv
        a = inv * w[k % C]
        z = b[k % C] - mu * a
        scale[k], shift[k] = a, z
        _run_out(row, a, z, slope, out)


@numba.njit(**_JIT)
def _gradients_rows(g, x, w, slope, scale, shift, mean, invstd, dx, sum_g, sum_gxhat):  # noqa: ANN001, ANN202
    """Instance norm's dx = a·(g − Σg/L − x̂·Σ(g·x̂)/L), a = invstd·w, per row k = n·C + c;
    also Σg and Σg·x̂ per row. g is dL/dy, formed from the given dL/dz as it is read."""
    N, C, L = x.shape
    for k in prange(N * C):
        grow, xrow, out = g[k // C, k % C], x[k // C, k % C], dx[k // C, k % C]
        mu, inv, ya, yz = mean[k], invstd[k], scale[k], shift[k]
        s, sx = _run_sums(grow, xrow, mu, ya, yz, slope)
        sx *= inv
        sum_g[k], sum_gxhat[k] = s, sx
        a = inv * w[k % C]
        k2 = a * inv * sx / L  # the coefficient of (x − μ)
        k0 = a * s / L - k2 * mu
        _run_dx(grow, xrow, a, k2, k0, ya, yz, slope, out)


@numba.njit(**_JIT)
def _normalize_channels(x, w, b, eps, slope, block, y, mean, var, invstd, scale, shift):  # noqa: ANN001, ANN202
    """Batch norm's y = (x − μ)·invstd·w + b per channel, ``block`` channels at a time, each
    pass over the block sample by sample (the module docstring); writes max(y, slope·y),
    y = x·scale[c] + shift[c]."""
    N, C, L = x.shape
    count = N * L
    for index in prange(-(-C // block)):
        c0 = index * block
        c1 = min(C, c0 + block)
        total = np.zeros(c1 - c0)  # float64 sums
        for i in range(N):
            for c in range(c0, c1):
                row = x[i, c]
                acc = 0.0
                for j in range(L):
                    acc += row[j]
                total[c - c0] += acc
        squares = np.zeros(c1 - c0)
        for i in range(N):
            for c in range(c0, c1):
                row, mu = x[i, c], total[c - c0] / count
                acc = 0.0
                for j in range(L):
                    d = row[j] - mu
                    acc += d * d
                squares[c - c0] += acc
        for c in range(c0, c1):
            mu, v = total[c - c0] / count, squares[c - c0] / count
            inv = 1.0 / np.sqrt(v + eps)
            mean[c], var[c], invstd[c] = mu, v, inv
            scale[c] = inv * w[c]
            shift[c] = b[c] - mu * scale[c]
        for i in range(N):
            for c in range(c0, c1):
                _run_out(x[i, c], scale[c], shift[c], slope, y[i, c])


@numba.njit(**_JIT)
def _gradients_channels(g, x, w, slope, scale, shift, block, mean, invstd, dx, sum_g, sum_gxhat):  # noqa: ANN001, ANN202, E501
    """Batch norm's dx = a·(g − Σg/n − x̂·Σ(g·x̂)/n), a = invstd·w, with Σg and Σg·x̂ per
    channel, ``block`` channels at a time, sample by sample; g is dL/dy, formed from the
    given dL/dz as it is read."""
    N, C, L = x.shape
    count = N * L
    for index in prange(-(-C // block)):
        c0 = index * block
        c1 = min(C, c0 + block)
        for c in range(c0, c1):
            sum_g[c], sum_gxhat[c] = 0.0, 0.0
        for i in range(N):
            for c in range(c0, c1):
                s, sx = _run_sums(g[i, c], x[i, c], mean[c], scale[c], shift[c], slope)
                sum_g[c] += s
                sum_gxhat[c] += sx
        for c in range(c0, c1):
            sum_gxhat[c] *= invstd[c]
        for i in range(N):
            for c in range(c0, c1):
                inv = invstd[c]
                a = inv * w[c]
                k2 = a * inv * sum_gxhat[c] / count  # the coefficient of (x − μ)
                k0 = a * sum_g[c] / count - k2 * mean[c]
                _run_dx(g[i, c], x[i, c], a, k2, k0, scale[c], shift[c], slope, dx[i, c])


_launch_normalize_rows, _launch_gradients_rows = map(
    one_at_a_time, (_normalize_rows, _gradients_rows)
)
_launch_normalize_channels = one_at_a_time(_normalize_channels)
_launch_gradients_channels = one_at_a_time(_gradients_channels)

# A channel block's run per sample (values): 2048 float32 are 8 KiB, and the block of a
# batch of 64 then holds 512 KiB of x (1 MiB of g and x in the backward), in a core's L2.
BLOCK_RUN = 2048
BLOCKS_PER_THREAD = 4  # as many blocks at least, where the channels allow, for balance


def _channel_block(C: int, L: int) -> int:
    """Channels per block of the batch-norm loops: runs of BLOCK_RUN values, cut smaller
    where that leaves fewer than BLOCKS_PER_THREAD blocks per thread."""
    runs = max(1, -(-BLOCK_RUN // max(L, 1)))
    balanced = max(1, C // (BLOCKS_PER_THREAD * numba.get_num_threads()))
    return max(1, min(C, runs, balanced))


def usable(x: Any) -> bool:
    """NumPy float32/float64 arrays with a channel axis and something to normalise over."""
    return type(x) is np.ndarray and x.dtype in (np.float32, np.float64) and x.ndim >= 3


def _flat(a: Any) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def _per_channel(p: Any, C: int, fill: float, dtype: Any) -> np.ndarray:
    return np.full(C, fill, dtype) if p is None else np.ascontiguousarray(p, dtype).reshape(C)


def forward(x: Any, w: Any, b: Any, eps: float, per_sample: bool, slope: float = 1.0) -> tuple:
    """(z, mean, var, invstd, affine): z = max(y, slope·y) of the normalised y (y for slope
    1); statistics flat per channel, or per (sample, channel); ``affine`` the (scale, shift)
    in float64 with y = x·scale + shift per group, which ``backward`` takes back."""
    N, C = x.shape[:2]
    groups = N * C if per_sample else C
    y = np.empty_like(x)
    mean, var, invstd = (np.empty(groups, x.dtype) for _ in range(3))
    scale, shift = np.empty(groups), np.empty(groups)
    w, b = _per_channel(w, C, 1.0, x.dtype), _per_channel(b, C, 0.0, x.dtype)
    x3, y3 = _flat(x), y.reshape(N, C, -1)
    if per_sample:
        _launch_normalize_rows(x3, w, b, eps, slope, y3, mean, var, invstd, scale, shift)
    else:
        block = _channel_block(C, x3.shape[2])
        _launch_normalize_channels(x3, w, b, eps, slope, block, y3, mean, var, invstd, scale, shift)
    return y, mean, var, invstd, (scale, shift)


def backward(
    g: Any, x: Any, w: Any, mean: Any, invstd: Any, per_sample: bool, slope: float, affine: tuple
) -> tuple:
    """(dx, dw, db) given g = dL/dz of ``forward``'s output (``slope`` and ``affine`` as it
    used and returned them); dw and db per channel (summed over the samples for instance
    norm)."""
    N, C = x.shape[:2]
    dx = np.empty_like(x)
    sum_g, sum_gxhat = np.empty(mean.shape, np.float64), np.empty(mean.shape, np.float64)
    w = _per_channel(w, C, 1.0, x.dtype)
    g = _flat(g.astype(x.dtype, copy=False))
    x3, dx3 = _flat(x), dx.reshape(N, C, -1)
    scale, shift = affine
    if per_sample:
        _launch_gradients_rows(g, x3, w, slope, scale, shift, mean, invstd, dx3, sum_g, sum_gxhat)
        sum_g, sum_gxhat = sum_g.reshape(N, C).sum(0), sum_gxhat.reshape(N, C).sum(0)
    else:
        block = _channel_block(C, x3.shape[2])
        _launch_gradients_channels(
            g, x3, w, slope, scale, shift, block, mean, invstd, dx3, sum_g, sum_gxhat
        )
    return dx, sum_gxhat.astype(x.dtype), sum_g.astype(x.dtype)
