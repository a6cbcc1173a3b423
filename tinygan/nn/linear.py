"""Fully connected layer and shape utilities: Linear, Identity, Flatten, Unflatten."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygan import functions as F
from tinygan.autograd.tensor import Tensor
from tinygan.backend import to_device
from tinygan.nn import init
from tinygan.nn.module import Module, Parameter


def empty_parameter(
    shape: tuple[int, ...], dtype: Any = np.float32, device: str = "cpu"
) -> Parameter:
    """An uninitialised Parameter (zeros) of ``shape``; layers fill it in ``reset_parameters``."""
    return Parameter(to_device(np.zeros(shape, dtype=np.dtype(dtype)), device))


def check_input(layer: Module, x: Any, ndims: tuple[int, ...], what: str) -> None:
    """Raise a clear error unless ``x`` is a Tensor with one of ``ndims`` dimensions."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{type(layer).__name__}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim not in ndims:
        raise ValueError(f"{type(layer).__name__}: expected {what} input, got shape {x.shape}")


def check_features(layer: Module, x: Tensor, dim: int, expected: int, name: str) -> None:
    if x.shape[dim] != expected:
        raise ValueError(
            f"{type(layer).__name__}: input of shape {x.shape} has {x.shape[dim]} {name} at dim "
            f"{dim}, expected {expected}"
        )


def check_param_match(layer: Module, x: Tensor, param: Tensor) -> None:
    if x.device != param.device or x.dtype != param.dtype:
        raise ValueError(
            f"{type(layer).__name__}: input is {x.dtype} on {x.device} but the layer's weights are "
            f"{param.dtype} on {param.device}"
        )


class Identity(Module):
    """Return the input unchanged (constructor arguments are ignored, as in PyTorch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class Linear(Module):
    """y = x W^T + b.   x: (..., in_features) -> y: (..., out_features).

    weight: (out_features, in_features) ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with
    a = sqrt(5)); bias: (out_features,) ~ U(-1/sqrt(in), 1/sqrt(in)). PyTorch's defaults.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: str = "cpu",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(
                f"Linear: features must be positive, got {in_features}, {out_features}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.weight = empty_parameter((out_features, in_features), dtype, device)
        self.register_parameter(
            "bias", empty_parameter((out_features,), dtype, device) if bias else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim == 0:
            raise ValueError(f"Linear: expected a Tensor with at least 1 dimension, got {x!r}")
        check_features(self, x, -1, self.in_features, "features")
        check_param_match(self, x, self.weight)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Flatten(Module):
    """Merge dims ``start_dim..end_dim`` into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        start = self.start_dim % x.ndim
        end = self.end_dim % x.ndim
        if start > end:
            raise ValueError(
                f"Flatten: start_dim {self.start_dim} is after end_dim {self.end_dim} for input of "
                f"shape {x.shape}"
            )
        shape = x.shape[:start] + (int(np.prod(x.shape[start : end + 1])),) + x.shape[end + 1 :]
        return F.reshape(x, shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size``: (N, 512) -> (N, 32, 4, 4)."""

    def __init__(self, dim: int, unflattened_size: tuple[int, ...]) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        dim = self.dim % x.ndim
        if int(np.prod(self.unflattened_size)) != x.shape[dim] and -1 not in self.unflattened_size:
            raise ValueError(
                f"Unflatten: cannot split dim {self.dim} of size {x.shape[dim]} (input shape "
                f"{x.shape}) into {self.unflattened_size}"
            )
        return F.reshape(x, x.shape[:dim] + self.unflattened_size + x.shape[dim + 1 :])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
