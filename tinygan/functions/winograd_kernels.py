"""The six transforms of Winograd convolution, compiled with Numba (see winograd.py).

A tile transform multiplies a small α×α (or m×m) tile by a constant matrix on both sides,
e.g. V = Bᵀ·d·B. Each kernel here is built for one transform and one dtype: the matrices
are closed over, so Numba compiles them as constants and LLVM (fast-math, loops of constant
length) unrolls the products and drops the zero and unit coefficients — the generic loops
below turn into the handful of additions a hand-written F(2×2, 3×3) would have.

Every kernel runs in parallel over channels (``prange``) and walks the tiles of one channel
in order, so the transformed arrays (α, α, channels, tiles) are written and read along their
contiguous last axis. Index conventions, shared with winograd.py:

    phase channel  c' = (c·S + ρ)·S + σ          (S = stride, ρ, σ < S)
    phase image    P[n, c', i, j] = x[n, c, S·i + ρ − pad, S·j + σ − pad]   (0 outside x)
    tile t = (n·th + ti)·tw + tj covers P[n, c', ti·m + a, tj·m + b], a, b < α
    phase kernel   w'[co, c', q1, q2] = w[co, c, S·q1 + ρ, S·q2 + σ]
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

import numba
import numpy as np
from numba import prange

_JIT = {"parallel": True, "fastmath": True, "cache": True}


def _start_threads() -> None:
    """Start Numba's thread pool: OpenMP with threads that sleep as soon as a loop ends.

    tinygan alternates short parallel loops (the transforms, the norms) with OpenBLAS GEMMs,
    so what matters is (1) that the loop's threads leave the cores to the GEMM that follows
    and (2) how fast they wake for the next loop. OpenMP's default wait policy spins after
    each loop and starved the GEMMs (a DCGAN step 1.54 -> 2.18 s). Numba's own work-queue
    pool sleeps, but waking it took 90-120 µs per launch here, and a CycleGAN step launches
    about 1100 loops. OpenMP with the passive policy wakes in 12-55 µs: the CycleGAN step
    took 2.05 s against 2.1-2.9 s on the work queue (benchmarks/NOTES.md, item 16).

    The policy is read once, when the OpenMP runtime loads, so it is set only around that
    moment and a process-wide OMP_WAIT_POLICY is left alone. Where no OpenMP runtime loads,
    Numba falls back to the work queue; a NUMBA_THREADING_LAYER the user set is kept.
    """
    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]
    numba.config.THREADING_LAYER = "default"
    policy_set = "OMP_WAIT_POLICY" not in os.environ
    if policy_set:
        os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        numba.get_num_threads()  # launches the pool
    finally:
        if policy_set:
            del os.environ["OMP_WAIT_POLICY"]


_start_threads()


def set_num_threads(n: int) -> None:
    """Run the transforms on ``n`` threads (at most the cores Numba found)."""
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


@numba.njit
def _phase_columns(S, pad, sigma, width, W):  # noqa: N803
    """The columns j < width of phase σ that fall inside x: [j0, j1)."""
    j0 = max(0, -((sigma - pad) // S))  # first j with S·j + σ − pad >= 0
    j1 = min(width, (W - 1 - sigma + pad) // S + 1)  # one past the last inside
    return j0, max(j0, j1)


@cache
def kernels(name: str, dtype: str, S: int) -> dict:  # noqa: N803
    """The six compiled transforms of the named Winograd variant for one dtype and stride."""
    from tinygan.functions.winograd import VARIANTS

    v = VARIANTS[name]
    return _build(v.BT.astype(dtype), v.G.astype(dtype), v.AT.astype(dtype), v.m, S)


def _build(BT: np.ndarray, G: np.ndarray, AT: np.ndarray, m: int, S: int) -> dict:  # noqa: C901, N803
    alpha, r = G.shape

    @numba.njit(**_JIT)
    def input_transform(x, pad, th, tw, V):  # V = Bᵀ·P_tile·B
        N, C, H, W = x.shape
        width = tw * m + alpha - m
        for cp in prange(C * S * S):
            c, rho, sigma = cp // (S * S), (cp // S) % S, cp % S
            j0, j1 = _phase_columns(S, pad, sigma, width, W)
            d = np.zeros((alpha, width), x.dtype)  # the α phase rows of a row of tiles
            rows = np.empty((alpha, width), x.dtype)  # Bᵀ applied down their columns
            for n in range(N):
                for ti in range(th):
                    for a in range(alpha):
                        row = S * (ti * m + a) + rho - pad
                        if 0 <= row < H:
                            for j in range(j0, j1):
                                d[a, j] = x[n, c, row, S * j + sigma - pad]
                        else:
                            d[a, j0:j1] = 0
                    for k in range(alpha):
                        for j in range(width):
                            acc = BT[k, 0] * d[0, j]
                            for a in range(1, alpha):
                                acc += BT[k, a] * d[a, j]
                            rows[k, j] = acc
                    t0 = (n * th + ti) * tw
                    for k in range(alpha):
                        for i in range(alpha):
                            for tj in range(tw):
                                acc = rows[k, tj * m] * BT[i, 0]
                                for b in range(1, alpha):
                                    acc += rows[k, tj * m + b] * BT[i, b]
                                V[k, i, cp, t0 + tj] = acc

    @numba.njit(**_JIT)
    def input_adjoint(dV, pad, th, tw, dx):  # dx += B·dV_tile·Bᵀ (dx zeroed)
        N, C, H, W = dx.shape
        width = tw * m + alpha - m
        for cp in prange(C * S * S):
            c, rho, sigma = cp // (S * S), (cp // S) % S, cp % S
            j0, j1 = _phase_columns(S, pad, sigma, width, W)
            rows = np.empty((alpha, width), dx.dtype)
            d = np.empty((alpha, width), dx.dtype)
            for n in range(N):
                for ti in range(th):
                    t0 = (n * th + ti) * tw
                    rows[:] = 0
                    for k in range(alpha):
                        for b in range(alpha):  # one b at a time: tiles overlap in columns
                            for tj in range(tw):
                                acc = dV[k, 0, cp, t0 + tj] * BT[0, b]
                                for i in range(1, alpha):
                                    acc += dV[k, i, cp, t0 + tj] * BT[i, b]
                                rows[k, tj * m + b] += acc
                    for a in range(alpha):
                        for j in range(width):
                            acc = BT[0, a] * rows[0, j]
                            for k in range(1, alpha):
                                acc += BT[k, a] * rows[k, j]
                            d[a, j] = acc
                    for a in range(alpha):
                        row = S * (ti * m + a) + rho - pad
                        if 0 <= row < H:
                            for j in range(j0, j1):
                                dx[n, c, row, S * j + sigma - pad] += d[a, j]

    @numba.njit(**_JIT)
    def output_transform(M, th, tw, y):  # noqa: N803  y_tile = Aᵀ·M·A  (y: th·m × tw·m)
        N, CO = y.shape[:2]
        for co in prange(CO):
            rows = np.empty((alpha, tw), y.dtype)  # Aᵀ applied down the tile rows
            for n in range(N):
                for ti in range(th):
                    t0 = (n * th + ti) * tw
                    for i in range(m):
                        for k2 in range(alpha):
                            for tj in range(tw):
                                acc = AT[i, 0] * M[0, k2, co, t0 + tj]
                                for k1 in range(1, alpha):
                                    acc += AT[i, k1] * M[k1, k2, co, t0 + tj]
                                rows[k2, tj] = acc
                        for j in range(m):
                            for tj in range(tw):
                                acc = rows[0, tj] * AT[j, 0]
                                for k2 in range(1, alpha):
                                    acc += rows[k2, tj] * AT[j, k2]
                                y[n, co, ti * m + i, tj * m + j] = acc

    @numba.njit(**_JIT)
    def output_adjoint(gy, th, tw, dM):  # noqa: N803  dM = A·gy_tile·Aᵀ  (gy: th·m × tw·m)
        N, CO, _, OW = gy.shape
        for co in prange(CO):
            rows = np.empty((alpha, OW), gy.dtype)
            for n in range(N):
                for ti in range(th):
                    for k1 in range(alpha):
                        for col in range(OW):
                            acc = AT[0, k1] * gy[n, co, ti * m, col]
                            for i in range(1, m):
                                acc += AT[i, k1] * gy[n, co, ti * m + i, col]
                            rows[k1, col] = acc
                    t0 = (n * th + ti) * tw
                    for k1 in range(alpha):
                        for k2 in range(alpha):
                            for tj in range(tw):
                                acc = rows[k1, tj * m] * AT[0, k2]
                                for j in range(1, m):
                                    acc += rows[k1, tj * m + j] * AT[j, k2]
                                dM[k1, k2, co, t0 + tj] = acc

    @numba.njit(**_JIT)
    def filter_transform(w, U):  # noqa: N803  U = G·w'·Gᵀ
        CO, C = w.shape[0], w.shape[1]
        for co in prange(CO):
            e = np.empty((alpha, r), w.dtype)
            for cp in range(C * S * S):
                c, rho, sigma = cp // (S * S), (cp // S) % S, cp % S
                for k in range(alpha):
                    for q2 in range(r):
                        acc = G[k, 0] * w[co, c, rho, S * q2 + sigma]
                        for q1 in range(1, r):
                            acc += G[k, q1] * w[co, c, S * q1 + rho, S * q2 + sigma]
                        e[k, q2] = acc
                for k1 in range(alpha):
                    for k2 in range(alpha):
                        acc = e[k1, 0] * G[k2, 0]
                        for q2 in range(1, r):
                            acc += e[k1, q2] * G[k2, q2]
                        U[k1, k2, co, cp] = acc

    @numba.njit(**_JIT)
    def filter_adjoint(dU, dw):  # noqa: N803  dw' = Gᵀ·dU·G
        CO, C = dw.shape[0], dw.shape[1]
        for co in prange(CO):
            e = np.empty((r, alpha), dw.dtype)
            for cp in range(C * S * S):
                c, rho, sigma = cp // (S * S), (cp // S) % S, cp % S
                for q1 in range(r):
                    for k2 in range(alpha):
                        acc = G[0, q1] * dU[0, k2, co, cp]
                        for k1 in range(1, alpha):
                            acc += G[k1, q1] * dU[k1, k2, co, cp]
                        e[q1, k2] = acc
                for q1 in range(r):
                    for q2 in range(r):
                        acc = e[q1, 0] * G[0, q2]
                        for k2 in range(1, alpha):
                            acc += e[q1, k2] * G[k2, q2]
                        dw[co, c, S * q1 + rho, S * q2 + sigma] = acc

    compiled = (
        input_transform,
        input_adjoint,
        output_transform,
        output_adjoint,
        filter_transform,
        filter_adjoint,
    )
    return {kernel.__name__: one_at_a_time(kernel) for kernel in compiled}


# Launches from several Python threads queue here: on the work-queue pool (the fallback)
# they would abort the process, and on OpenMP they would only oversubscribe the cores.
_LAUNCH = threading.Lock()


def one_at_a_time(kernel: Callable) -> Callable:
    """``kernel`` taking the one launch lock that every parallel Numba loop of tinygan shares
    (these transforms, norm_kernels, activation_kernels)."""

    def launch(*args: Any) -> None:
        with _LAUNCH:
            kernel(*args)

    return launch
