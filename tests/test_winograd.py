"""Winograd convolution (functions/winograd.py): the transform matrices, each product against
naive loops and the im2col path, gradients to second order through conv2d and
conv_transpose2d, the per-core chains against the im2col path, the DCGAN/CycleGAN layer
shapes in float32 against PyTorch's float64 results, and the rules that pick the paths."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_grad, check_second_order
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spy import count_calls
from test_conv import naive_conv2d, naive_conv_transpose2d

import tinygan as tg
from tinygan.functions import conv, winograd
from tinygan.functions.conv import conv2d, conv_transpose2d


@pytest.mark.parametrize("name", sorted(winograd.VARIANTS))
def test_matrices_compute_the_correlation(name):
    """Aᵀ[(G g) ⊙ (Bᵀ d)] = (Σ_q d[i + q]·g[q])_i for random d (α inputs) and g (r taps)."""
    v = winograd.VARIANTS[name]
    rng = np.random.default_rng(0)
    r = v.G.shape[1]
    for _ in range(5):
        d, g = rng.standard_normal(v.alpha), rng.standard_normal(r)
        direct = [d[i : i + r] @ g for i in range(v.m)]
        np.testing.assert_allclose(v.AT @ ((v.G @ g) * (v.BT @ d)), direct, rtol=1e-12)


@pytest.fixture
def winograd_always(monkeypatch):
    """Take the Winograd path for any channel count, and record the products that did."""
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    names = ("conv2d", "conv_transpose2d", "weight_grad")
    return count_calls(
        monkeypatch, winograd, names + ("conv2d_backward", "conv_transpose2d_backward")
    )


@st.composite
def winograd_cases(draw, transpose=False, max_size=7):
    """Geometries the path takes: stride S in {1, 2}, kernel S·r with r in {2, 3}."""
    stride = draw(st.integers(1, 2))
    kernel = stride * draw(st.integers(2, 3))
    padding = draw(st.integers(0, kernel - 1))
    if transpose:
        size = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
        output_padding = draw(st.integers(0, stride - 1))
        # the output must be at least one pixel
        padding = min(padding, ((min(size) - 1) * stride + kernel + output_padding - 1) // 2)
    else:
        low = max(1, kernel - 2 * padding)
        max_size = max(max_size, low)
        size = draw(st.integers(low, max_size)), draw(st.integers(low, max_size))
        output_padding = 0
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    cin, cout = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x = rng.standard_normal((draw(st.integers(1, 2)), cin, *size))
    w_shape = (cin, cout) if transpose else (cout, cin)
    w = rng.standard_normal((*w_shape, kernel, kernel))
    b = rng.standard_normal(cout)
    params = dict(stride=stride, padding=padding)
    if transpose:
        params["output_padding"] = output_padding
    return x, w, b, params


_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(max_examples=40, **_SETTINGS)
@given(case=winograd_cases())
def test_conv2d_matches_naive_loops(winograd_always, case):
    x, w, b, params = case
    winograd_always.clear()
    got = conv2d(tg.tensor(x), tg.tensor(w), tg.tensor(b), **params).numpy()
    assert winograd_always == ["conv2d"]
    expected = naive_conv2d(x, w, b, (params["stride"],) * 2, (params["padding"],) * 2, (1, 1), 1)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=40, **_SETTINGS)
@given(case=winograd_cases(transpose=True))
def test_conv_transpose2d_matches_naive_loops(winograd_always, case):
    x, w, b, params = case
    winograd_always.clear()
    got = conv_transpose2d(tg.tensor(x), tg.tensor(w), tg.tensor(b), **params).numpy()
    assert winograd_always == ["conv_transpose2d"]
    s, p, op = params["stride"], params["padding"], params["output_padding"]
    expected = naive_conv_transpose2d(x, w, b, (s, s), (p, p), (op, op), 1, (1, 1))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=25, **_SETTINGS)
@given(case=winograd_cases())
def test_weight_gradient_matches_the_im2col_path(winograd_always, monkeypatch, case):
    x, w, b, params = case
    y = conv2d(tg.tensor(x), tg.tensor(w), **params)
    gy = np.random.default_rng(1).standard_normal(y.shape)
    geometry = (params["stride"],) * 2, (params["padding"],) * 2, (1, 1), 1
    got = conv._conv_weight_grad(x, gy, w.shape[2:], *geometry)
    monkeypatch.setattr(winograd, "ENABLED", False)
    expected = conv._conv_weight_grad(x, gy, w.shape[2:], *geometry)
    assert "weight_grad" in winograd_always
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def _conv(params):
    return lambda x, w, b: conv2d(x, w, b, **params)


def _conv_t(params):
    return lambda x, w, b: conv_transpose2d(x, w, b, **params)


@settings(max_examples=15, **_SETTINGS)
@given(case=winograd_cases(max_size=5))
def test_conv2d_gradients(winograd_always, case):
    x, w, b, params = case
    winograd_always.clear()
    check_grad(_conv(params), [x, w, b])
    assert {"conv2d", "conv2d_backward"} <= set(winograd_always)  # dx and dW share dM


@settings(max_examples=15, **_SETTINGS)
@given(case=winograd_cases(transpose=True, max_size=4))
def test_conv_transpose2d_gradients(winograd_always, case):
    x, w, b, params = case
    winograd_always.clear()
    check_grad(_conv_t(params), [x, w, b])
    assert {"conv_transpose2d", "conv_transpose2d_backward"} <= set(winograd_always)


@settings(max_examples=6, **_SETTINGS)
@given(case=winograd_cases(max_size=4))
def test_conv2d_second_order(winograd_always, case):
    x, w, b, params = case
    winograd_always.clear()
    check_second_order(_conv(params), [x, w, b])
    assert {"conv2d", "conv_transpose2d", "weight_grad"} <= set(winograd_always)


@settings(max_examples=6, **_SETTINGS)
@given(case=winograd_cases(transpose=True, max_size=3))
def test_conv_transpose2d_second_order(winograd_always, case):
    x, w, b, params = case
    winograd_always.clear()
    check_second_order(_conv_t(params), [x, w, b])
    assert {"conv2d", "conv_transpose2d", "weight_grad"} <= set(winograd_always)


def _forward_backward(op, x, w, params, x_grad=True, w_grad=True):
    """y = op(x, w), then backward with a fixed non-constant dL/dy: [y, the gradients asked]."""
    xt, wt = tg.tensor(x, requires_grad=x_grad), tg.tensor(w, requires_grad=w_grad)
    y = op(xt, wt, **params)
    y.backward(tg.tensor(np.cos(np.arange(y.size)).reshape(y.shape)))
    return [y.numpy(), *(t.grad.numpy() for t in (xt, wt) if t.requires_grad)]


@pytest.mark.parametrize("band_rows", [1, 2, 3, None])
@pytest.mark.parametrize(
    "x_shape, kernel, stride, padding",
    [
        ((3, 5, 14, 13), 4, 2, 1),
        ((2, 4, 11, 12), 3, 1, 1),
        ((1, 3, 9, 9), 4, 2, 0),
        ((2, 21, 10, 9), 4, 2, 1),  # a block of 16 channels and 5 more in the band copies
    ],
)
def test_any_band_height_gives_the_im2col_results(
    winograd_always, monkeypatch, band_rows, x_shape, kernel, stride, padding
):
    """The transforms cut each image into bands of tile rows (winograd._band): one tile row
    per band (the input adjoint's even/odd passes over rows shared by neighbours), a band
    height that leaves a short last band, and whole images (None) all give the im2col
    path's forward, input and weight gradients, for conv2d and conv_transpose2d."""
    monkeypatch.setattr(winograd, "_band", lambda variant, N, C, th, *_: min(th, band_rows or th))
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    C = x_shape[1]
    params = dict(stride=stride, padding=padding)
    for op, w_shape in ((conv2d, (6, C)), (conv_transpose2d, (C, 6))):
        w = rng.standard_normal((*w_shape, kernel, kernel))

        winograd_always.clear()
        got = _forward_backward(op, x, w, params)
        assert len(winograd_always) == 2, winograd_always  # the forward and the backward
        with monkeypatch.context() as off:
            off.setattr(winograd, "ENABLED", False)
            expected = _forward_backward(op, x, w, params)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)


