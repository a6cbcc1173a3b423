"""Convolutions, padding, resampling and pooling layers (the ops live in tinygan.functions).

Output size of Conv2d along one axis:
``out = floor((in + 2 p - d (k - 1) - 1) / s) + 1``; of ConvTranspose2d:
``out = (in - 1) s - 2 p + d (k - 1) + output_padding + 1``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygan import functions as F
from tinygan.autograd.tensor import Tensor
from tinygan.functions.conv import conv2d, conv_transpose2d
from tinygan.functions.pool import avg_pool2d, interpolate, max_pool2d, pixel_shuffle
from tinygan.nn import init
from tinygan.nn.linear import check_features, check_input, check_param_match, empty_parameter
from tinygan.nn.module import Module

Pair = int | tuple[int, int]


def _pair(value: Pair, name: str, layer: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) for v in pair):
        raise ValueError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate"}


def _widths(x: Tensor, left: int, right: int, top: int, bottom: int) -> tuple:
    """PyTorch's (left, right, top, bottom) as NumPy pad widths for the last two axes of x."""
    return ((0, 0),) * (x.ndim - 2) + ((top, bottom), (left, right))


class _ConvNd(Module):
    """Shared construction, initialisation and repr of Conv2d and ConvTranspose2d."""

    transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Pair,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        output_padding: Pair,
        groups: int,
        bias: bool,
        padding_mode: str,
        device: str,
        dtype: Any,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: in_channels {in_channels} and out_channels {out_channels} must be "
                f"divisible by groups {groups}"
            )
        if padding_mode not in _PAD_MODES or (self.transposed and padding_mode != "zeros"):
            raise ValueError(f"{name}: unsupported padding_mode {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        self.stride = _pair(stride, "stride", name)
        self.padding = _pair(padding, "padding", name)
        self.dilation = _pair(dilation, "dilation", name)
        self.output_padding = _pair(output_padding, "output_padding", name)
        self.groups, self.padding_mode = groups, padding_mode
        if min(self.kernel_size + self.stride + self.dilation) <= 0 or min(self.padding) < 0:
            raise ValueError(
                f"{name}: kernel_size, stride and dilation must be positive and padding "
                f"non-negative, got {self.kernel_size}, {self.stride}, {self.dilation}, "
                f"{self.padding}"
            )
        if self.transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = empty_parameter(shape, dtype, device)
        self.register_parameter(
            "bias", empty_parameter((out_channels,), dtype, device) if bias else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: kaiming_uniform(a=sqrt(5)) weight, U(-1/sqrt(fan_in), ..) bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            bound = 1.0 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def _check(self, x: Tensor) -> None:
        check_input(self, x, (4,), "a 4-D (N, C, H, W)")
        check_features(self, x, 1, self.in_channels, "channels")
        check_param_match(self, x, self.weight)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class Conv2d(_ConvNd):
    """2-D cross-correlation. x: (N, C_in, H, W) -> (N, C_out, H_out, W_out).

    weight: (C_out, C_in / groups, kH, kW); bias: (C_out,). ``padding_mode`` "reflect",
    or "replicate" pads with ``tinygan.functions.pad`` first (CycleGAN uses reflect).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Pair,
        stride: Pair = 1,
        padding: Pair = 0,
        dilation: Pair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: str = "cpu",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, 0, groups, bias,
            padding_mode, device, dtype,
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        padding = self.padding
        if self.padding_mode != "zeros" and padding != (0, 0):
            ph, pw = padding
            x = F.pad(x, _widths(x, pw, pw, ph, ph), mode=_PAD_MODES[self.padding_mode])
            padding = (0, 0)
        return conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed convolution (the adjoint of Conv2d): (N, C_in, H, W) -> (N, C_out, H_out, W_out).

    weight: (C_in, C_out / groups, kH, kW); bias: (C_out,). ``forward(x, output_size)`` picks
    the ``output_padding`` that gives ``output_size`` (H_out, W_out).
    """

    transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Pair,
        stride: Pair = 1,
        padding: Pair = 0,
        output_padding: Pair = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Pair = 1,
        padding_mode: str = "zeros",
        device: str = "cpu",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding,
            groups, bias, padding_mode, device, dtype,
        )  # fmt: skip

    def _output_padding(self, x: Tensor, output_size: tuple[int, ...] | None) -> tuple[int, int]:
        if output_size is None:
            return self.output_padding
        size = tuple(output_size)[-2:]
        result = []
        for axis in range(2):
            smallest = (
                (x.shape[2 + axis] - 1) * self.stride[axis]
                - 2 * self.padding[axis]
                + self.dilation[axis] * (self.kernel_size[axis] - 1)
                + 1
            )
            extra = size[axis] - smallest
            if not 0 <= extra < max(self.stride[axis], self.dilation[axis]):
                raise ValueError(
                    f"ConvTranspose2d: output_size {tuple(output_size)} is not reachable from "
                    f"input of shape {x.shape} (sizes from {smallest} to "
                    f"{smallest + max(self.stride[axis], self.dilation[axis]) - 1} on axis {axis})"
                )
            result.append(extra)
        return result[0], result[1]

    def forward(self, x: Tensor, output_size: tuple[int, ...] | None = None) -> Tensor:
        self._check(x)
        return conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding,
            self._output_padding(x, output_size), self.groups, self.dilation,
        )  # fmt: skip


