"""The Numba loops of activation_kernels.py against the NumPy forms they replace: the same
values bit for bit, the same NaN behaviour, and taken only where they apply."""

from __future__ import annotations

import numpy as np
import pytest
from spy import count_calls

import tinygan as tg
import tinygan.functions as F
from tinygan.functions import activation_kernels

ACTS = {
    "relu": F.relu,
    "leaky_relu 0.2": lambda x: F.leaky_relu(x, 0.2),
    "leaky_relu 0": lambda x: F.leaky_relu(x, 0.0),
    "leaky_relu 1": lambda x: F.leaky_relu(x, 1.0),
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
}


def _forward_backward(act, x, g):
    xt = tg.tensor(x, requires_grad=True)
    y = ACTS[act](xt)
    y.backward(tg.tensor(g))
    return y.numpy(), xt.grad.numpy()


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
# 3·5·7 elements run on one thread, 2·64·33·33 on the pool (PARALLEL_MIN)
@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 64, 33, 33)])
def test_fused_loops_match_the_numpy_forms(monkeypatch, act, dtype, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[:3] = 0.0  # the kink itself
    g = rng.standard_normal(shape).astype(dtype)
    calls = count_calls(monkeypatch, activation_kernels, ("forward", "backward"))
    taken = (
        ["forward", "backward"] if act.split()[0] in activation_kernels.FORWARD else ["backward"]
    )
    fused = _forward_backward(act, x, g)
    assert calls == taken  # tanh and sigmoid forward: one NumPy ufunc already
    monkeypatch.setattr(activation_kernels, "usable", lambda *args: False)
    plain = _forward_backward(act, x, g)
    assert calls == taken  # the switch really turned the loops off
    for got, expected in zip(fused, plain):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("act", ["relu", "leaky_relu 0.2"])
def test_nan_and_inf_propagate_as_in_numpy(act):
    """relu(NaN) is NaN, and a NaN or inf gradient reaching a unit that is off still gives
    NaN (g·0), so a run diverging in D is still caught by the NaN stop."""
    x = np.array([np.nan, -1.0, 2.0, -3.0, np.inf, -np.inf], dtype=np.float32)
    g = np.array([1.0, np.nan, 1.0, np.inf, 1.0, 1.0], dtype=np.float32)
    y, dx = _forward_backward(act, x, g)
    assert np.isnan(y[0]) and y[4] == np.inf
    assert np.isnan(dx[1])  # NaN·0 (relu) or NaN·slope
    assert np.isnan(dx[3]) if act == "relu" else dx[3] == np.inf  # inf·0 is NaN
    assert np.isfinite(dx[[2, 4]]).all()


def test_strided_inputs_and_second_order():
    """A transposed (non-contiguous) input takes the loops; gradients of gradients (WGAN-GP)
    go through tinygan ops and stay right."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6)).T
    np.testing.assert_array_equal(F.leaky_relu(tg.tensor(x), 0.2).numpy(), np.maximum(x, 0.2 * x))
    xt = tg.tensor(x, requires_grad=True)
    (gx,) = tg.autograd.grad(F.tanh(xt).sum(), [xt], create_graph=True)
    (ggx,) = tg.autograd.grad(gx.sum(), [xt])
    t = np.tanh(x)
    np.testing.assert_allclose(ggx.numpy(), -2 * t * (1 - t * t), rtol=1e-12)


def test_not_taken_where_it_does_not_apply():
    assert not activation_kernels.usable(np.zeros(3, np.int64), "relu")
    assert not activation_kernels.usable(np.zeros(3, np.float32), "leaky_relu", 1.5)
    assert not activation_kernels.usable(np.zeros(3, np.float32), "softplus")
    assert activation_kernels.usable(np.zeros(3, np.float32), "leaky_relu", 0.2)


_CACHE_PROBE = """
import sys
import numpy as np
from tinygan.functions import activation_kernels as ak
loop = ak._loops(parallel=sys.argv[1] == "parallel")["relu"]
x = np.ones(8, np.float32)
loop(x, np.float32(0), np.empty_like(x))
print(sum(loop.stats.cache_hits.values()))
"""


def test_serial_loops_never_load_the_parallel_ones_from_the_cache(tmp_path):
    """Numba keys its disk cache on a function's bytecode and closure, not on ``parallel``:
    with identical bodies, a process that found the parallel relu cached loaded it for the
    serial one too, and every small activation launched the thread pool (an MLP step 1.6x
    slower). Here one process caches the parallel loop, and the next must compile the serial
    one, not find it."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))

    def cache_hits(variant: str) -> int:
        cmd = [sys.executable, "-c", _CACHE_PROBE, variant]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        return int(done.stdout.split()[-1])

    assert cache_hits("parallel") == 0  # compiled and saved
    assert cache_hits("parallel") == 1  # the cache works
    assert cache_hits("serial") == 0  # a different function: compiled, not loaded
