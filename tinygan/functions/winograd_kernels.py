"""The six transforms of Winograd convolution, compiled with Numba (see winograd.py).

A tile transform multiplies a small α×α (or m×m) tile by a constant matrix on both sides,
e.g. V = Bᵀ·d·B. The input side (V from x, and its adjoint onto dx) and the output side
(y from M, and its adjoint dM from dy) are the two directions of one generic transform,
gather and scatter (``_directions``), with their own matrix, tile size and stride; the
filter transform and its adjoint are ``_filters``. Each kernel is built for one variant,
dtype and stride: the matrices are closed over, so Numba compiles them as constants and
LLVM (fast-math, loops of constant length) unrolls the products and drops the zero and unit
coefficients — the generic loops turn into the handful of additions a hand-written
F(2×2, 3×3) would have.

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
of one parity never share a row. The four image-side transforms also come as serial loops
that release the GIL (``serial_kernels``), for winograd.py's per-core chains, where each
core transforms its own images.

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
_SERIAL = {"nogil": True, "fastmath": True, "cache": True}
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
    to channels-last, 16 channels at a time (their rows stay in L1 across the columns),
    each block of 16 written through a view of constant length (1.6x faster than a loop
    bounded by min(C, c0 + 16): benchmarks/NOTES.md, item 35). Only the border that x does
    not reach is zeroed."""
    C, H, W = x.shape[1:]
    rows, cols = buf.shape[:2]
    i0, i1 = max(0, -row0), min(rows, H - row0)
    j0, j1 = max(0, -col0), min(cols, W - col0)
    buf[:i0] = 0
    buf[max(i0, i1) :] = 0
    full = C - C % _BLOCK  # channels in whole blocks
    for i in range(i0, i1):
        buf[i, :j0] = 0
        buf[i, max(j0, j1) :] = 0
        src = x[n, :, row0 + i, col0 + j0 : col0 + j1]  # (C, j1 - j0)
        dst = buf[i, j0:j1]  # (j1 - j0, C)
        for c0 in range(0, full, _BLOCK):
            for j in range(j1 - j0):
                block = dst[j, c0 : c0 + _BLOCK]
                for c in range(_BLOCK):
                    block[c] = src[c0 + c, j]
        for j in range(j1 - j0):
            for c in range(full, C):
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
    """The six compiled transforms of the named Winograd variant for one dtype and stride,
    each a parallel loop over Numba's threads."""
    from tinygan.functions.winograd import VARIANTS

    G = VARIANTS[name].G.astype(dtype)
    compiled = {**_sides(name, dtype, S)[0], **_filters(G, S)}
    return {name: one_at_a_time(kernel) for name, kernel in compiled.items()}


def serial_kernels(name: str, dtype: str, S: int) -> dict:  # noqa: N803
    """The four image-side transforms of ``kernels`` as serial loops that release the GIL:
    several Python threads run them at once, each on its own images."""
    return _sides(name, dtype, S)[1]


_BUILDING = threading.Lock()  # the per-core chains ask for the serial kernels from every core


def _sides(name: str, dtype: str, S: int) -> tuple[dict, dict]:  # noqa: N803
    """The input side's and the output side's two directions, (parallel, serial), built
    once per variant, dtype and stride."""
    with _BUILDING:
        return _build_sides(name, dtype, S)


@cache
def _build_sides(name: str, dtype: str, S: int) -> tuple[dict, dict]:  # noqa: N803
    from tinygan.functions.winograd import VARIANTS

    v = VARIANTS[name]
    BT, AT = v.BT.astype(dtype), v.AT.astype(dtype)
    key = f"{name}/{dtype}/S={S}"
    # The input side's tiles are α×α on the stride-phase grid, L = Bᵀ; the output side's are
    # m×m at stride 1, L = Aᵀᵀ (y_tile = Aᵀ·M·A is Lᵀ·M·L).
    input_transform, input_adjoint = _directions(BT, v.m, S, f"{key}/input")
    output_adjoint, output_transform = _directions(
        np.ascontiguousarray(AT.T), v.m, 1, f"{key}/output"
    )
    both = {  # each (parallel, serial)
        "input_transform": input_transform,
        "input_adjoint": input_adjoint,
        "output_transform": output_transform,
        "output_adjoint": output_adjoint,
    }
    parallel = {direction: forms[0] for direction, forms in both.items()}
    serial = {direction: forms[1] for direction, forms in both.items()}
    return parallel, serial


