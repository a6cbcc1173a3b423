"""Activations: relu, leaky_relu, prelu, elu, sigmoid, tanh, softplus, softmax, log_softmax.

Most save their output, not their input: the derivative of each is a function of the output
(σ' = σ(1 − σ), tanh' = 1 − tanh², relu' = [y > 0]), and the output is usually kept alive
by the next layer anyway, so saving it costs no memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.autograd import Function, Tensor, is_grad_enabled
from tinygan.backend import cuda_kernels, get_array_module, kernel_runner
from tinygan.functions.math import exp, where
from tinygan.functions.reduce import normalise_axes
from tinygan.functions.shape import reshape


class _OutputActivation(Function):
    """An activation whose derivative is a function of its output y. Forward and first-order
    backward run fused: for float32 arrays with a kernel runner (a GPU, or the host shim in
    tests) the kernels of kernels/bias_act.cu, for NumPy arrays the Numba loops of
    activation_kernels.py. Otherwise, and for higher orders, ``compute`` and ``derivative``."""

    act = ""

    def forward(self, x: Any, slope: float = 0.0) -> Any:
        self.slope = slope
        self.runner = kernel_runner(x) if x.ndim >= 2 and slope >= 0 else None
        fused = None if self.runner is not None else _fused_kernels(x, self.act, slope)
        if self.runner is not None:
            out = cuda_kernels.bias_act_gpu(x, None, self.act, slope, self.runner)
        elif fused is not None and self.act in fused.FORWARD:
            out = fused.forward(x, self.act, slope)
        else:
            out = self.compute(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad: Tensor) -> Tensor:
        (out,) = self.saved_tensors
        first_order = grad.dtype == out.dtype and grad.shape == out.shape and not is_grad_enabled()
        if first_order and self.runner is not None:
            backward = cuda_kernels.bias_act_backward_gpu
            return Tensor._wrap(backward(grad.data, out.data, self.act, self.slope, self.runner))
        fused = _fused_kernels(out.data, self.act, self.slope) if first_order else None
        if fused is not None:
            return Tensor._wrap(fused.backward(grad.data, out.data, self.act, self.slope))
        return self.derivative(grad, out)

    def compute(self, x: Any) -> Any:
        raise NotImplementedError

    def derivative(self, grad: Tensor, out: Tensor) -> Tensor:
        raise NotImplementedError


class ReLU(_OutputActivation):
    """max(x, 0); derivative [y > 0]."""

    act = "relu"

    def compute(self, x: Any) -> Any:
        return self.xp.maximum(x, 0)

    def derivative(self, grad: Tensor, out: Tensor) -> Tensor:
        return grad * Tensor._wrap((out.data > 0).astype(out.dtype))


class LeakyReLU(_OutputActivation):
    """x for x > 0, slope·x otherwise (Maas et al. 2013; DCGAN's D uses slope 0.2).

    For 0 ≤ slope ≤ 1 this is max(x, slope·x) and its derivative max([y > 0], slope): two
    plain elementwise passes each, where ``where(x > 0, x, slope·x)`` went through NumPy's
    much slower masked select. Measured on (64, 64, 32, 32) float32: forward 4-7x, derivative
    about 3x faster, the same values bit for bit.
    """

    act = "leaky_relu"

    def compute(self, x: Any) -> Any:
        slope = x.dtype.type(self.slope)
        out = self.xp.multiply(x, slope)
        if 0 <= self.slope <= 1:
            return self.xp.maximum(out, x, out=out)
        if self.slope > 1:
            return self.xp.minimum(out, x, out=out)
        return self.xp.where(x > 0, x, out)

    def derivative(self, grad: Tensor, out: Tensor) -> Tensor:
        return grad * Tensor._wrap(leaky_relu_slopes(out.data, self.slope))


class ELU(Function):
    """x for x > 0, α(eˣ − 1) otherwise (Clevert et al. 2016); derivative y + α below 0."""

    def forward(self, x: Any, alpha: float) -> Any:
        self.alpha = alpha
        negative = alpha * self.xp.expm1(self.xp.minimum(x, 0))
        out = self.xp.where(x > 0, x, negative).astype(x.dtype, copy=False)
        self.save_for_backward(out)
        return out

    def backward(self, grad: Tensor) -> Tensor:
        (out,) = self.saved_tensors
        return where(out.data > 0, grad, grad * (out + self.alpha))


class Sigmoid(_OutputActivation):
    """σ(x) = 1 / (1 + e⁻ˣ), computed as (1 + tanh(x/2)) / 2 so it never overflows;
    derivative y(1 − y)."""

    act = "sigmoid"

    def compute(self, x: Any) -> Any:
        return 0.5 * (1 + self.xp.tanh(0.5 * x))

    def derivative(self, grad: Tensor, out: Tensor) -> Tensor:
        return grad * (out * (1 - out))


class Tanh(_OutputActivation):
    """tanh(x); derivative 1 − y²."""

    act = "tanh"

    def compute(self, x: Any) -> Any:
        return self.xp.tanh(x)

    def derivative(self, grad: Tensor, out: Tensor) -> Tensor:
        return grad * (1 - out * out)


class Softplus(Function):
    """log(1 + e^(βx)) / β, computed with logaddexp so it never overflows; derivative σ(βx)."""

    def forward(self, x: Any, beta: float) -> Any:
        self.beta = beta
        self.save_for_backward(x)
        return self.xp.logaddexp(0, beta * x).astype(x.dtype, copy=False) / x.dtype.type(beta)

    def backward(self, grad: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        return grad * sigmoid(x * self.beta if self.beta != 1 else x)


class Softmax(Function):
    """exp(x − max) / Σ exp(x − max) along ``axis``; backward y ⊙ (g − Σ g ⊙ y)."""

    def forward(self, x: Any, axis: int) -> Any:
        self.axis = axis
        e = self.xp.exp(x - x.max(axis=axis, keepdims=True))
        out = e / e.sum(axis=axis, keepdims=True)
        self.save_for_backward(out)
        return out

    def backward(self, grad: Tensor) -> Tensor:
        (out,) = self.saved_tensors
        return out * (grad - (grad * out).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """x − max − log Σ exp(x − max) along ``axis``; backward g − softmax ⊙ Σ g."""

    def forward(self, x: Any, axis: int) -> Any:
        self.axis = axis
        shifted = x - x.max(axis=axis, keepdims=True)
        out = shifted - self.xp.log(self.xp.exp(shifted).sum(axis=axis, keepdims=True))
        self.save_for_backward(out)
        return out

    def backward(self, grad: Tensor) -> Tensor:
        (out,) = self.saved_tensors
        return grad - exp(out) * grad.sum(axis=self.axis, keepdims=True)


def _fused_kernels(x: Any, act: str, slope: float) -> Any:
    """activation_kernels (imported on first use: it brings in Numba) when it can take x."""
    if type(x) is not np.ndarray:
        return None
    from tinygan.functions import activation_kernels

    return activation_kernels if activation_kernels.usable(x, act, slope) else None


def leaky_relu_slopes(out: Any, slope: float) -> Any:
    """The derivative of leaky ReLU (ReLU for slope 0) as an array, from its output: 1 where
    the output is positive, else ``slope``."""
    positive = (out > 0).astype(out.dtype)  # 1 where y > 0, else 0
    if 0 <= slope <= 1:
        return get_array_module(out).maximum(positive, out.dtype.type(slope), out=positive)
    return positive * (1 - out.dtype.type(slope)) + out.dtype.type(slope)


def relu(x: Tensor) -> Tensor:
    return ReLU.apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope·x otherwise; negative_slope ≥ 0 (the derivative is read
    from the sign of the output, which a negative slope would flip)."""
    if negative_slope < 0:
        raise ValueError(f"leaky_relu: negative_slope must be >= 0, got {negative_slope}")
    return LeakyReLU.apply(x, slope=float(negative_slope))


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return ELU.apply(x, alpha=float(alpha))


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid.apply(x)


def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(x)


def softplus(x: Tensor, beta: float = 1.0) -> Tensor:
    if beta <= 0:
        raise ValueError(f"softplus: beta must be positive, got {beta}")
    return Softplus.apply(x, beta=float(beta))


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    (axis,) = normalise_axes(axis, x.ndim, "softmax")
    return Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    (axis,) = normalise_axes(axis, x.ndim, "log_softmax")
    return LogSoftmax.apply(x, axis=axis)


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    """max(x, 0) + a·min(x, 0) with a learned slope per channel (axis 1) or one shared slope
    (He et al. 2015; SRGAN's generator)."""
    channels = x.shape[1] if x.ndim >= 2 else 1
    if weight.ndim != 1 or weight.shape[0] not in (1, channels):
        raise ValueError(
            f"prelu: weight {weight.shape} must be (1,) or ({channels},) for input {x.shape}"
        )
    if x.ndim >= 2 and weight.shape[0] != 1:
        weight = reshape(weight, (1, channels) + (1,) * (x.ndim - 2))
    return relu(x) - weight * relu(-x)
