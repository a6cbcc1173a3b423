"""Adam's one-pass CPU loop (optim/adam_kernels.py) against adam.py's array passes: the same
parameters and moments to the last bit, for every option, dtype and size (one thread and
the pool), and NaN gradients still reach the weights."""

from __future__ import annotations

import numpy as np
import pytest

import tinygan as tg
from tinygan import nn, optim
from tinygan.optim import adam_kernels


def _run(cls, kwargs, dtype, size, fused, monkeypatch, steps=4):
    """Parameters and state after ``steps`` steps on fixed gradients, with the loop on or off."""
    with monkeypatch.context() as m:
        if not fused:
            m.setattr(adam_kernels, "usable", lambda *arrays: False)
        calls = []
        original = adam_kernels.update
        m.setattr(adam_kernels, "update", lambda *a: calls.append(1) or original(*a))
        rng = np.random.default_rng(0)
        p = nn.Parameter(rng.standard_normal(size).astype(dtype))
        opt = cls([p], **kwargs)
        for _ in range(steps):
            p.grad = tg.tensor(rng.standard_normal(size).astype(dtype))
            opt.step()
        assert bool(calls) == fused  # the path under test really ran
        return p.numpy().copy(), {k: np.copy(v) for k, v in opt.state[p].items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [37, adam_kernels.PARALLEL_MIN + 3])
@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (optim.Adam, dict(lr=2e-4, betas=(0.5, 0.999))),
        (optim.Adam, dict(lr=1e-3, weight_decay=0.01, amsgrad=True)),
        (optim.AdamW, dict(lr=1e-3, betas=(0.0, 0.9), weight_decay=0.1)),
        (optim.AdamW, dict(lr=3e-3, amsgrad=True, eps=1e-6)),
    ],
)
def test_one_pass_matches_the_array_passes_bit_for_bit(cls, kwargs, dtype, size, monkeypatch):
    got, got_state = _run(cls, kwargs, dtype, size, True, monkeypatch)
    expected, expected_state = _run(cls, kwargs, dtype, size, False, monkeypatch)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    assert got_state.keys() == expected_state.keys()
    for key in got_state:
        np.testing.assert_array_equal(got_state[key], expected_state[key], err_msg=key)


def test_nan_gradient_reaches_the_weights():
    p = nn.Parameter(np.ones(adam_kernels.PARALLEL_MIN + 1, np.float32))
    g = np.zeros_like(p.data)
    g[5] = np.nan
    p.grad = tg.tensor(g)
    optim.Adam([p], lr=0.1).step()
    assert np.isnan(p.data[5]) and np.isfinite(np.delete(p.data, 5)).all()


def test_arrays_the_loop_cannot_update_in_place_take_the_array_passes():
    p = np.zeros((4, 6), np.float32)
    assert adam_kernels.usable(p, p, p, p)
    assert not adam_kernels.usable(p, p.astype(np.float64))  # mixed dtypes
    assert not adam_kernels.usable(p, p, np.zeros((6, 4), np.float32).T)  # a strided moment
    assert not adam_kernels.usable(p.astype(np.float16), p.astype(np.float16))
