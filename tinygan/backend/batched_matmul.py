"""A batch of matrix products spread over the cores, one BLAS thread per product.

``np.matmul`` on a stack of matrices calls OpenBLAS once per matrix, and OpenBLAS splits each
call over all its threads. For the small products of a per-sample convolution (DCGAN's D1:
64 products of 64×48 @ 48×1024, 6 MFLOP each) every call then pays the threads' hand-off
and their synchronisation: the batch took 3.1 ms on two threads against 4.1 on one. Here
the batch is cut into one slice per thread instead, each slice multiplied on its own thread
with OpenBLAS set to one thread, so every product runs whole on one core: 2.2 ms (the 2-core
VM of benchmarks/NOTES.md, item 30). The Winograd planes come here too (winograd._product):
CycleGAN's 16 planes of 256×256 @ 256×256 at batch 1 ran 20 % faster this way in its step,
DCGAN's α² = 9 planes of up to 4096×256 @ 256×128 7 % faster (item 33): even a large
product runs better whole on one core than split over two. A batch that does not divide
evenly, such as those 9 planes on 2 threads, gives each thread its share of whole products
and one band of rows of each product left over (4 + 4 + half of the ninth each), so no
thread waits. Only a batch too small to repay the hand-off (``MIN_BATCH_MACS``) stays with
``np.matmul``.

OpenBLAS's thread count is process-wide: while a batch runs this way, a BLAS call from
another thread of the process runs single-threaded too (its result is unchanged). The count
is restored afterwards, and one batch at a time takes this path (a second, concurrent one
runs as plain ``np.matmul``). Where NumPy's BLAS is not an OpenBLAS that threadpoolctl can
reach, everything runs as plain ``np.matmul``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

# Below this many multiply-adds in the whole batch, handing half of it to another thread
# costs more than it saves: about 0.1 ms a batch on the 2-core VM, where 8 products of
# 128×128 @ 128×128 (17 M) ran in 0.27 ms either way (benchmarks/NOTES.md, item 33).
MIN_BATCH_MACS = 32 * 2**20
ENABLED = True  # tests compare against np.matmul with this off

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_openblas: Any = None  # threadpoolctl's controller of NumPy's OpenBLAS; False where none


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there, and a pool that
    believes it has them would never run what is submitted to it."""
    global _lock, _pool, _pool_size
    _lock, _pool, _pool_size = threading.Lock(), None, 0


if hasattr(os, "register_at_fork"):  # POSIX only; elsewhere there is no fork to survive
    os.register_at_fork(after_in_child=_forget_pool)


def _numpy_openblas() -> Any:
    """threadpoolctl's controller of the OpenBLAS bundled with NumPy (numpy.libs), or False."""
    global _openblas
    if _openblas is None:
        _openblas = False
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - an install requirement
            return _openblas
        for lib in ThreadpoolController().select(internal_api="openblas").lib_controllers:
            if os.path.basename(os.path.dirname(lib.filepath)) == "numpy.libs":
                _openblas = lib
                break
    return _openblas


def _run_shares(share: Callable[[int], None], parts: int) -> None:
    """share(0) on the calling thread and share(1..parts-1) on the pool, all at once."""
    global _pool, _pool_size
    if _pool_size < parts - 1:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="tinygan-matmul")
        _pool_size = parts - 1
    futures = [_pool.submit(share, i) for i in range(1, parts)]
    try:
        share(0)
    finally:
        for future in futures:
            future.result()


def _split(a: np.ndarray, b: np.ndarray, out: np.ndarray, parts: int) -> None:
    """out = a @ b in ``parts`` shares, all but the first on the pool: share i is N // parts
    whole products, then band i of the rows of each of the N % parts products left over
    (with fewer than 2 rows a band, leftover product i whole). Every band is a matrix
    product of OpenBLAS's, so the sums are np.matmul's exactly."""
    N, M = out.shape[:2]
    whole = N // parts
    rest = slice(parts * whole, N)

    def product(batch: slice, rows: slice) -> None:
        np.matmul(
            a[batch, rows] if a.ndim == 3 else a[rows],
            b[batch] if b.ndim == 3 else b,
            out=out[batch, rows],
        )

    def share(i: int) -> None:
        if whole:
            product(slice(i * whole, (i + 1) * whole), slice(None))
        if rest.start == N:
            return
        if M >= 2 * parts:
            product(rest, slice(M * i // parts, M * (i + 1) // parts))
        elif rest.start + i < N:  # bands of one row would be vector products, summed
            product(slice(rest.start + i, rest.start + i + 1), slice(None))  # another way

    _run_shares(share, parts)


def on_cores(task: Callable[[int, int], None]) -> bool:
    """Run task(i, parts) for i < parts at once, one call per core, with OpenBLAS at one
    thread, where OpenBLAS has ``parts`` >= 2 threads; task(0, parts) runs on the calling
    thread. The tasks' GEMMs and GIL-free kernels then run side by side (winograd.py runs
    each core's images through the whole transform-product-transform chain this way).
    Returns False, having run nothing, where it cannot: no OpenBLAS that threadpoolctl can
    reach, one thread, or another batch or task already running this way."""
    openblas = _numpy_openblas()
    if not openblas or not _lock.acquire(blocking=False):
        return False
    try:
        threads = openblas.get_num_threads()
        if threads < 2:
            return False
        openblas.set_num_threads(1)
        try:
            _run_shares(lambda i: task(i, threads), threads)
        finally:
            openblas.set_num_threads(threads)
        return True
    finally:
        _lock.release()


def batched_matmul(a: Any, b: Any, out: Any = None) -> Any:
    """``np.matmul(a, b, out=out)`` for a batch of products: a (N, M, K) or (M, K), b (N, K, P)
    or (K, P), at least one of them batched; each product on one core where that is faster
    (NumPy arrays, OpenBLAS with several threads, a batch of at least ``MIN_BATCH_MACS``),
    else np.matmul itself."""
    if not (type(a) is np.ndarray and type(b) is np.ndarray) or max(a.ndim, b.ndim) != 3:
        return np.matmul(a, b, out=out)
    N = a.shape[0] if a.ndim == 3 else b.shape[0]
    if a.ndim == b.ndim == 3 and a.shape[0] != b.shape[0]:  # a broadcast batch
        return np.matmul(a, b, out=out)
    M, K = a.shape[-2:]
    P = b.shape[-1]
    if b.shape[-2] != K or (out is not None and out.shape != (N, M, P)):
        return np.matmul(a, b, out=out)  # NumPy's own error, before any thread count changes
    if not ENABLED or N * M * K * P < MIN_BATCH_MACS or N < 2:
        return np.matmul(a, b, out=out)
    openblas = _numpy_openblas()
    if not openblas or not _lock.acquire(blocking=False):
        return np.matmul(a, b, out=out)
    try:
        threads = openblas.get_num_threads()
        parts = min(threads, N)
        if parts < 2:
            return np.matmul(a, b, out=out)
        if out is None:
            out = np.empty((N, M, P), dtype=np.result_type(a, b))
        openblas.set_num_threads(1)
        try:
            _split(a, b, out, parts)
        finally:
            openblas.set_num_threads(threads)
        return out
    finally:
        _lock.release()
