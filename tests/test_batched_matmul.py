"""backend/batched_matmul.py: the per-sample products spread over threads, one BLAS thread
each, must give np.matmul's results exactly and leave OpenBLAS's thread count as it was."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from tinygan.backend import batched_matmul as bm

OPENBLAS = bm._numpy_openblas()
needs_openblas = pytest.mark.skipif(not OPENBLAS, reason="NumPy's BLAS is not OpenBLAS")


def _operands(shape_a, shape_b, dtype, transposed=False):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape_a).astype(dtype)
    b = rng.standard_normal(shape_b).astype(dtype)
    if transposed:  # the same values as a view with swapped strides
        b = np.ascontiguousarray(np.swapaxes(b, -1, -2)).swapaxes(-1, -2)
    return a, b


@pytest.fixture
def any_size(monkeypatch):
    """Every batch large enough to split, so that small operands exercise the split path."""
    monkeypatch.setattr(bm, "MIN_BATCH_MACS", 0)


@pytest.fixture
def split_calls(monkeypatch):
    calls = []
    real = bm._split

    def spy(a, b, out, parts):
        calls.append(parts)
        return real(a, b, out, parts)

    monkeypatch.setattr(bm, "_split", spy)
    return calls


@needs_openblas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape_a, shape_b, transposed",
    [
        ((64, 48), (8, 48, 100), False),  # one matrix times a batch (a conv's forward)
        ((6, 33, 48), (48, 20), False),  # a batch times one matrix
        ((8, 16, 30), (8, 30, 12), True),  # batch times batch, b a transposed view
        ((9, 33, 30), (9, 30, 12), True),  # an odd batch: the ninth cut into bands of rows
        ((33, 48), (3, 48, 100), False),  # one matrix times an odd batch
        ((5, 7, 48), (48, 20), False),  # an odd batch times one matrix
    ],
)
def test_same_results_as_matmul_on_two_threads(
    shape_a, shape_b, transposed, dtype, any_size, split_calls
):
    a, b = _operands(shape_a, shape_b, dtype, transposed)
    with threadpool_limits(2, user_api="blas"):
        got = bm.batched_matmul(a, b)
        assert OPENBLAS.get_num_threads() == 2  # restored
    assert split_calls == [2]  # the split path ran
    np.testing.assert_array_equal(got, np.matmul(a, b))
    assert got.dtype == dtype


@needs_openblas
@pytest.mark.parametrize("N, M", [(2, 9), (3, 5), (5, 4), (9, 64), (7, 3), (3, 1)])
def test_each_thread_gets_whole_products_then_a_band_of_the_rest(N, M, any_size, monkeypatch):
    """9 products on 2 threads: 4 whole ones each, then rows 0-31 and 32-63 of the ninth, so
    neither thread waits a product's time for the other. The bands cover every row once,
    also where M does not divide; with fewer than 2 rows a band (NumPy would take a one-row
    band as a vector product, summed in another order) the leftover goes whole to thread 0."""
    a, b = _operands((N, M, 6), (N, 6, 4), np.float64)
    calls = []
    real_matmul = np.matmul

    def spy(x, y, out):
        calls.append((threading.get_ident(), x.shape[0], x.shape[1]))
        return real_matmul(x, y, out=out)

    monkeypatch.setattr(bm.np, "matmul", spy)
    with threadpool_limits(2, user_api="blas"):
        got = bm.batched_matmul(a, b)
    monkeypatch.setattr(bm.np, "matmul", real_matmul)
    np.testing.assert_array_equal(got, a @ b)
    per_thread = {}
    for thread, products, rows in calls:
        per_thread.setdefault(thread, []).append((products, rows))
    whole, rest = divmod(N, 2)
    expected = [[(whole, M)] if whole else [], [(whole, M)] if whole else []]
    if rest and M >= 4:
        expected[0].append((rest, M // 2))
        expected[1].append((rest, M - M // 2))
    elif rest:
        expected[0].append((rest, M))
    assert sorted(per_thread.values()) == sorted(expected)


@needs_openblas
def test_plain_matmul_where_splitting_does_not_pay(split_calls):
    a, b = _operands((8, 8), (3, 8, 8), np.float32)
    with threadpool_limits(1, user_api="blas"):  # one BLAS thread: nothing to spread
        np.testing.assert_array_equal(bm.batched_matmul(a, b), a @ b)
    with threadpool_limits(2, user_api="blas"):  # a batch too small for the hand-off
        np.testing.assert_array_equal(bm.batched_matmul(a, b), a @ b)
        a1, b1 = _operands((1, 8, 8), (1, 8, 8), np.float32)  # a batch of one
        np.testing.assert_array_equal(bm.batched_matmul(a1, b1), a1 @ b1)
    assert split_calls == []


@needs_openblas
@pytest.mark.parametrize("extra, split", [(0, True), (-1, False)])
def test_the_size_threshold_counts_the_whole_batch(extra, split, split_calls, monkeypatch):
    """A batch of N products of M·K·P multiply-adds splits from MIN_BATCH_MACS on."""
    a, b = _operands((3, 4, 5), (3, 5, 6), np.float64)
    monkeypatch.setattr(bm, "MIN_BATCH_MACS", 3 * 4 * 5 * 6 - extra)
    with threadpool_limits(2, user_api="blas"):
        np.testing.assert_array_equal(bm.batched_matmul(a, b), a @ b)
    assert split_calls == ([2] if split else [])


@needs_openblas
@pytest.mark.parametrize("N", [16, 9])
def test_out_receives_the_products(N, any_size):
    """The Winograd planes' buffer: rows of a (count, spacing) array, a strided (N, M, P)
    view of it."""
    a, b = _operands((N, 12, 7), (N, 7, 10), np.float32)
    buffer = np.full((N, 12 * 10 + 16), np.nan, np.float32)
    out = buffer[:, : 12 * 10].reshape(N, 12, 10)
    with threadpool_limits(2, user_api="blas"):
        assert bm.batched_matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, a @ b)
    assert np.isnan(buffer[:, 12 * 10 :]).all()  # nothing written past each matrix
    with threadpool_limits(2, user_api="blas"):
        with pytest.raises(ValueError, match="matmul"):  # an out of the wrong shape
            bm.batched_matmul(a, b, out=np.empty((N, 12, 9), np.float32))
        assert OPENBLAS.get_num_threads() == 2  # restored


@needs_openblas
def test_thread_count_restored_after_an_error(any_size, split_calls):
    a, b = _operands((4, 5), (3, 6, 7), np.float32)  # contraction 5 against 6
    with threadpool_limits(2, user_api="blas"):
        with pytest.raises(ValueError, match="matmul"):  # refused before the split
            bm.batched_matmul(a, b)
        assert OPENBLAS.get_num_threads() == 2
        a, b = _operands((3, 4, 5), (3, 5, 7), np.float32)
        with pytest.raises(TypeError, match="matmul"):  # raised on the split path's threads
            bm.batched_matmul(a, b, out=np.empty((3, 4, 7), np.int32))
        assert OPENBLAS.get_num_threads() == 2
    assert split_calls == [2]


@needs_openblas
def test_concurrent_callers_get_their_own_results(any_size):
    """Only one batch at a time takes the split path; another thread's runs as np.matmul."""
    operands = [_operands((32, 24), (16, 24, 64), np.float32) for _ in range(4)]
    for i, (a, _) in enumerate(operands):
        a += i  # different results per caller
    results = [None] * len(operands)

    def call(i):
        for _ in range(20):
            results[i] = bm.batched_matmul(*operands[i])

    with threadpool_limits(2, user_api="blas"):
        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(operands))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert OPENBLAS.get_num_threads() == 2
    for (a, b), got in zip(operands, results):
        np.testing.assert_array_equal(got, a @ b)


