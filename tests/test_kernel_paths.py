"""The ops' GPU branches, run on the CPU: inside ``run_kernels_on_host()`` every op that has a
hand-written CUDA kernel calls it through the host shim (the exact kernels/*.cu text), with
the same argument marshalling and launch geometry as on a GPU. Each case must launch the
kernels it names and agree with the plain NumPy path, values and first-order gradients."""

from __future__ import annotations

import numpy as np
import pytest

import tinygan as tg
import tinygan.functions as F
from tinygan.backend import host_kernels as host_runner_module
from tinygan.backend import run_kernels_on_host


def _random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _run(fn, arrays):
    """Value and gradients of sum(w ⊙ fn(*inputs)) for fixed random weights w."""
    tensors = [tg.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    weights = tg.tensor(_random(out.shape, 99))
    (out * weights).sum().backward()
    return out.numpy(), [t.grad.numpy() for t in tensors]


@pytest.fixture
def launches(monkeypatch):
    """Names of the kernels launched through the host runner during the test."""
    seen: list[str] = []
    original = host_runner_module.HOST.launch

    def spy(file, name, *args):
        seen.append(name)
        return original(file, name, *args)

    monkeypatch.setattr(host_runner_module.HOST, "launch", spy)
    return seen


CASES = {
    "conv2d": (
        lambda x, w: F.conv2d(x, w, stride=2, padding=1),
        [(2, 3, 7, 6), (4, 3, 3, 3)],
        {"im2col_kernel", "col2im_kernel"},
    ),
    "conv2d dilated": (
        lambda x, w: F.conv2d(x, w, padding=2, dilation=2),
        [(1, 2, 6, 5), (3, 2, 3, 3)],
        {"im2col_kernel", "col2im_kernel"},
    ),
    "conv_transpose2d": (
        lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
        [(2, 4, 4, 5), (4, 3, 3, 3)],
        {"im2col_kernel", "col2im_kernel"},
    ),
    "batch_norm": (
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        [(3, 4, 5, 5), (4,), (4,)],
        {"batch_norm_stats", "batch_norm_forward", "batch_norm_backward_reduce"},
    ),
    "instance_norm": (
        lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
        [(2, 3, 6, 7), (3,), (3,)],
        {"instance_norm_forward", "instance_norm_backward"},
    ),
    "batch_norm + relu": (  # the activation after the kernels, its derivative before
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, activation="relu"),
        [(3, 4, 5, 5), (4,), (4,)],
        {"batch_norm_stats", "batch_norm_forward", "batch_norm_backward_reduce"},
    ),
    "instance_norm + leaky_relu": (
        lambda x, w, b: F.instance_norm(x, weight=w, bias=b, activation="leaky_relu"),
        [(2, 3, 6, 7), (3,), (3,)],
        {"instance_norm_forward", "instance_norm_backward"},
    ),
    "adain": (
        lambda x, s: F.adain(x, s),
        [(2, 3, 5, 5), (2, 3, 4, 4)],
        {"instance_norm_forward", "instance_norm_backward"},
    ),
    "reflection pad": (
        lambda x: F.pad(x, ((0, 0), (0, 0), (2, 1), (1, 3)), "reflect"),
        [(2, 3, 5, 6)],
        {"reflection_pad2d_forward", "reflection_pad2d_backward"},
    ),
    "nearest upsample": (
        lambda x: F.interpolate(x, scale_factor=2),
        [(2, 3, 4, 5)],
        {"upsample_nearest2d_forward", "upsample_nearest2d_backward"},
    ),
    "activations": (
        lambda x: F.relu(x) + F.leaky_relu(x, 0.2) + F.tanh(x) + F.sigmoid(x),
        [(3, 4, 5)],
        {"bias_act_forward", "bias_act_backward"},
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_kernel_branch_matches_array_path(name, launches):
    fn, shapes, kernels = CASES[name]
    arrays = [_random(s, i) for i, s in enumerate(shapes)]
    expected_out, expected_grads = _run(fn, arrays)
    assert not launches
    with run_kernels_on_host():
        out, grads = _run(fn, arrays)
    assert kernels <= set(launches), f"{name} did not launch {kernels - set(launches)}"
    np.testing.assert_allclose(out, expected_out, rtol=1e-4, atol=1e-5)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_batch_norm_running_stats_through_kernels(launches):
    x = _random((6, 3, 4, 4), 0)
    stats = {}
    for mode in ("arrays", "kernels"):
        mean, var = tg.zeros(3), tg.ones(3)
        with run_kernels_on_host(mode == "kernels"):
            F.batch_norm(tg.tensor(x), mean, var, training=True)
        stats[mode] = (mean.numpy(), var.numpy())
    assert "batch_norm_stats" in launches
    for a, b in zip(stats["arrays"], stats["kernels"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_second_order_falls_back_to_differentiable_ops():
    """create_graph=True needs backward built from ops; the kernel branch must not break it."""
    x = _random((2, 3, 4, 4), 1)
    results = []
    for enabled in (False, True):
        with run_kernels_on_host(enabled):
            xt = tg.tensor(x, requires_grad=True)
            y = F.instance_norm(F.tanh(xt))
            (g,) = tg.grad((y * y * y).sum(), xt, create_graph=True)
            (gg,) = tg.grad(g.sum(), xt)
            results.append(gg.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-3, atol=1e-4)


def test_float64_never_takes_the_kernel_branch(launches):
    with run_kernels_on_host():
        F.relu(tg.tensor(np.ones((2, 3)))).sum()
    assert not launches