# ------------------------------------------------------------------ padding
def _quad(padding: int | tuple[int, int, int, int], layer: str) -> tuple[int, int, int, int]:
    quad = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
    if len(quad) != 4 or not all(isinstance(p, int | np.integer) and p >= 0 for p in quad):
        raise ValueError(
            f"{layer}: padding must be a non-negative int or (left, right, top, bottom), got "
            f"{padding!r}"
        )
    return tuple(int(p) for p in quad)  # type: ignore[return-value]


class _Pad2d(Module):
    mode = "constant"

    def __init__(self, padding: int | tuple[int, int, int, int]) -> None:
        super().__init__()
        self.padding = _quad(padding, type(self).__name__)

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, (3, 4), "a 3-D (C, H, W) or 4-D (N, C, H, W)")
        left, right, top, bottom = self.padding
        if self.mode == "reflect" and (
            max(left, right) >= x.shape[-1] or max(top, bottom) >= x.shape[-2]
        ):
            raise ValueError(
                f"ReflectionPad2d: padding {self.padding} must be smaller than the input's "
                f"spatial size, got input of shape {x.shape}"
            )
        return F.pad(x, _widths(x, left, right, top, bottom), mode=self.mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(_Pad2d):
    """Pad H and W with zeros; ``padding`` is an int or (left, right, top, bottom)."""

    mode = "constant"


class ReflectionPad2d(_Pad2d):
    """Pad H and W by mirroring the border (without repeating it): [1 2 3] -> [2 1 2 3 2]."""

    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Pad H and W by repeating the border value: [1 2 3] -> [1 1 2 3 3]."""

    mode = "replicate"


# ------------------------------------------------------------------ resampling and pooling
class Upsample(Module):
    """Resize (N, C, H, W) by ``scale_factor`` or to ``size`` (``tinygan.functions.interpolate``).

    ``mode``: "nearest" (default) or "bilinear" (then ``align_corners`` as in PyTorch).
    """

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
    ) -> None:
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample: give exactly one of size and scale_factor")
        self.size = size
        if scale_factor is not None and not isinstance(scale_factor, tuple):
            scale_factor = float(scale_factor)
        self.scale_factor, self.mode, self.align_corners = scale_factor, mode, align_corners

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, (4,), "a 4-D (N, C, H, W)")
        return interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            text = f"scale_factor={self.scale_factor!r}"
        else:
            text = f"size={self.size!r}"
        return text + f", mode={self.mode!r}"


class PixelShuffle(Module):
    """(N, C r^2, H, W) -> (N, C, H r, W r), sub-pixel convolution (Shi et al. 2016; SRGAN)."""

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, (4,), "a 4-D (N, C, H, W)")
        if x.shape[1] % (self.upscale_factor**2):
            raise ValueError(
                f"PixelShuffle: channels of input shape {x.shape} are not divisible by "
                f"upscale_factor^2 = {self.upscale_factor**2}"
            )
        return pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class _Pool2d(Module):
    def __init__(self, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_Pool2d):
    """Mean over kH x kW windows (stride defaults to the kernel size). (N, C, H, W) in."""

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, (4,), "a 4-D (N, C, H, W)")
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class MaxPool2d(_Pool2d):
    """Maximum over kH x kW windows (stride defaults to the kernel size). (N, C, H, W) in."""

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, (4,), "a 4-D (N, C, H, W)")
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)