def _helper(function: Callable, key: str) -> Any:
    """A serial loop the parallel kernels call (a separate function ran their inner loops
    10-15 % faster than the same code inlined in the prange body). Numba keys a closure's
    disk cache on its closure variables, and a dispatcher among them is serialised by its
    uuid, random per process: the kernels calling it would be compiled afresh in every
    process (11 s). The uuid is fixed here by ``key``, through the hook Numba's unpickling
    uses; were that hook gone, the kernels would still run, only compiled in every process
    (test_winograd checks the cache hits)."""
    dispatcher = numba.njit(fastmath=True, cache=True)(function)
    set_uuid = getattr(dispatcher, "_set_uuid", None)
    if set_uuid is not None:
        set_uuid(f"tinygan.winograd_kernels/{key}/{function.__name__}")
    return dispatcher


def _directions(L: np.ndarray, m: int, S: int, key: str) -> tuple:  # noqa: N803
    """The two directions of one side's tile transform, for L (α points × size positions):

        gather   planes[k1, k2] = Σ_a,b L[k1, a]·L[k2, b]·tile[a, b]   (image → α² planes)
        scatter  tile[a, b]     = Σ_k1,k2 L[k1, a]·L[k2, b]·planes[k1, k2]   (the adjoint)

    Tile t = (n·th + ti)·tw + tj has its position (a, b) at band row S·(tl·m + a) + ρ and
    column S·(tj·m + b) + σ for each stride phase (ρ, σ); its planes hold channel c of phase
    (ρ, σ) at ((t·S + ρ)·S + σ)·C + c. Tiles overlap by ``halo`` = size − m positions (input
    side), so scatter adds them up and writes the image's even bands before the odd ones.
    Returns (gather, scatter), each as (parallel, serial) compiled forms (``_both_ways``).
    """
    alpha, size = L.shape
    halo = size - m
    passes = 2 if halo else 1  # bands of one parity never share a row

    def gather_tiles(buf, t0, ti_count, tw, planes):  # noqa: N803
        C = buf.shape[2]
        for tl in range(ti_count):
            for tj in range(tw):
                t = t0 + tl * tw + tj
                for rho in range(S):
                    for sigma in range(S):
                        p0 = ((t * S + rho) * S + sigma) * C  # planes[k, t, c'] at c = 0
                        for k1 in range(alpha):
                            for k2 in range(alpha):
                                dst = planes[k1 * alpha + k2, p0 : p0 + C]
                                for c in range(C):
                                    acc = buf.dtype.type(0)
                                    for a in range(size):
                                        i = S * (tl * m + a) + rho
                                        for b in range(size):
                                            j = S * (tj * m + b) + sigma
                                            acc += L[k1, a] * L[k2, b] * buf[i, j, c]
                                    dst[c] = acc

    def scatter_tiles(planes, t0, ti_count, tw, buf):  # noqa: N803
        C = buf.shape[2]
        g = np.empty((alpha * alpha, C), buf.dtype)  # one tile's α² vectors, contiguous
        for tl in range(ti_count):
            for tj in range(tw):
                t = t0 + tl * tw + tj
                for rho in range(S):
                    for sigma in range(S):
                        p0 = ((t * S + rho) * S + sigma) * C
                        for k in range(alpha * alpha):  # a loop, not g[k] = planes[...]:
                            # Numba's array-to-array slice assignment checks the two for
                            # overlap on every call (the input adjoint ran 1.6x slower;
                            # benchmarks/NOTES.md, item 37)
                            src, row = planes[k, p0 : p0 + C], g[k]
                            for c in range(C):
                                row[c] = src[c]
                        for a in range(size):
                            for b in range(size):
                                dst = buf[S * (tl * m + a) + rho, S * (tj * m + b) + sigma]
                                for c in range(C):
                                    acc = buf.dtype.type(0)
                                    for k1 in range(alpha):
                                        for k2 in range(alpha):
                                            acc += L[k1, a] * L[k2, b] * g[k1 * alpha + k2, c]
                                    if halo:  # overlapping tiles add up
                                        dst[c] += acc
                                    else:
                                        dst[c] = acc

    gather_tiles = _helper(gather_tiles, key)
    scatter_tiles = _helper(scatter_tiles, key)

    def define_gather(loop):  # noqa: ANN001, ANN202
        def gather(image, pad, th, tw, nb, planes):
            N, C = image.shape[:2]
            bands = -(-th // nb)
            for chunk in loop(N * bands):
                n, ti0 = chunk // bands, chunk % bands * nb
                ti1 = min(th, ti0 + nb)
                rows, cols = S * ((ti1 - ti0) * m + halo), S * (tw * m + halo)
                buf = np.empty((rows, cols, C), image.dtype)
                _band_in(image, n, S * ti0 * m - pad, -pad, buf)
                gather_tiles(buf, (n * th + ti0) * tw, ti1 - ti0, tw, planes)

        return gather

    def define_scatter(loop):  # noqa: ANN001, ANN202
        def scatter(planes, pad, th, tw, nb, image):
            N, C, H = image.shape[:3]
            bands = -(-th // nb)
            step = S * nb * m  # rows from one band's first row to the next one's
            for parity in range(passes):
                for chunk in loop(N * bands):
                    n, band = chunk // bands, chunk % bands
                    if band % passes != parity:
                        continue
                    ti0 = band * nb
                    ti1 = min(th, ti0 + nb)
                    rows = S * ((ti1 - ti0) * m + halo)
                    buf = np.empty((rows, S * (tw * m + halo), C), image.dtype)
                    if halo:  # overlapping tiles are added up
                        buf[:] = 0
                    scatter_tiles(planes, (n * th + ti0) * tw, ti1 - ti0, tw, buf)
                    # the band's rows (the last one's down to H); odd bands add onto the
                    # rows they share with their even neighbours, which wrote them first
                    row0, last = band * step - pad, band == bands - 1
                    hi = H if last else min(H, row0 + rows)
                    add_below = row0 + S * halo if parity == 1 else -1
                    add_from = row0 + step if parity == 1 and not last else H
                    _band_out(buf, n, row0, -pad, max(0, row0), hi, add_below, add_from, image)

        return scatter

    return _both_ways(define_gather), _both_ways(define_scatter)


def _both_ways(define: Callable) -> tuple[Callable, Callable]:
    """The kernel ``define(loop)`` compiled twice: its outer loop a ``prange`` over Numba's
    threads, and a plain ``range`` that runs on the calling thread without holding the GIL
    (for winograd.py's per-core chains, where each core runs its own images). The loop is a
    closure variable, so the two forms have their own keys in Numba's disk cache (a
    compilation option alone would not tell them apart there)."""
    return numba.njit(**_JIT)(define(prange)), numba.njit(**_SERIAL)(define(range))


def _filters(G: np.ndarray, S: int) -> dict:  # noqa: N803
    """The filter transform U = G·w'·Gᵀ per phase kernel, and its adjoint dw' = Gᵀ·dU·G.

    The transform moves one output channel's weights to taps-major (K, K, C) and applies G
    down, then across, the kernel's rows, each step a loop over the input channels, which
    are contiguous in U's planes; the per-element form wrote the α²·S² values of one
    (input channel, phase) one at a time, 16-32 planes apart (DCGAN's 512×256×4×4 layer in
    the step: 2.33 -> 1.6 ms). The adjoint keeps the per-element form: a taps-major one ran
    1.2-1.5x slower on every layer tried (its write back to (OC, C, K, K) is a transpose).
    """
    alpha, r = G.shape
    K = S * r  # kernel size: r taps per stride phase

    @numba.njit(**_JIT)
    def filter_transform(w, U):  # noqa: N803  U = G·w'·Gᵀ
        CO, C = w.shape[0], w.shape[1]
        for co in prange(CO):
            taps = np.empty((K, K, C), w.dtype)  # taps[i, j, c] = w[co, c, i, j]
            for c in range(C):
                for i in range(K):
                    for j in range(K):
                        taps[i, j, c] = w[co, c, i, j]
            e = np.empty((alpha, K, C), w.dtype)  # G down the kernel rows of one phase
            for rho in range(S):
                for k1 in range(alpha):
                    for j in range(K):
                        dst = e[k1, j]
                        for c in range(C):
                            acc = w.dtype.type(0)
                            for q1 in range(r):
                                acc += G[k1, q1] * taps[S * q1 + rho, j, c]
                            dst[c] = acc
                for sigma in range(S):
                    p0 = (co * S * S + rho * S + sigma) * C
                    for k1 in range(alpha):
                        for k2 in range(alpha):
                            dst = U[k1 * alpha + k2, p0 : p0 + C]
                            for c in range(C):
                                acc = w.dtype.type(0)
                                for q2 in range(r):
                                    acc += G[k2, q2] * e[k1, S * q2 + sigma, c]
                                dst[c] = acc

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

    return {"filter_transform": filter_transform, "filter_adjoint": filter_adjoint}


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
