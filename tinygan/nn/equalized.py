"""Equalised learning rate layers (Karras, Aila, Laine & Lehtinen 2018, PGGAN section 4.1).

Weights are stored as N(0, 1) samples and multiplied at run time by the He constant
``c = gain * sqrt(2 / fan_in)``, so every weight sees the same effective learning rate with
Adam/RMSprop (which are invariant to the parameter's scale, but not to the scale of its use).

``lr_multiplier`` (StyleGAN's mapping network uses 0.01; Karras et al. 2019) slows one
layer down: the stored weight is N(0, 1 / lr_multiplier^2) and the run-time scale is
``c * lr_multiplier``, so the effective weight is still N(0, c^2) at initialisation while
its updates are ``lr_multiplier`` times smaller. The stored bias is ``bias_init /
lr_multiplier`` and is used times ``lr_multiplier`` (effective bias ``bias_init`` at init).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygan import functions as F
from tinygan.autograd.tensor import Tensor
from tinygan.functions.conv import conv2d
from tinygan.nn import init
from tinygan.nn.conv import _pair
from tinygan.nn.linear import check_features, check_input, check_param_match, empty_parameter
from tinygan.nn.module import Module


class _Equalized(Module):
    def _setup(
        self, shape: tuple[int, ...], fan_in: int, bias: bool, bias_init: float, gain: float,
        lr_multiplier: float, device: str, dtype: Any,
    ) -> None:  # fmt: skip
        if lr_multiplier <= 0:
            raise ValueError(
                f"{type(self).__name__}: lr_multiplier must be > 0, got {lr_multiplier}"
            )
        self.gain, self.lr_multiplier, self.bias_init = gain, lr_multiplier, bias_init
        self.weight_scale = gain * math.sqrt(2.0 / fan_in) * lr_multiplier
        self.weight = empty_parameter(shape, dtype, device)
        self.register_parameter(
            "bias", empty_parameter((shape[0],), dtype, device) if bias else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight, 0.0, 1.0 / self.lr_multiplier)
        if self.bias is not None:
            init.constant_(self.bias, self.bias_init / self.lr_multiplier)

    @property
    def effective_weight(self) -> Tensor:
        """weight * gain * sqrt(2 / fan_in) * lr_multiplier (differentiable)."""
        return self.weight * self.weight_scale

    @property
    def effective_bias(self) -> Tensor | None:
        """bias * lr_multiplier, or None."""
        if self.bias is None:
            return None
        return self.bias if self.lr_multiplier == 1.0 else self.bias * self.lr_multiplier

    def _extra(self) -> str:
        return (
            f", bias={self.bias is not None}, gain={self.gain}, lr_multiplier={self.lr_multiplier}"
        )


class EqualizedLinear(_Equalized):
    """y = x (c W)^T + lr_multiplier * b.  x: (..., in_features) -> (..., out_features).

    weight: (out_features, in_features) ~ N(0, 1 / lr_multiplier^2); fan_in = in_features.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        gain: float = 1.0,
        lr_multiplier: float = 1.0,
        device: str = "cpu",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._setup(
            (out_features, in_features), in_features, bias, bias_init, gain, lr_multiplier,
            device, dtype,
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, tuple(range(1, 9)), "an (..., in_features)")
        check_features(self, x, -1, self.in_features, "features")
        check_param_match(self, x, self.weight)
        return F.linear(x, self.effective_weight, self.effective_bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}" + self._extra()


class EqualizedConv2d(_Equalized):
    """Conv2d with the weight scaled by c at run time. (N, C_in, H, W) -> (N, C_out, H', W').

    weight: (C_out, C_in, kH, kW) ~ N(0, 1 / lr_multiplier^2); fan_in = C_in * kH * kW.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        bias_init: float = 0.0,
        gain: float = 1.0,
        lr_multiplier: float = 1.0,
        device: str = "cpu",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size", "EqualizedConv2d")
        self.stride = _pair(stride, "stride", "EqualizedConv2d")
        self.padding = _pair(padding, "padding", "EqualizedConv2d")
        fan_in = in_channels * self.kernel_size[0] * self.kernel_size[1]
        shape = (out_channels, in_channels, *self.kernel_size)
        self._setup(shape, fan_in, bias, bias_init, gain, lr_multiplier, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, (4,), "a 4-D (N, C, H, W)")
        check_features(self, x, 1, self.in_channels, "channels")
        check_param_match(self, x, self.weight)
        return conv2d(x, self.effective_weight, self.effective_bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}" + self._extra()
        )
