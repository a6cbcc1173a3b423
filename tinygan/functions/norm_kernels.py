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

x, g, y, dx are (N, C, L) views of (N, C, ...) arrays; w and b are per channel.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import prange

from tinygan.functions.winograd_kernels import one_at_a_time  # (also starts the pool)

_JIT = {"parallel": True, "fastmath": True, "cache": True}


@numba.njit(**_JIT)
def _normalize_rows(x, w, b, eps, y, mean, var, invstd):  # noqa: ANN001, ANN202
    """Instance norm's y = (x − μ)·invstd·w + b per (sample, channel) row k = n·C + c: the
    mean and variance in two reads of the row (the variance of the centred values,
    accumulated in float64), y in one more."""
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
        scale = inv * w[k % C]
        shift = b[k % C] - mu * scale
        for j in range(L):
            out[j] = row[j] * scale + shift


@numba.njit(**_JIT)
def _gradients_rows(g, x, w, mean, invstd, dx, sum_g, sum_gxhat):  # noqa: ANN001, ANN202
    """Instance norm's dx = a·(g − Σg/L − x̂·Σ(g·x̂)/L), a = invstd·w, per row k = n·C + c;
    also Σg and Σg·x̂ per row."""
    N, C, L = x.shape
    for k in prange(N * C):
        grow, xrow, out = g[k // C, k % C], x[k // C, k % C], dx[k // C, k % C]
        mu, inv = mean[k], invstd[k]
        s, sx = 0.0, 0.0
        for j in range(L):
            s += grow[j]
            sx += grow[j] * (xrow[j] - mu)
        sx *= inv
        sum_g[k], sum_gxhat[k] = s, sx
        a = inv * w[k % C]
        k2 = a * inv * sx / L  # the coefficient of (x − μ)
        k0 = a * s / L - k2 * mu
        for j in range(L):
            out[j] = a * grow[j] - k2 * xrow[j] - k0


@numba.njit(**_JIT)
def _normalize_channels(x, w, b, eps, block, y, mean, var, invstd):  # noqa: ANN001, ANN202
    """Batch norm's y = (x − μ)·invstd·w + b per channel, ``block`` channels at a time, each
    pass over the block sample by sample (the module docstring)."""
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
        scale, shift = np.empty(c1 - c0), np.empty(c1 - c0)
        for c in range(c0, c1):
            mu, v = total[c - c0] / count, squares[c - c0] / count
            inv = 1.0 / np.sqrt(v + eps)
            mean[c], var[c], invstd[c] = mu, v, inv
            scale[c - c0] = inv * w[c]
            shift[c - c0] = b[c] - mu * scale[c - c0]
        for i in range(N):
            for c in range(c0, c1):
                row, out, a, z = x[i, c], y[i, c], scale[c - c0], shift[c - c0]
                for j in range(L):
                    out[j] = row[j] * a + z


@numba.njit(**_JIT)
def _gradients_channels(g, x, w, block, mean, invstd, dx, sum_g, sum_gxhat):  # noqa: ANN001, ANN202
    """Batch norm's dx = a·(g − Σg/n − x̂·Σ(g·x̂)/n), a = invstd·w, with Σg and Σg·x̂ per
    channel, ``block`` channels at a time, sample by sample."""
    N, C, L = x.shape
    count = N * L
    for index in prange(-(-C // block)):
        c0 = index * block
        c1 = min(C, c0 + block)
        for c in range(c0, c1):
            sum_g[c], sum_gxhat[c] = 0.0, 0.0
        for i in range(N):
            for c in range(c0, c1):
                grow, xrow, mu = g[i, c], x[i, c], mean[c]
                s, sx = 0.0, 0.0
                for j in range(L):
                    s += grow[j]
                    sx += grow[j] * (xrow[j] - mu)
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
                grow, xrow, out = g[i, c], x[i, c], dx[i, c]
                for j in range(L):
                    out[j] = a * grow[j] - k2 * xrow[j] - k0


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


def forward(x: Any, w: Any, b: Any, eps: float, per_sample: bool) -> tuple:
    """(y, mean, var, invstd): statistics flat per channel, or per (sample, channel)."""
    N, C = x.shape[:2]
    groups = N * C if per_sample else C
    y = np.empty_like(x)
    mean, var, invstd = (np.empty(groups, x.dtype) for _ in range(3))
    w, b = _per_channel(w, C, 1.0, x.dtype), _per_channel(b, C, 0.0, x.dtype)
    x3, y3 = _flat(x), y.reshape(N, C, -1)
    if per_sample:
        _launch_normalize_rows(x3, w, b, eps, y3, mean, var, invstd)
    else:
        block = _channel_block(C, x3.shape[2])
        _launch_normalize_channels(x3, w, b, eps, block, y3, mean, var, invstd)
    return y, mean, var, invstd


def backward(g: Any, x: Any, w: Any, mean: Any, invstd: Any, per_sample: bool) -> tuple:
    """(dx, dw, db), dw and db per channel (summed over the samples for instance norm)."""
    N, C = x.shape[:2]
    dx = np.empty_like(x)
    sum_g, sum_gxhat = np.empty(mean.shape, np.float64), np.empty(mean.shape, np.float64)
    w = _per_channel(w, C, 1.0, x.dtype)
    g = _flat(g.astype(x.dtype, copy=False))
    x3, dx3 = _flat(x), dx.reshape(N, C, -1)
    if per_sample:
        _launch_gradients_rows(g, x3, w, mean, invstd, dx3, sum_g, sum_gxhat)
        sum_g, sum_gxhat = sum_g.reshape(N, C).sum(0), sum_gxhat.reshape(N, C).sum(0)
    else:
        block = _channel_block(C, x3.shape[2])
        _launch_gradients_channels(g, x3, w, block, mean, invstd, dx3, sum_g, sum_gxhat)
    return dx, sum_gxhat.astype(x.dtype), sum_g.astype(x.dtype)
