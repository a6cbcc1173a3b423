"""Weight initialisation, in place, with PyTorch's names and formulas.

Every function writes into ``tensor``'s array (bumping its version), returns ``tensor``, and
draws from ``generator`` (a :class:`tinygan.Generator`) or, by default, the global generator
that :func:`tinygan.manual_seed` seeds, so ``manual_seed(0)`` makes model construction
reproducible (and identical on CPU and GPU, since numbers are drawn on the host).

Fans of a weight of shape ``(out, in, *kernel)``: ``fan_in = in * prod(kernel)``,
``fan_out = out * prod(kernel)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygan import random as _random
from tinygan.autograd.tensor import Tensor
from tinygan.backend import to_device


def _generator(generator: _random.Generator | None) -> _random.Generator:
    return _random.default_generator if generator is None else generator


def _check_float(tensor: Tensor, fn: str) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{fn}: expected a Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind != "f":
        raise TypeError(f"init.{fn}: needs a floating-point tensor, got {tensor.dtype}")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activations' variance stable through ``nonlinearity``.

    linear, conv*, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu with slope ``param``
    (default 0.01): sqrt(2 / (1 + slope^2)); selu: 3/4.
    """
    if nonlinearity in ("linear", "identity", "sigmoid") or nonlinearity.startswith("conv"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, int | float):
            raise ValueError(f"calculate_gain: negative_slope {slope!r} is not a number")
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 0.75
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(
            f"init: fan in and fan out need a tensor with at least 2 dimensions, got shape "
            f"{tensor.shape}"
        )
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _write(tensor: Tensor, values: Any) -> Tensor:
    tensor.data_update_(to_device(values, tensor.device) if np.ndim(values) else values)
    return tensor


# ------------------------------------------------------------------ plain distributions
def uniform_(
    tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: _random.Generator | None = None
) -> Tensor:
    """Fill with U(a, b)."""
    _check_float(tensor, "uniform_")
    values = _generator(generator).uniform(tensor.shape, tensor.dtype, "cpu", low=a, high=b)
    return _write(tensor, values)


def normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: _random.Generator | None = None
) -> Tensor:
    """Fill with N(mean, std^2)."""
    _check_float(tensor, "normal_")
    values = _generator(generator).normal(tensor.shape, tensor.dtype, "cpu")
    if std != 1.0:
        values *= std
    if mean != 0.0:
        values += mean
    return _write(tensor, values)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    return tensor.fill_(val)


def zeros_(tensor: Tensor) -> Tensor:
    return tensor.fill_(0)


def ones_(tensor: Tensor) -> Tensor:
    return tensor.fill_(1)


# ------------------------------------------------------------------ scaled by fans
def xavier_uniform_(
    tensor: Tensor, gain: float = 1.0, generator: _random.Generator | None = None
) -> Tensor:
    """U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(
    tensor: Tensor, gain: float = 1.0, generator: _random.Generator | None = None
) -> Tensor:
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: _random.Generator | None = None,
) -> Tensor:
    """U(-b, b), b = gain * sqrt(3 / fan) with gain = calculate_gain(nonlinearity, a) (He 2015).

    With ``a = sqrt(5)`` (PyTorch's Linear/Conv default) this is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: _random.Generator | None = None,
) -> Tensor:
    """N(0, std^2), std = calculate_gain(nonlinearity, a) / sqrt(fan) (He et al. 2015)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(
    tensor: Tensor, gain: float = 1.0, generator: _random.Generator | None = None
) -> Tensor:
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2014); trailing dims are flattened.

    QR of a Gaussian (rows, cols) matrix, with the signs of R's diagonal folded into Q so the
    result is uniformly distributed over orthogonal matrices.
    """
    _check_float(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError(f"init.orthogonal_: needs at least 2 dimensions, got shape {tensor.shape}")
    rows = tensor.shape[0]
    cols = tensor.size // rows
    flat = _generator(generator).normal((rows, cols), np.float64, "cpu")
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _write(tensor, (gain * q).reshape(tensor.shape).astype(tensor.dtype))


# ------------------------------------------------------------------ whole models
def dcgan_init_(module: Any, generator: _random.Generator | None = None) -> Any:
    """DCGAN's initialisation in one call (Radford, Metz & Chintala 2016, section 4).

    Weights of every Linear, Conv2d and ConvTranspose2d: N(0, 0.02^2), their biases 0;
    BatchNorm/InstanceNorm/LayerNorm gammas: N(1, 0.02^2), betas 0. Returns ``module``.
    """
    from tinygan.nn.conv import Conv2d, ConvTranspose2d
    from tinygan.nn.linear import Linear
    from tinygan.nn.norm import LayerNorm, _NormBase

    for layer in module.modules():
        if isinstance(layer, Linear | Conv2d | ConvTranspose2d):
            normal_(layer.weight, 0.0, 0.02, generator)
            if layer.bias is not None:
                zeros_(layer.bias)
        elif isinstance(layer, _NormBase | LayerNorm):
            if getattr(layer, "weight", None) is not None:
                normal_(layer.weight, 1.0, 0.02, generator)
            if getattr(layer, "bias", None) is not None:
                zeros_(layer.bias)
    return module