@pytest.fixture
def chained(monkeypatch):
    """Two BLAS threads, and every batch of two or more images through the per-core chains
    in chunks of the size set on the returned list; records what each on_cores call did."""
    from threadpoolctl import threadpool_limits

    from tinygan.backend import batched_matmul

    if not batched_matmul._numpy_openblas():
        pytest.skip("NumPy's BLAS is not OpenBLAS: no per-core chains")
    ran, images = [], [1]
    real = winograd.on_cores
    monkeypatch.setattr(winograd, "on_cores", lambda task: ran.append(real(task)) or ran[-1])
    monkeypatch.setattr(
        winograd, "chain_images", lambda variant, N, *_: images[0] if N > 1 else None
    )
    with threadpool_limits(2, user_api="blas"):
        yield ran, images


@pytest.mark.parametrize("images", [1, 2])
@pytest.mark.parametrize(
    "x_shape, kernel, stride, padding",
    [
        ((5, 4, 9, 10), 4, 2, 1),  # 2 + 3 images a core: a short last chunk
        ((4, 3, 8, 7), 3, 1, 1),
        ((3, 21, 10, 9), 4, 2, 0),
    ],
)
def test_per_core_chains_give_the_im2col_results(
    winograd_always, chained, monkeypatch, images, x_shape, kernel, stride, padding
):
    """Each core's images through transform, products and transform back, a chunk at a
    time, and the weight gradient summed over chunks and cores: forward, both gradients
    together, each alone (conv_transpose2d's and weight_grad's own chains), for conv2d and
    conv_transpose2d, as the im2col path has them."""
    ran, chunk = chained
    chunk[0] = images
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    C = x_shape[1]
    params = dict(stride=stride, padding=padding)
    for op, w_shape in ((conv2d, (6, C)), (conv_transpose2d, (C, 6))):
        w = rng.standard_normal((*w_shape, kernel, kernel))

        for x_grad, w_grad in ((True, True), (True, False), (False, True)):
            ran.clear()
            got = _forward_backward(op, x, w, params, x_grad, w_grad)
            assert ran == [True, True], (op, x_grad, w_grad)  # forward and backward chained
            with monkeypatch.context() as off:
                off.setattr(winograd, "ENABLED", False)
                expected = _forward_backward(op, x, w, params, x_grad, w_grad)
            for g, e in zip(got, expected):
                np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)


