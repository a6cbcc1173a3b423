"""Batch and instance norm on the CPU, compiled with Numba: the passes of norm.py fused.

norm.py's NumPy form makes about eight full passes over x for a forward and backward (mean,
centring, square, mean, scale, shift; x̂, g·x̂, two sums, three updates). Here each is a
loop over one channel (batch norm) or one (sample, channel) row (instance norm) in
parallel: the statistics in two reads of x (the two-pass variance, accumulated in float64),
y in one read and one write; the backward's two sums Σg and Σg·x̂ in one read of (g, x) and
dx = a·(g − Σg/n − x̂·Σg·x̂/n), a = w/σ, in one more. Same results as the NumPy form to
rounding; the CUDA kernels in kernels/ follow the same plan on the GPU.

x, g, y, dx are (N, C, L) views of (N, C, ...) arrays; w and b are per channel.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import prange

from tinygan.functions.winograd_kernels import one_at_a_time  # (also starts the pool)

_JIT = {"parallel": True, "fastmath": True, "cache": True}


@numba.njit(cache=True)
def _group(k, C, per_sample):  # noqa: ANN001, ANN202
    """Group k's (sample, channel): (k // C, k % C) per sample, (−1, k) per channel."""
    k = np.int64(k)
    if per_sample:
        return k // C, k % C
    return np.int64(-1), k


@numba.njit(fastmath=True, cache=True)
def _mean_var(x, n, c):  # noqa: ANN001, ANN202
    """Mean and biased variance of x[n, c, :], or of x[:, c, :] when n < 0 (two passes)."""
    rows = range(x.shape[0]) if n < 0 else range(n, n + 1)
    count = len(rows) * x.shape[2]
    total = 0.0
    for i in rows:
        for j in range(x.shape[2]):
            total += x[i, c, j]
    mean = total / count
    squares = 0.0
    for i in rows:
        for j in range(x.shape[2]):
            d = x[i, c, j] - mean
            squares += d * d
    return mean, squares / count


@numba.njit(**_JIT)
def _normalize(x, w, b, eps, per_sample, y, mean, var, invstd):  # noqa: ANN001, ANN202
    """y = (x − μ)·invstd·w + b, with μ, σ², invstd per channel or per (sample, channel)."""
    N, C, L = x.shape
    groups = N * C if per_sample else C
    for k in prange(groups):
        n, c = _group(k, C, per_sample)
        mu, v = _mean_var(x, n, c)
        inv = 1.0 / np.sqrt(v + eps)
        mean[k], var[k], invstd[k] = mu, v, inv
        scale = inv * w[c]
        shift = b[c] - mu * scale
        for i in range(N) if n < 0 else range(n, n + 1):
            for j in range(L):
                y[i, c, j] = x[i, c, j] * scale + shift


@numba.njit(**_JIT)
def _gradients(g, x, w, per_sample, mean, invstd, dx, sum_g, sum_gxhat):  # noqa: ANN001, ANN202
    """dx = a·(g − Σg/n − x̂·Σ(g·x̂)/n), a = invstd·w; also Σg and Σg·x̂ per group."""
    N, C, L = x.shape
    groups = N * C if per_sample else C
    for k in prange(groups):
        n, c = _group(k, C, per_sample)
        rows = range(N) if n < 0 else range(n, n + 1)
        mu, inv = mean[k], invstd[k]
        s, sx = 0.0, 0.0
        for i in rows:
            for j in range(L):
                s += g[i, c, j]
                sx += g[i, c, j] * (x[i, c, j] - mu)
        sx *= inv
        sum_g[k], sum_gxhat[k] = s, sx
        count = len(rows) * L
        a = inv * w[c]
        k2 = a * inv * sx / count  # the coefficient of (x − μ)
        k0 = a * s / count - k2 * mu
        for i in rows:
            for j in range(L):
                dx[i, c, j] = a * g[i, c, j] - k2 * x[i, c, j] - k0


_launch_normalize, _launch_gradients = one_at_a_time(_normalize), one_at_a_time(_gradients)


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
    _launch_normalize(_flat(x), w, b, eps, per_sample, y.reshape(N, C, -1), mean, var, invstd)
    return y, mean, var, invstd


def backward(g: Any, x: Any, w: Any, mean: Any, invstd: Any, per_sample: bool) -> tuple:
    """(dx, dw, db), dw and db per channel (summed over the samples for instance norm)."""
    N, C = x.shape[:2]
    dx = np.empty_like(x)
    sum_g, sum_gxhat = np.empty(mean.shape, np.float64), np.empty(mean.shape, np.float64)
    w = _per_channel(w, C, 1.0, x.dtype)
    g = _flat(g.astype(x.dtype, copy=False))
    _launch_gradients(
        g, _flat(x), w, per_sample, mean, invstd, dx.reshape(N, C, -1), sum_g, sum_gxhat
    )
    if per_sample:
        sum_g, sum_gxhat = sum_g.reshape(N, C).sum(0), sum_gxhat.reshape(N, C).sum(0)
    return dx, sum_gxhat.astype(x.dtype), sum_g.astype(x.dtype)
