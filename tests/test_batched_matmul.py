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
    ],
)
def test_same_results_as_matmul_on_two_threads(shape_a, shape_b, transposed, dtype, split_calls):
    a, b = _operands(shape_a, shape_b, dtype, transposed)
    with threadpool_limits(2, user_api="blas"):
        got = bm.batched_matmul(a, b)
        assert OPENBLAS.get_num_threads() == 2  # restored
    assert split_calls == [2]  # the split path ran
    np.testing.assert_array_equal(got, np.matmul(a, b))
    assert got.dtype == dtype


@needs_openblas
def test_plain_matmul_where_splitting_does_not_pay(split_calls):
    a, b = _operands((8, 8), (3, 8, 8), np.float32)
    with threadpool_limits(1, user_api="blas"):  # one BLAS thread: nothing to spread
        np.testing.assert_array_equal(bm.batched_matmul(a, b), a @ b)
    big_k = int(bm.MAX_PRODUCT_MACS ** (1 / 3)) + 2
    a, b = _operands((big_k, big_k), (2, big_k, big_k), np.float32)
    with threadpool_limits(2, user_api="blas"):  # products large enough for OpenBLAS's threads
        np.testing.assert_array_equal(bm.batched_matmul(a, b), a @ b)
        a1, b1 = _operands((1, 8, 8), (1, 8, 8), np.float32)  # a batch of one
        np.testing.assert_array_equal(bm.batched_matmul(a1, b1), a1 @ b1)
    assert split_calls == []


@needs_openblas
@pytest.mark.parametrize("N, split", [(16, True), (17, True), (9, False), (3, False)])
def test_a_batch_is_cut_only_into_even_or_long_slices(N, split, split_calls):
    """9 products on 2 threads would leave one thread idle for a product's time; 17 are
    long enough for the odd one not to matter."""
    a, b = _operands((N, 6, 5), (N, 5, 4), np.float64)
    with threadpool_limits(2, user_api="blas"):
        np.testing.assert_array_equal(bm.batched_matmul(a, b), a @ b)
    assert split_calls == ([2] if split else [])


@needs_openblas
@pytest.mark.parametrize("N", [16, 9])
def test_out_receives_the_products(N):
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
def test_thread_count_restored_after_an_error():
    a, b = _operands((4, 5), (3, 6, 7), np.float32)  # contraction 5 against 6
    with threadpool_limits(2, user_api="blas"):
        with pytest.raises(ValueError, match="matmul"):
            bm.batched_matmul(a, b)
        assert OPENBLAS.get_num_threads() == 2


@needs_openblas
def test_concurrent_callers_get_their_own_results():
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
def test_a_broadcast_batch_goes_to_matmul(split_calls):
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
def test_a_forked_child_gets_a_pool_of_its_own():
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