def test_which_batches_take_the_per_core_chains(monkeypatch):
    """The chains where the batch's planes outweigh U 16 times or more: DCGAN's D2 and G4
    (64 images of 8×8 tiles, 128 + 256 plane channels), not D3/G3 or D4/G2 (fewer tiles,
    more channels), nor a batch of one; chunks of CHAIN_BYTES of planes (both sides)."""
    v = winograd.VARIANTS["F(2x2,2x2)"]
    per_image = 9 * 8 * 8 * (128 + 256) * 4
    assert winograd.chain_images(v, 64, 8, 8, 128, 256, 4) == winograd.CHAIN_BYTES // per_image
    assert winograd.chain_images(v, 64, 8, 8, 128, 256, 4) == 9
    assert winograd.chain_images(v, 64, 4, 4, 256, 512, 4) is None  # D3 / G3
    assert winograd.chain_images(v, 64, 2, 2, 512, 1024, 4) is None  # D4 / G2
    assert winograd.chain_images(v, 1, 64, 64, 16, 16, 4) is None  # one image
    assert winograd.chain_images(v, 4, 64, 64, 32, 32, 4) == 1  # an image over CHAIN_BYTES
    monkeypatch.setattr(winograd, "CHAINS", False)
    assert winograd.chain_images(v, 64, 8, 8, 128, 256, 4) is None  # switched off


# DCGAN's D2 and G3 (4×4, stride 2, padding 1) and a CycleGAN residual conv (3×3 after
# reflection padding), smaller batches; float32 as in training.
LAYERS = [
    ("conv", (4, 64, 32, 32), (128, 64, 4, 4), 2, 1),
    ("convT", (4, 256, 8, 8), (256, 128, 4, 4), 2, 1),
    ("conv", (1, 64, 18, 18), (64, 64, 3, 3), 1, 0),
    ("conv", (32, 64, 32, 32), (128, 64, 4, 4), 2, 1),  # D2 and G4 at 32 images: chained
    ("convT", (32, 128, 16, 16), (128, 64, 4, 4), 2, 1),
]