@needs_openblas
def test_a_broadcast_batch_goes_to_matmul(any_size, split_calls):
    a, b = _operands((1, 4, 5), (6, 5, 3), np.float32)
    with threadpool_limits(2, user_api="blas"):
        np.testing.assert_array_equal(
            bm.batched_matmul(b.swapaxes(1, 2), a.swapaxes(1, 2)),
            np.matmul(b.swapaxes(1, 2), a.swapaxes(1, 2)),
        )
        np.testing.assert_array_equal(bm.batched_matmul(a, b), np.matmul(a, b))
    assert split_calls == []


def test_non_numpy_operands_and_2d_go_to_matmul():
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(bm.batched_matmul(a, a.T), a @ a.T)  # no batch
    assert bm.batched_matmul([[1.0, 2.0]], [[3.0], [4.0]]).tolist() == [[11.0]]


@needs_openblas
def test_a_forked_child_gets_a_pool_of_its_own(any_size):
    """The parent's pool threads are not in a forked child; the child must still finish."""
    import multiprocessing

    a, b = _operands((16, 8), (6, 8, 32), np.float32)
    with threadpool_limits(2, user_api="blas"):
        bm.batched_matmul(a, b)  # the parent's pool now exists
        context = multiprocessing.get_context("fork")
        with context.Pool(1) as pool:
            got = pool.apply_async(_product_in_child, (a, b)).get(timeout=60)
    np.testing.assert_array_equal(got, a @ b)


def _product_in_child(a, b):
    with threadpool_limits(2, user_api="blas"):
        return bm.batched_matmul(a, b)


# ---------------------------------------------------------------- on_cores


@needs_openblas
def test_on_cores_runs_each_share_once_on_its_own_core_with_one_blas_thread():
    seen = []

    def task(core, cores):
        seen.append((core, cores, threading.get_ident(), OPENBLAS.get_num_threads()))

    with threadpool_limits(2, user_api="blas"):
        assert bm.on_cores(task)
        assert OPENBLAS.get_num_threads() == 2  # restored
    assert sorted(entry[:2] for entry in seen) == [(0, 2), (1, 2)]
    threads = {core: thread for core, _, thread, _ in seen}
    assert threads[0] == threading.get_ident() and threads[1] != threads[0]
    assert [entry[3] for entry in seen] == [1, 1]  # one BLAS thread while the tasks ran


@needs_openblas
def test_on_cores_declines_without_two_threads_or_while_another_batch_runs():
    calls = []

    def task(core, cores):
        calls.append(core)

    with threadpool_limits(1, user_api="blas"):
        assert not bm.on_cores(task)
    with threadpool_limits(2, user_api="blas"):
        with bm._lock:  # a batch of another thread holds the cores
            assert not bm.on_cores(task)
        assert OPENBLAS.get_num_threads() == 2
    assert calls == []


@needs_openblas
def test_on_cores_passes_an_error_on_and_restores_the_threads():
    def task(core, cores):
        if core == 1:
            raise RuntimeError(f"core {core} failed")

    with threadpool_limits(2, user_api="blas"):
        with pytest.raises(RuntimeError, match="core 1 failed"):
            bm.on_cores(task)
        assert OPENBLAS.get_num_threads() == 2
        assert bm.on_cores(lambda core, cores: None)  # the lock was released
