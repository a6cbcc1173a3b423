"""Normalisation layers: BatchNorm1d/2d, InstanceNorm2d, LayerNorm, AdaIN.

All normalise ``x_hat = (x - mean) / sqrt(var + eps)`` (biased variance) over some axes and
then apply a learnt (or given) per-channel affine ``gamma * x_hat + beta``. They differ in
the axes: batch norm over (N, H, W) per channel (Ioffe & Szegedy 2015); instance norm over
(H, W) per sample and channel (Ulyanov et al. 2016; CycleGAN); layer norm over the trailing
``normalized_shape`` (Ba et al. 2016); AdaIN takes gamma and beta from a style (Huang &
Belongie 2017; StyleGAN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygan import functions as F
from tinygan.autograd.tensor import Tensor
from tinygan.backend import to_device
from tinygan.functions.norm import adain, batch_norm, instance_norm, layer_norm, style_modulation
from tinygan.nn.activation import LeakyReLU, ReLU
from tinygan.nn.linear import Linear, check_features, check_input, check_param_match
from tinygan.nn.module import Module, Parameter


def _filled(shape: tuple[int, ...], value: float, dtype: Any, device: str) -> np.ndarray:
    return to_device(np.full(shape, value, dtype=np.dtype(dtype)), device)


class _NormBase(Module):
    """Running statistics and affine parameters shared by batch and instance norm.

    Buffers (when ``track_running_stats``): ``running_mean`` (C,) zeros, ``running_var`` (C,)
    ones, ``num_batches_tracked`` () int64. Parameters (when ``affine``): ``weight`` (C,) ones,
    ``bias`` (C,) zeros (absent with ``bias=False``). ``momentum=None`` gives a cumulative
    average (1 / batches seen).
    """

    _input_dims: tuple[int, ...] = (4,)
    _input_text = "a 4-D (N, C, H, W)"

    def __init__(
        self,
        num_features: int,
        eps: float,
        momentum: float | None,
        affine: bool,
        track_running_stats: bool,
        device: str,
        dtype: Any,
        bias: bool,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        weight = beta = None
        if affine:
            weight = Parameter(_filled((num_features,), 1.0, dtype, device))
            if bias:
                beta = Parameter(_filled((num_features,), 0.0, dtype, device))
        self.register_parameter("weight", weight)
        self.register_parameter("bias", beta)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(_filled((num_features,), 0, dtype, device)))
            self.register_buffer("running_var", Tensor(_filled((num_features,), 1, dtype, device)))
            self.register_buffer("num_batches_tracked", Tensor(to_device(np.array(0), device)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def _check(self, x: Tensor) -> None:
        check_input(self, x, self._input_dims, self._input_text)
        check_features(self, x, 1, self.num_features, "channels")
        if self.weight is not None:
            check_param_match(self, x, self.weight)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class _BatchNorm(_NormBase):
    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: str = "cpu",
        dtype: Any = np.float32,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias
        )

    def _momentum(self) -> float:
        """Count this batch and return the running-average factor to use for it."""
        if not (self.training and self.track_running_stats):
            return 0.0 if self.momentum is None else self.momentum
        self.num_batches_tracked.data_update_(lambda a: a.__iadd__(1))
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked.item())
        return self.momentum

    def forward(self, x: Tensor) -> Tensor:
        """Training: normalise with the batch's statistics and update the running ones in place;
        eval: normalise with the running statistics (batch ones if none are tracked)."""
        return self._normalize(x)

    def _normalize(
        self, x: Tensor, activation: str | None = None, negative_slope: float = 0.01
    ) -> Tensor:
        self._check(x)
        if self.training and x.size // x.shape[1] <= 1:
            raise ValueError(
                f"{type(self).__name__}: expected more than 1 value per channel in training, got "
                f"input of shape {x.shape}"
            )
        momentum = self._momentum()
        use_batch_stats = self.training or self.running_mean is None
        return batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, use_batch_stats,
            momentum, self.eps, activation, negative_slope,
        )  # fmt: skip


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) or (N, C, L) inputs, statistics over N (and L) per channel."""

    _input_dims = (2, 3)
    _input_text = "a 2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) inputs, statistics over (N, H, W) per channel (DCGAN)."""