@pytest.mark.parametrize("kind, x_shape, w_shape, stride, padding", LAYERS)
def test_layer_shapes_take_the_path_and_match_pytorch(
    monkeypatch, kind, x_shape, w_shape, stride, padding
):
    torch = pytest.importorskip("torch")
    from threadpoolctl import threadpool_limits

    chunks = []  # chain_images's answers: the 32-image layers go through the per-core chains
    real = winograd.chain_images
    monkeypatch.setattr(winograd, "chain_images", lambda *a: chunks.append(real(*a)) or chunks[-1])
    with threadpool_limits(2, user_api="blas"):
        _layer_against_pytorch(torch, kind, x_shape, w_shape, stride, padding)
    assert len(chunks) == 2 and all((n is not None) == (x_shape[0] == 32) for n in chunks)


def _layer_against_pytorch(torch, kind, x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (0.05 * rng.standard_normal(w_shape)).astype(np.float32)
    op, torch_op = {
        "conv": (conv2d, torch.nn.functional.conv2d),
        "convT": (conv_transpose2d, torch.nn.functional.conv_transpose2d),
    }[kind]
    xt, wt = tg.tensor(x, requires_grad=True), tg.tensor(w, requires_grad=True)
    geometry = (stride,) * 2, (padding,) * 2, (1, 1), 1
    channels = w_shape[1::-1] if kind == "conv" else w_shape[:2]
    assert winograd.variant_for(x, w_shape[2:], *geometry, channels[::-1]) is not None
    y = op(xt, wt, stride=stride, padding=padding)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(tg.tensor(gy))
    # PyTorch's result in float64: at 32 images its own float32 weight gradient is off by
    # 3.7e-6 of its scale (tinygan's 0.9e-6), too far to be the reference
    xr = torch.tensor(x.astype(np.float64), requires_grad=True)
    wr = torch.tensor(w.astype(np.float64), requires_grad=True)
    yr = torch_op(xr, wr, stride=stride, padding=padding)
    yr.backward(torch.tensor(gy.astype(np.float64)))
    for got, expected in ((y, yr), (xt.grad, xr.grad), (wt.grad, wr.grad)):
        expected = expected.detach().numpy()
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=2e-6 * scale)


def test_which_products_take_the_path():
    x = np.zeros((1, 64, 8, 8), np.float32)
    take = dict(kernel=(4, 4), stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=1)
    assert winograd.variant_for(x, conv_channels=(64, 64), **take).name == "F(2x2,2x2)"
    three = dict(take, kernel=(3, 3), stride=(1, 1))
    assert winograd.variant_for(x, conv_channels=(64, 64), **three).name == "F(2x2,3x3)"
    refused = [
        dict(take, groups=2),
        dict(take, dilation=(2, 2)),
        dict(take, kernel=(3, 3)),  # stride 2 does not divide 3
        dict(take, kernel=(5, 5), stride=(1, 1)),
        dict(take, stride=(2, 1)),
        dict(take, padding=(1, 0)),
    ]
    for geometry in refused:
        assert winograd.variant_for(x, conv_channels=(64, 64), **geometry) is None, geometry
    # too few channels on either side (the input counted with its 4 stride phases)
    assert winograd.variant_for(x, conv_channels=(3, 64), **take) is None
    assert winograd.variant_for(x, conv_channels=(64, 3), **take) is None
    assert winograd.variant_for(x.astype(np.float16), conv_channels=(64, 64), **take) is None


def test_launches_from_several_threads_queue_up():
    """Numba's work-queue pool aborts the process on concurrent parallel launches; the
    kernels take a lock, so convolutions from several Python threads all finish right."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 12, 12)).astype(np.float32)
    w = (0.1 * rng.standard_normal((16, 16, 3, 3))).astype(np.float32)
    expected = naive_conv2d(x, w, None, (1, 1), (1, 1), (1, 1), 1)

    def run(_):
        return conv2d(tg.tensor(x), tg.tensor(w), padding=1).numpy()

    with ThreadPoolExecutor(4) as pool:
        for got in pool.map(run, range(16)):
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


_POOL_SCRIPT = """
import os
from concurrent.futures import ThreadPoolExecutor
import numpy as np
import numba
import tinygan as tg
from tinygan.functions import activation_kernels, conv2d, instance_norm, norm_kernels, relu
x = np.ones((2, 16, 12, 12), np.float32)
w = np.full((16, 16, 3, 3), 0.1, np.float32)
big = np.random.default_rng(0).standard_normal((1, 256, 32, 32)).astype(np.float32)

