"""The six transforms of Winograd convolution, compiled with Numba (see winograd.py).

A tile transform multiplies a small α×α (or m×m) tile by a constant matrix on both sides,
e.g. V = Bᵀ·d·B. Each kernel here is built for one transform, dtype and stride: the
matrices are closed over, so Numba compiles them as constants and LLVM (fast-math, loops
of constant length) unrolls the products and drops the zero and unit coefficients — the
generic loops below turn into the handful of additions a hand-written F(2×2, 3×3) would have.

Layouts. The transformed arrays are tile-major with the channels last: α² planes, each a
(T, channels) matrix, held as one C-contiguous (α², spacing) buffer (winograd._planes; a
C-contiguous argument is what lets Numba assume unit strides and vectorise):
for one tile and point, every channel is one contiguous run, so each transform's innermost
loop runs over channels (64-1024 of them in DCGAN) with unit-stride loads and stores, and
vectorises whatever the map size (a 4×4 map has 2×2 tiles: a loop over tiles would be 2
long). NCHW images meet that layout in a band buffer: a band of one image's rows, moved to
channels-last (rows, columns, channels) in blocks of 16 channels while it is in cache, is
where the tiles are read from or added into. The GEMMs take the (T, channels) matrices
transposed where they need to, at no cost (winograd.py).

Work is split into chunks of ``nb`` tile rows of one image (a band); the chunks run in
parallel (``prange``). Input tiles overlap their neighbours by α − m phase rows, so the
input adjoint, which adds tiles back onto x, runs the even bands before the odd ones: bands
of one parity never share a row.

Index conventions, shared with winograd.py:

    phase channel  c' = (ρ·S + σ)·C + c         (S = stride, ρ, σ < S; C = x's channels)
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
_BLOCK = 16  # channels per block of the transposing copies: one cache line of float32


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


# ---------------------------------------------------------------- band buffers
#
# Inner loops index 1-D views with their own loop variable (``dst[c] = ...``, not
# ``V[k, p0 + c] = ...``): Numba wraps negative indices, and only an index it can see is
# non-negative lets LLVM drop that check and vectorise (the input transform ran 1.5x faster).


@numba.njit(fastmath=True, cache=True)
def _band_in(x, n, row0, col0, buf):  # noqa: ANN001, ANN202
    """buf[i, j, c] = x[n, c, row0 + i, col0 + j], 0 outside x: a band of one image moved
    to channels-last, 16 channels at a time (their rows stay in L1 across the columns)."""
    C, H, W = x.shape[1:]
    rows, cols = buf.shape[:2]
    i0, i1 = max(0, -row0), min(rows, H - row0)
    j0, j1 = max(0, -col0), min(cols, W - col0)
    if i0 > 0 or i1 < rows or j0 > 0 or j1 < cols:
        buf[:] = 0
    for i in range(i0, i1):
        src = x[n, :, row0 + i, col0 + j0 : col0 + j1]  # (C, j1 - j0)
        dst = buf[i, j0:j1]  # (j1 - j0, C)
        for c0 in range(0, C, _BLOCK):
            for j in range(j1 - j0):
                for c in range(c0, min(C, c0 + _BLOCK)):
                    dst[j, c] = src[c, j]


@numba.njit(fastmath=True, cache=True)
def _band_out(buf, n, row0, col0, lo, hi, add_below, add_from, out):  # noqa: ANN001, ANN202
    """out[n, c, row, col] = buf[row − row0, col − col0, c] for rows lo <= row < hi and all
    columns (0 where buf does not reach); rows below ``add_below`` or from ``add_from`` on
    are added to what out holds instead (rows a neighbouring band has written)."""
    C, _, W = out.shape[1:]
    rows, cols = buf.shape[:2]
    j0, j1 = max(0, col0), min(W, col0 + cols)  # the columns of out that buf reaches
    for row in range(lo, hi):
        i = row - row0
        add = row < add_below or row >= add_from
        if not 0 <= i < rows:  # beyond the band's tiles: no tile reaches these rows
            if not add:
                out[n, :, row, :] = 0
            continue
        src = buf[i, j0 - col0 : j1 - col0]  # (j1 - j0, C)
        for c0 in range(0, C, _BLOCK):
            for c in range(c0, min(C, c0 + _BLOCK)):
                dst = out[n, c, row]
                if add:
                    for j in range(j1 - j0):
                        dst[j0 + j] += src[j, c]
                else:
                    dst[:j0] = 0
                    for j in range(j1 - j0):
                        dst[j0 + j] = src[j, c]
                    dst[j1:] = 0


# ---------------------------------------------------------------- the transforms


@cache
def kernels(name: str, dtype: str, S: int) -> dict:  # noqa: N803
    """The six compiled transforms of the named Winograd variant for one dtype and stride."""
    from tinygan.functions.winograd import VARIANTS

    v = VARIANTS[name]
    key = f"{name}/{dtype}/S={S}"
    return _build(v.BT.astype(dtype), v.G.astype(dtype), v.AT.astype(dtype), v.m, S, key)


def _build(BT: np.ndarray, G: np.ndarray, AT: np.ndarray, m: int, S: int, key: str) -> dict:  # noqa: C901, N803
    alpha, r = G.shape
    halo = alpha - m  # phase rows (and columns) a tile shares with the next one

    def helper(function: Callable) -> Any:
        """A serial loop the parallel kernels call (a separate function ran their inner
        loops 10-15 % faster than the same code inlined in the prange body). Numba keys a
        closure's disk cache on its closure variables, and a dispatcher among them is
        serialised by its uuid, random per process: the kernels calling it would be
        compiled afresh in every process (11 s). The uuid is fixed here by ``key``, through
        the hook Numba's unpickling uses; were that hook gone, the kernels would still run,
        only compiled in every process (test_winograd checks the cache hits)."""
        dispatcher = numba.njit(fastmath=True, cache=True)(function)
        set_uuid = getattr(dispatcher, "_set_uuid", None)
        if set_uuid is not None:
            set_uuid(f"tinygan.winograd_kernels/{key}/{function.__name__}")
        return dispatcher

    @helper
    def input_tiles(buf, t0, ti_count, tw, V):  # noqa: N803
        """V for the tiles t0, t0 + 1, ... of a band (ti_count rows of tw tiles) from buf."""
        C = buf.shape[2]
        for tl in range(ti_count):
            for tj in range(tw):
                t = t0 + tl * tw + tj
                for rho in range(S):
                    for sigma in range(S):
                        p0 = ((t * S + rho) * S + sigma) * C  # V[k, t, c'] at c = 0
                        for k1 in range(alpha):
                            for k2 in range(alpha):
                                dst = V[k1 * alpha + k2, p0 : p0 + C]
                                for c in range(C):
                                    acc = buf.dtype.type(0)
                                    for a in range(alpha):
                                        i = S * (tl * m + a) + rho
                                        for b in range(alpha):
                                            j = S * (tj * m + b) + sigma
                                            acc += BT[k1, a] * BT[k2, b] * buf[i, j, c]
                                    dst[c] = acc

    @numba.njit(**_JIT)
    def input_transform(x, pad, th, tw, nb, V):  # V = Bᵀ·P_tile·B
        N, C = x.shape[:2]
        bands = -(-th // nb)
        for chunk in prange(N * bands):
            n, ti0 = chunk // bands, chunk % bands * nb
            ti1 = min(th, ti0 + nb)
            buf = np.empty((S * ((ti1 - ti0) * m + halo), S * (tw * m + halo), C), x.dtype)
            _band_in(x, n, S * ti0 * m - pad, -pad, buf)
            input_tiles(buf, (n * th + ti0) * tw, ti1 - ti0, tw, V)

    @helper
    def input_adjoint_tiles(dV, t0, ti_count, tw, buf):  # noqa: N803
        """Add B·dV_tile·Bᵀ of the tiles t0, t0 + 1, ... of a band onto buf."""
        C = buf.shape[2]
        g = np.empty((alpha * alpha, C), buf.dtype)  # one tile's α² vectors, contiguous
        for tl in range(ti_count):
            for tj in range(tw):
                t = t0 + tl * tw + tj
                for rho in range(S):
                    for sigma in range(S):
                        p0 = ((t * S + rho) * S + sigma) * C
                        for k in range(alpha * alpha):
                            g[k] = dV[k, p0 : p0 + C]
                        for a in range(alpha):
                            for b in range(alpha):
                                dst = buf[S * (tl * m + a) + rho, S * (tj * m + b) + sigma]
                                for c in range(C):
                                    acc = buf.dtype.type(0)
                                    for k1 in range(alpha):
                                        for k2 in range(alpha):
                                            acc += BT[k1, a] * BT[k2, b] * g[k1 * alpha + k2, c]
                                    dst[c] += acc

    @numba.njit(**_JIT)
    def input_adjoint(dV, pad, th, tw, nb, dx):  # dx = Σ_tiles B·dV_tile·Bᵀ
        N, C, H = dx.shape[:3]
        bands = -(-th // nb)
        step = S * nb * m  # rows from one band's first row to the next one's
        for parity in range(2):
            for chunk in prange(N * bands):
                n, band = chunk // bands, chunk % bands
                if band % 2 != parity:
                    continue
                ti0 = band * nb
                ti1 = min(th, ti0 + nb)
                rows = S * ((ti1 - ti0) * m + halo)
                buf = np.zeros((rows, S * (tw * m + halo), C), dx.dtype)
                input_adjoint_tiles(dV, (n * th + ti0) * tw, ti1 - ti0, tw, buf)
                # the band's rows (the last one's down to H); odd bands add onto the rows
                # they share with their even neighbours, which wrote them first
                row0, last = band * step - pad, band == bands - 1
                hi = H if last else min(H, row0 + rows)
                add_below = row0 + S * halo if parity == 1 else -1
                add_from = row0 + step if parity == 1 and not last else H
                _band_out(buf, n, row0, -pad, max(0, row0), hi, add_below, add_from, dx)

    @helper
    def output_tiles(M, t0, ti_count, tw, buf):  # noqa: N803
        """buf's tiles Aᵀ·M_tile·A for the tiles t0, t0 + 1, ... of a band."""
        CO = buf.shape[2]
        g = np.empty((alpha * alpha, CO), buf.dtype)
        for tl in range(ti_count):
            for tj in range(tw):
                t = t0 + tl * tw + tj
                for k in range(alpha * alpha):
                    g[k] = M[k, t * CO : (t + 1) * CO]
                for i in range(m):
                    for j in range(m):
                        dst = buf[tl * m + i, tj * m + j]
                        for co in range(CO):
                            acc = buf.dtype.type(0)
                            for k1 in range(alpha):
                                for k2 in range(alpha):
                                    acc += AT[i, k1] * AT[j, k2] * g[k1 * alpha + k2, co]
                            dst[co] = acc

    @numba.njit(**_JIT)
    def output_transform(M, th, tw, nb, y):  # noqa: N803  y_tile = Aᵀ·M_tile·A, cropped to y
        N, CO, OH = y.shape[:3]
        bands = -(-th // nb)
        for chunk in prange(N * bands):
            n, ti0 = chunk // bands, chunk % bands * nb
            ti1 = min(th, ti0 + nb)
            buf = np.empty(((ti1 - ti0) * m, tw * m, CO), y.dtype)
            output_tiles(M, (n * th + ti0) * tw, ti1 - ti0, tw, buf)
            _band_out(buf, n, ti0 * m, 0, ti0 * m, min(OH, ti1 * m), -1, OH, y)

    @helper
    def output_adjoint_tiles(buf, t0, ti_count, tw, dM):  # noqa: N803
        """dM = A·gy_tile·Aᵀ for the tiles t0, t0 + 1, ... of a band of gy in buf."""
        CO = buf.shape[2]
        for tl in range(ti_count):
            for tj in range(tw):
                t = t0 + tl * tw + tj
                for k1 in range(alpha):
                    for k2 in range(alpha):
                        dst = dM[k1 * alpha + k2, t * CO : (t + 1) * CO]
                        for co in range(CO):
                            acc = buf.dtype.type(0)
                            for i in range(m):
                                for j in range(m):
                                    acc += AT[i, k1] * AT[j, k2] * buf[tl * m + i, tj * m + j, co]
                            dst[co] = acc

    @numba.njit(**_JIT)
    def output_adjoint(gy, th, tw, nb, dM):  # noqa: N803  dM = A·gy_tile·Aᵀ (0 beyond gy)
        N, CO = gy.shape[:2]
        bands = -(-th // nb)
        for chunk in prange(N * bands):
            n, ti0 = chunk // bands, chunk % bands * nb
            ti1 = min(th, ti0 + nb)
            buf = np.empty(((ti1 - ti0) * m, tw * m, CO), gy.dtype)
            _band_in(gy, n, ti0 * m, 0, buf)
            output_adjoint_tiles(buf, (n * th + ti0) * tw, ti1 - ti0, tw, dM)

    @numba.njit(**_JIT)
    def filter_transform(w, U):  # noqa: N803  U = G·w'·Gᵀ
        CO, C = w.shape[0], w.shape[1]
        CP = S * S * C
        for co in prange(CO):
            e = np.empty((alpha, r), w.dtype)  # G applied down the columns of a phase kernel
            for c in range(C):  # one kernel's taps in, α²·S² values out (c' runs along c)
                for rho in range(S):
                    for sigma in range(S):
                        p = co * CP + (rho * S + sigma) * C + c
                        for k in range(alpha):
                            for q2 in range(r):
                                acc = w.dtype.type(0)
                                for q1 in range(r):
                                    acc += G[k, q1] * w[co, c, S * q1 + rho, S * q2 + sigma]
                                e[k, q2] = acc
                        for k1 in range(alpha):
                            for k2 in range(alpha):
                                acc = w.dtype.type(0)
                                for q2 in range(r):
                                    acc += e[k1, q2] * G[k2, q2]
                                U[k1 * alpha + k2, p] = acc

    @numba.njit(**_JIT)
    def filter_adjoint(dU, dw):  # noqa: N803  dw' = Gᵀ·dU·G
        CO, C = dw.shape[0], dw.shape[1]
        CP = S * S * C
        for co in prange(CO):
            e = np.empty((r, alpha), dw.dtype)  # Gᵀ applied down the columns of dU's tile
            for c in range(C):
                for rho in range(S):
                    for sigma in range(S):
                        p = co * CP + (rho * S + sigma) * C + c
                        for q1 in range(r):
                            for k2 in range(alpha):
                                acc = dw.dtype.type(0)
                                for k1 in range(alpha):
                                    acc += G[k1, q1] * dU[k1 * alpha + k2, p]
                                e[q1, k2] = acc
                        for q1 in range(r):
                            for q2 in range(r):
                                acc = dw.dtype.type(0)
                                for k2 in range(alpha):
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

    launch.__wrapped__ = kernel  # type: ignore[attr-defined]
    return launch