class InstanceNorm2d(_NormBase):
    """Instance norm of (N, C, H, W): statistics over (H, W) per sample and channel.

    PyTorch's defaults: ``affine=False, track_running_stats=False`` (CycleGAN, pix2pix).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: str = "cpu",
        dtype: Any = np.float32,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias
        )

    def forward(self, x: Tensor) -> Tensor:
        return self._normalize(x)

    def _normalize(
        self, x: Tensor, activation: str | None = None, negative_slope: float = 0.01
    ) -> Tensor:
        self._check(x)
        if x.shape[2] * x.shape[3] <= 1 and (self.training or not self.track_running_stats):
            raise ValueError(f"InstanceNorm2d: needs more than 1 spatial element, got {x.shape}")
        momentum = 0.0 if self.momentum is None else self.momentum  # no batch counting here
        return instance_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            self.training or not self.track_running_stats, momentum, self.eps, activation,
            negative_slope,
        )  # fmt: skip


def fused_pair(norm: Module, activation: Module) -> Callable[[Tensor], Tensor] | None:
    """x ↦ activation(norm(x)) as one op, for a BatchNorm or InstanceNorm2d followed by ReLU
    or LeakyReLU (0 ≤ slope ≤ 1): ``batch_norm(..., activation=...)``, which on the CPU
    applies the activation inside the norm's passes instead of in passes of its own
    (nn.Sequential uses it). None where the pair does not fuse: other layers, subclasses with
    their own forward, modules with forward pre-hooks (which must see the norm's output)."""
    if type(activation) is ReLU:
        act = ("relu", 0.0)
    elif type(activation) is LeakyReLU and 0 <= activation.negative_slope <= 1:
        act = ("leaky_relu", activation.negative_slope)
    else:
        return None
    if type(norm).forward not in (_BatchNorm.forward, InstanceNorm2d.forward):
        return None
    if norm._forward_pre_hooks or activation._forward_pre_hooks:
        return None
    return lambda x: norm._normalize(x, *act)


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dims (per sample), then affine.

    weight: ``normalized_shape`` ones; bias: zeros (omitted with ``bias=False``).
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: str = "cpu",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        weight = bias_param = None
        if elementwise_affine:
            weight = Parameter(_filled(self.normalized_shape, 1.0, dtype, device))
            if bias:
                bias_param = Parameter(_filled(self.normalized_shape, 0.0, dtype, device))
        self.register_parameter("weight", weight)
        self.register_parameter("bias", bias_param)

    def forward(self, x: Tensor) -> Tensor:
        n = len(self.normalized_shape)
        if not isinstance(x, Tensor) or x.shape[x.ndim - n :] != self.normalized_shape:
            raise ValueError(
                f"LayerNorm: input of shape {getattr(x, 'shape', None)} does not end with "
                f"normalized_shape {self.normalized_shape}"
            )
        if self.weight is not None:
            check_param_match(self, x, self.weight)
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class AdaIN(Module):
    """Adaptive instance norm: ``scale * (x - mean(x)) / sqrt(var(x) + eps) + bias`` per sample
    and channel, with scale and bias taken from a style (Huang & Belongie 2017; StyleGAN).

    ``forward(x, style)`` with x: (N, C, H, W) and either

    - ``style`` (N, C, H', W'): style features; scale, bias = their per-channel std, mean
      (arbitrary style transfer, Huang & Belongie);
    - ``style`` (N, style_dim), when built with ``style_dim``: a learnt affine map ``A`` gives
      (scale, bias) = split(A(style)), A's bias starting at scale 1, bias 0 (StyleGAN's "A");
    - ``forward(x, scale, bias)`` with scale, bias: (N, C) given directly.
    """

    def __init__(
        self,
        num_features: int,
        style_dim: int | None = None,
        eps: float = 1e-5,
        device: str = "cpu",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.num_features, self.style_dim, self.eps = num_features, style_dim, eps
        if style_dim is not None:
            self.affine = Linear(style_dim, 2 * num_features, device=device, dtype=dtype)
            ones = np.concatenate([np.ones(num_features), np.zeros(num_features)])
            self.affine.bias.copy_(to_device(ones.astype(dtype), device))

    def forward(self, x: Tensor, style: Tensor, bias: Tensor | None = None) -> Tensor:
        check_input(self, x, (4,), "a 4-D (N, C, H, W)")
        check_features(self, x, 1, self.num_features, "channels")
        n, c = x.shape[:2]
        if bias is not None:
            if style.shape != (n, c) or bias.shape != (n, c):
                raise ValueError(
                    f"AdaIN: scale {style.shape} and bias {bias.shape} must both be (N, C) = "
                    f"{(n, c)} for input {x.shape}"
                )
            return style_modulation(x, style, bias, self.eps)
        if style.ndim == 4:
            if style.shape[:2] != (n, c):
                raise ValueError(f"AdaIN: style features {style.shape} do not match {x.shape}")
            return adain(x, style, self.eps)
        if self.style_dim is None or style.shape != (n, self.style_dim):
            raise ValueError(
                f"AdaIN: style of shape {style.shape} for input {x.shape}: expected (N, C, H, W) "
                f"features, (N, style_dim={self.style_dim}) codes, or scale and bias (N, C)"
            )
        scale, shift = F.chunk(self.affine(style), 2, axis=1)
        return style_modulation(x, scale, shift, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, style_dim={self.style_dim}, eps={self.eps}"