def every_parallel_loop(_):  # Winograd transforms, norms, activations (pool-sized arrays)
    y = conv2d(tg.tensor(x), tg.tensor(w), padding=1).numpy()
    z = instance_norm(relu(tg.tensor(big))).numpy()
    dz = activation_kernels.backward(z, np.maximum(big, 0), "relu", 0.0)
    _, mean, _, invstd, affine = norm_kernels.forward(big, None, None, 1e-5, True, 0.0)
    dx = norm_kernels.backward(z, big, None, mean, invstd, True, 0.0, affine)[0]
    return y, z, dz, dx

expected = every_parallel_loop(0)
with ThreadPoolExecutor(4) as pool:  # the lock's case: concurrent launches
    for got in pool.map(every_parallel_loop, range(16)):
        assert all(np.array_equal(a, b) for a, b in zip(got, expected))
print(numba.threading_layer(), os.environ.get("OMP_WAIT_POLICY", "unset"))
"""


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, "omp unset"),  # OpenMP, its passive policy set only while the runtime loaded
        ({"OMP_WAIT_POLICY": "active"}, "omp active"),  # the user's policy is kept
        ({"NUMBA_THREADING_LAYER": "workqueue"}, "workqueue unset"),  # the user's layer too
    ],
)
def test_thread_pool_choice(env, expected):
    """winograd_kernels._start_threads picks OpenMP where it loads, leaves the environment
    as it found it, and respects the user's settings; on each pool, every kind of parallel
    loop (Winograd, norms, activations) launched from four Python threads finishes right
    (the work queue aborts the process on concurrent launches without the shared lock)."""
    import os
    import subprocess
    import sys

    clean = {
        k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER")
    }
    done = subprocess.run(
        [sys.executable, "-c", _POOL_SCRIPT], env={**clean, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == expected.split()


_CACHE_SCRIPT = """
import numpy as np
from threadpoolctl import threadpool_limits
import tinygan as tg
from tinygan.functions import conv2d, winograd, winograd_kernels
for chained in (False, True):  # the parallel kernels, then the chains' serial ones
    winograd.MIN_PLANES_PER_WEIGHT = 0 if chained else 10**9
    for stride, k in ((2, 4), (1, 3)):
        x = tg.tensor(np.ones((2, 16, 8, 8), np.float32), requires_grad=True)
        w = tg.tensor(np.ones((16, 16, k, k), np.float32), requires_grad=True)
        with threadpool_limits(2, user_api="blas"):
            conv2d(x, w, stride=stride, padding=1).sum().backward()
misses = hits = serial_hits = 0
for name, dtype, S in [("F(2x2,2x2)", "float32", 2), ("F(2x2,3x3)", "float32", 1)]:
    kernels = [launch.__wrapped__ for launch in winograd_kernels.kernels(name, dtype, S).values()]
    serial = list(winograd_kernels.serial_kernels(name, dtype, S).values())
    for kernel in kernels + serial:
        misses += sum(kernel.stats.cache_misses.values())
        hits += sum(kernel.stats.cache_hits.values())
    serial_hits += sum(sum(kernel.stats.cache_hits.values()) for kernel in serial)
print(misses, hits, serial_hits)
"""


def test_transforms_load_from_numbas_disk_cache_in_a_new_process():
    """The transforms are closures calling helper loops; the second process that uses them
    loads every one from Numba's disk cache instead of compiling it (11 s per process when
    the helpers' uuids were random, which changed the closures' cache keys), the serial
    forms of the per-core chains as well as the parallel ones."""
    import subprocess
    import sys

    from tinygan.backend import batched_matmul

    runs = [
        subprocess.run([sys.executable, "-c", _CACHE_SCRIPT], capture_output=True, text=True)
        for _ in range(2)
    ]
    for done in runs:
        assert done.returncode == 0, done.stderr[-2000:]
    misses, hits, serial_hits = map(int, runs[1].stdout.split())
    assert misses == 0 and hits >= 8, runs[1].stdout
    if batched_matmul._numpy_openblas():  # the chains ran: their serial kernels were cached
        assert serial_hits >= 4, runs[1].stdout
