"""tinygan.nn.init: PyTorch's formulas for bounds and standard deviations, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tinygan
from tinygan import nn
from tinygan.nn import init


def empty(*shape: int, dtype=np.float32) -> tinygan.Tensor:
    return tinygan.zeros(*shape, dtype=dtype)


@pytest.mark.parametrize(
    "args",
    [("linear",), ("conv2d",), ("conv_transpose2d",), ("sigmoid",), ("tanh",), ("relu",),
     ("leaky_relu",), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu",)],
)  # fmt: skip
def test_calculate_gain_matches_torch(args):
    assert init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args))


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError, match="softsign"):
        init.calculate_gain("softsign")


SHAPES = [(256, 512), (128, 64, 3, 3), (64, 32, 4, 4)]


def fans(shape):
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


@pytest.mark.parametrize("shape", SHAPES)
def test_uniform_families_bounds_and_std(shape):
    fan_in, fan_out = fans(shape)
    cases = [
        (lambda t: init.kaiming_uniform_(t, a=math.sqrt(5)), 1 / math.sqrt(fan_in)),
        (lambda t: init.kaiming_uniform_(t), math.sqrt(2) * math.sqrt(3 / fan_in)),  # a = 0
        (
            lambda t: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"),
            math.sqrt(2) * math.sqrt(3 / fan_out),
        ),
        (lambda t: init.xavier_uniform_(t, gain=2.0), 2 * math.sqrt(6 / (fan_in + fan_out))),
        (lambda t: init.uniform_(t, -0.3, 0.3), 0.3),
    ]
    for fill, bound in cases:
        values = fill(empty(*shape)).numpy()
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.99 * bound
        assert values.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
        assert abs(values.mean()) < 0.02 * bound


@pytest.mark.parametrize("shape", SHAPES)
def test_normal_families_std(shape):
    fan_in, fan_out = fans(shape)
    cases = [
        (lambda t: init.kaiming_normal_(t, nonlinearity="relu"), math.sqrt(2 / fan_in)),
        (
            lambda t: init.kaiming_normal_(t, a=0.2, mode="fan_out"),
            math.sqrt(2 / 1.04) / math.sqrt(fan_out),
        ),
        (lambda t: init.xavier_normal_(t), math.sqrt(2 / (fan_in + fan_out))),
        (lambda t: init.normal_(t, 0.0, 0.02), 0.02),
    ]
    for fill, std in cases:
        values = fill(empty(*shape)).numpy()
        assert values.std() == pytest.approx(std, rel=0.02)
        assert abs(values.mean()) < 0.02 * std
    values = init.normal_(empty(*shape), mean=1.0, std=0.5).numpy()
    assert values.mean() == pytest.approx(1.0, abs=0.01)


def test_constants_and_version_bump():
    t = empty(3, 4)
    version = t._version
    assert init.ones_(t) is t and np.all(t.numpy() == 1) and t._version == version + 1
    assert np.all(init.zeros_(t).numpy() == 0)
    assert np.all(init.constant_(t, 0.25).numpy() == 0.25)


@pytest.mark.parametrize("shape, gain", [((8, 20), 1.0), ((20, 8), 2.0), ((6, 3, 3, 3), 1.0)])
def test_orthogonal(shape, gain):
    flat = init.orthogonal_(empty(*shape, dtype=np.float64), gain=gain).numpy()
    flat = flat.reshape(shape[0], -1)
    small = min(flat.shape)
    gram = flat @ flat.T if flat.shape[0] == small else flat.T @ flat
    np.testing.assert_allclose(gram, gain**2 * np.eye(small), atol=1e-10)


def test_errors_name_the_function_and_shape():
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(5,\)"):
        init.xavier_uniform_(empty(5))
    with pytest.raises(ValueError, match="fan_avg"):
        init.kaiming_normal_(empty(3, 3), mode="fan_avg")
    with pytest.raises(TypeError, match="normal_.*int64"):
        init.normal_(tinygan.tensor([1, 2, 3]))


def test_generator_and_manual_seed_make_init_reproducible():
    tinygan.manual_seed(7)
    a = nn.Linear(5, 4).weight.numpy().copy()
    tinygan.manual_seed(7)
    b = nn.Linear(5, 4).weight.numpy().copy()
    assert np.array_equal(a, b)
    c = init.normal_(empty(100), generator=tinygan.Generator(1)).numpy().copy()
    d = init.normal_(empty(100), generator=tinygan.Generator(1)).numpy().copy()
    e = init.normal_(empty(100)).numpy().copy()
    assert np.array_equal(c, d) and not np.array_equal(c, e)


def test_dcgan_init():
    tinygan.manual_seed(0)
    model = nn.Sequential(
        nn.ConvTranspose2d(100, 128, 4, 1, 0),
        nn.BatchNorm2d(128),
        nn.ReLU(),
        nn.Conv2d(128, 64, 4, 2, 1),
        nn.InstanceNorm2d(64, affine=True),
        nn.Flatten(),
        nn.Linear(64, 256),
    )
    assert init.dcgan_init_(model) is model
    for layer in (model[0], model[3], model[6]):
        w = layer.weight.numpy()
        assert w.std() == pytest.approx(0.02, rel=0.05) and abs(w.mean()) < 0.002
        assert np.all(layer.bias.numpy() == 0)
    for layer in (model[1], model[4]):
        gamma = layer.weight.numpy()
        assert gamma.mean() == pytest.approx(1.0, abs=0.01)
        assert gamma.std() == pytest.approx(0.02, rel=0.3)
        assert np.all(layer.bias.numpy() == 0)
