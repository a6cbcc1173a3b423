"""Normalisation: batch, instance and layer norm (one fused op), AdaIN in both forms,
pixel norm and the minibatch standard deviation feature.

batch_norm, instance_norm and layer_norm all compute y = (x − μ) / √(σ² + ε) · w + b, with
the mean μ and biased variance σ² taken over different axes of x:
    batch_norm     x: (N, C, *)   over N and *, per channel      (Ioffe & Szegedy 2015)
    instance_norm  x: (N, C, *)   over *, per sample and channel (Ulyanov et al. 2016)
    layer_norm     x: (..., *S)   over the trailing axes S       (Ba et al. 2016)
so they share one Function, ``_Normalize``, whose backward is the closed-form gradient
    dx = (1/σ) · (g − mean(g) − x̂ · mean(g · x̂)),   g = dy · w,  x̂ = (x − μ)/σ
written with tinygan ops; under ``create_graph`` μ and σ are recomputed from x with
differentiable ops too, so the gradient can be differentiated again.

batch_norm and instance_norm can also apply the ReLU or leaky ReLU that follows them
(``activation=``; nn.Sequential passes it for a norm layer followed by one): z = max(y, s·y).
On the CPU the Numba kernels do it in the same passes (norm_kernels.py); elsewhere it is an
extra step, and the backward multiplies dL/dz by the activation's derivative first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygan.autograd import Function, Tensor, is_grad_enabled
from tinygan.backend import cuda_kernels, kernel_runner
from tinygan.functions.activation import leaky_relu, leaky_relu_slopes, relu
from tinygan.functions.math import sqrt
from tinygan.functions.reduce import mean, var
from tinygan.functions.shape import broadcast_to, concat, reshape, sum_to, sum_to_array

# ---------------------------------------------------------------- the fused normalisation


class _Normalize(Function):
    """y = (x − μ) · (1/√(σ² + ε)) · w + b; μ, σ² over ``axes``; w, b broadcast against x.

    ``running`` = (running_mean, running_var, momentum) updates the per-channel running
    statistics in place: r ← (1 − m)·r + m·s, with the unbiased variance for r_var.
    ``slope`` (0 ≤ s ≤ 1, or None for no activation) returns z = max(y, s·y) instead of y.
    """

    def forward(
        self,
        x: Any,
        w: Any,
        b: Any,
        axes: tuple[int, ...],
        eps: float,
        running: tuple | None = None,
        kind: str | None = None,
        slope: float | None = None,
    ) -> Any:
        self.axes, self.eps, self.b_shape = axes, eps, None if b is None else b.shape
        self.slope, self.has_w = slope, w is not None
        # batch and instance norm of float32 run kernels/{batch,instance}_norm.cu when they can
        self.runner = None if kind is None else kernel_runner(x)
        # ... and norm_kernels.py (Numba) on the CPU
        self.fused = kind is not None and self.runner is None and _fused_kernels(x) is not None
        if self.fused:  # the activation inside the kernels
            y, variance = self._forward_fused(x, w, b, kind)
        else:
            if self.runner is not None:
                y, variance = self._forward_kernels(x, w, b, kind)
            else:
                y, variance = self._forward_arrays(x, w, b)
            if slope is not None:
                self.xp.maximum(y, y * slope, out=y)
        if running is not None:
            count = x.size // self.mean.size
            _update_running(running, self.mean, variance * (count / (count - 1)))
        # the output only for the activation's derivative off the fused path
        self.save_for_backward(x, *(() if w is None else (w,)), *(() if slope is None else (y,)))
        return y

    def _forward_arrays(self, x: Any, w: Any, b: Any) -> tuple[Any, Any]:
        mu = x.mean(axis=self.axes, keepdims=True)
        centred = x - mu
        variance = self.xp.square(centred).mean(axis=self.axes, keepdims=True)
        self.mean, self.invstd = mu, 1.0 / self.xp.sqrt(variance + self.eps)
        centred *= self.invstd if w is None else self.invstd * w
        if b is not None:
            centred += b
        return centred, variance

    def _forward_fused(self, x: Any, w: Any, b: Any, kind: str) -> tuple[Any, Any]:
        self.per_sample = kind == "instance"
        forward = _fused_kernels(x).forward
        slope = 1.0 if self.slope is None else self.slope  # max(y, 1·y) = y
        y, mu, variance, invstd, self.affine = forward(x, w, b, self.eps, self.per_sample, slope)
        kept = (x.shape[0] if self.per_sample else 1, x.shape[1]) + (1,) * (x.ndim - 2)
        self.flat_stats = mu, invstd
        self.mean, self.invstd = mu.reshape(kept), invstd.reshape(kept)
        return y, variance.reshape(kept)

    def _forward_kernels(self, x: Any, w: Any, b: Any, kind: str) -> tuple[Any, Any]:
        w, b = (None if p is None else p.reshape(-1) for p in (w, b))
        if kind == "batch":
            mu, variance, invstd = cuda_kernels.batch_norm_stats_gpu(x, self.eps, self.runner)
            y = cuda_kernels.batch_norm_forward_gpu(x, mu, invstd, w, b, self.runner)
            kept = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        else:
            y, mu, invstd = cuda_kernels.instance_norm_forward_gpu(x, w, b, self.eps, self.runner)
            variance = 1.0 / (invstd * invstd) - self.eps
            kept = x.shape[:2] + (1,) * (x.ndim - 2)
        self.kind, self.flat_stats = kind, (mu, invstd)
        self.mean, self.invstd = mu.reshape(kept), invstd.reshape(kept)
        return y, variance.reshape(kept)

    def backward(self, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, *rest = self.saved_tensors
        w = rest[0] if self.has_w else None
        if self.fused and not is_grad_enabled():
            mu, invstd = self.flat_stats
            w_data = None if w is None else w.data
            slope = 1.0 if self.slope is None else self.slope
            backward = _fused_kernels(x.data).backward
            dx, dw, db = backward(
                grad.data, x.data, w_data, mu, invstd, self.per_sample, slope, self.affine
            )
            return self._wrap_grads(dx, dw, db, w)
        if self.slope is not None:  # dL/dy = dL/dz · z'(y), a constant of the output z
            grad = grad * Tensor._wrap(leaky_relu_slopes(rest[-1].data, self.slope))
        if self.runner is not None and grad.dtype == x.dtype and not is_grad_enabled():
            return self._backward_kernels(grad, x, w)
        shapes = (None if w is None else w.shape, self.b_shape)
        if not is_grad_enabled() and all(_constant_over(s, self.axes, x.ndim) for s in shapes):
            return self._backward_arrays(grad.data, x.data, None if w is None else w.data)
        need_x, need_w, need_b = self.needs_input_grad
        axes = self.axes
        if is_grad_enabled():  # create_graph: the statistics as differentiable functions of x
            centred = x - mean(x, axes, keepdims=True)
            invstd = 1.0 / sqrt(mean(centred * centred, axes, keepdims=True) + self.eps)
        else:
            centred, invstd = x - Tensor._wrap(self.mean), Tensor._wrap(self.invstd)
        xhat = centred * invstd
        gx = gw = gb = None
        if need_x:
            g = grad if w is None else grad * w
            gx = invstd * (g - mean(g, axes, True) - xhat * mean(g * xhat, axes, True))
        if need_w:
            gw = sum_to(grad * xhat, w.shape)
        if need_b:
            gb = sum_to(grad, self.b_shape)
        return gx, gw, gb

    def _backward_arrays(self, g: Any, x: Any, w: Any) -> tuple:
        """The same gradients on arrays, first order only, when w is constant over the
        normalised axes (batch and instance norm). With k1 = mean(g), k2 = mean(g · x̂):
            dx = a · (g − k1 − x̂ · k2),  a = w/σ,   dw = Σ g · x̂,   db = Σ g,
        so dx = a·g − (a·k2)·x̂ − a·k1 with per-channel coefficients: x̂ and g·x̂ are the only
        temporaries, and each full-size pass writes into one of them. Against the same
        formula written with tinygan ops (a dozen allocating passes), batch norm forward +
        backward went from 1.00x to 0.38x PyTorch's time on (64, 128, 16, 16) and from 1.22x
        to 0.61x on (64, 64, 32, 32) (benchmarks/NOTES.md)."""
        xp, axes = self.xp, self.axes
        need_x, need_w, need_b = self.needs_input_grad
        count = x.size // self.mean.size
        xhat = xp.subtract(x, self.mean)
        xhat *= self.invstd
        gxhat = xp.multiply(g, xhat)
        sum_gxhat = gxhat.sum(axis=axes, keepdims=True)  # count · k2
        sum_g = g.sum(axis=axes, keepdims=True)  # count · k1
        gx = gw = gb = None
        if need_w:
            gw = sum_to_array(xp, sum_gxhat, w.shape)
        if need_b:
            gb = sum_to_array(xp, sum_g, self.b_shape)
        if need_x:
            a = self.invstd if w is None else self.invstd * w
            gx = xp.multiply(xhat, a * sum_gxhat * (-1.0 / count), out=gxhat)
            gx += xp.multiply(g, a, out=xhat)
            gx -= a * sum_g * (1.0 / count)
        return tuple(None if t is None else Tensor._wrap(t) for t in (gx, gw, gb))

    def _backward_kernels(self, grad: Tensor, x: Tensor, w: Tensor | None) -> tuple:
        """The same gradients from the fused CUDA backward (first order only)."""
        mu, invstd = self.flat_stats
        flat_w = None if w is None else w.data.reshape(-1)
        if self.kind == "batch":
            backward = cuda_kernels.batch_norm_backward_gpu
            dx, dw, db = backward(grad.data, x.data, mu, invstd, flat_w, self.runner)
        else:
            backward = cuda_kernels.instance_norm_backward_gpu
            dx, dw, db = backward(grad.data, x.data, mu, invstd, flat_w, self.runner)
            dw, db = dw.sum(axis=0), db.sum(axis=0)  # per-(n, c) sums -> per channel
        return self._wrap_grads(dx, dw, db, w)

    def _wrap_grads(self, dx: Any, dw: Any, db: Any, w: Tensor | None) -> tuple:
        need_x, need_w, need_b = self.needs_input_grad
        return (
            Tensor._wrap(dx) if need_x else None,
            Tensor._wrap(dw.reshape(w.shape)) if need_w else None,
            Tensor._wrap(db.reshape(self.b_shape)) if need_b else None,
        )


def _fused_kernels(x: Any) -> Any:
    """norm_kernels (imported on first use: it brings in Numba) when it can take x, else None."""
    if type(x) is not np.ndarray:
        return None
    from tinygan.functions import norm_kernels

    return norm_kernels if norm_kernels.usable(x) else None


def _constant_over(shape: tuple | None, axes: tuple[int, ...], ndim: int) -> bool:
    """Whether a parameter of ``shape`` (None: absent), broadcast against an ``ndim``-D input,
    is constant along every axis in ``axes``."""
    if shape is None:
        return True
    lead = ndim - len(shape)
    return all(shape[a - lead] == 1 for a in axes if a >= lead)


def _update_running(running: tuple, batch_mean: Any, batch_var: Any) -> None:
    """r ← (1 − m)·r + m·s per channel (axis 1), averaging the statistics over any other axis."""
    running_mean, running_var, momentum = running
    for stat, r in ((batch_mean, running_mean), (batch_var, running_var)):
        per_channel = stat.reshape(stat.shape[0], stat.shape[1], -1).mean(axis=(0, 2))
        array = r.data if isinstance(r, Tensor) else r
        array *= 1.0 - momentum
        array += momentum * per_channel.astype(array.dtype, copy=False)
        if isinstance(r, Tensor):
            r._version += 1


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _check_channels(op: str, x: Tensor, **params: Any) -> None:
    if x.ndim < 2:
        raise ValueError(f"{op}: input must be (N, C, ...), got shape {x.shape}")
    for name, p in params.items():
        if p is not None and tuple(p.shape) != (x.shape[1],):
            raise ValueError(
                f"{op}: {name} of shape {tuple(p.shape)} does not match {x.shape[1]} channels "
                f"of input {x.shape}"
            )


def _affine(x: Tensor, weight: Tensor | None, bias: Tensor | None) -> tuple:
    shape = _channel_shape(x)
    return (
        None if weight is None else reshape(weight, shape),
        None if bias is None else reshape(bias, shape),
    )


def _activation_slope(op: str, activation: str | None, negative_slope: float) -> float | None:
    """The slope s of z = max(y, s·y) for ``activation``, or None for none."""
    if activation is None:
        return None
    if activation == "relu":
        return 0.0
    if activation != "leaky_relu":
        raise ValueError(
            f"{op}: activation must be None, 'relu' or 'leaky_relu', got {activation!r}"
        )
    if not 0 <= negative_slope <= 1:
        raise ValueError(
            f"{op}: a fused leaky_relu needs 0 <= negative_slope <= 1, got {negative_slope}; "
            "apply leaky_relu after the norm instead"
        )
    return float(negative_slope)


def _activate(y: Tensor, slope: float | None) -> Tensor:
    """The activation of ``_activation_slope`` as its own op (the paths without fusion)."""
    if slope is None:
        return y
    return relu(y) if slope == 0 else leaky_relu(y, slope)


def _with_running_stats(
    x: Tensor,
    running_mean: Any,
    running_var: Any,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
) -> Tensor:
    """y = (x − r_mean) / √(r_var + ε) · w + b with the running statistics as constants."""
    shape = _channel_shape(x)
    rm, rv = (r.data if isinstance(r, Tensor) else r for r in (running_mean, running_var))
    scale = Tensor._wrap((1.0 / (rv.astype(x.dtype) + eps) ** 0.5).reshape(shape))
    w, b = _affine(x, weight, bias)
    if w is not None:
        scale = scale * w
    y = (x - Tensor._wrap(rm.astype(x.dtype).reshape(shape))) * scale
    return y if b is None else y + b


# ---------------------------------------------------------------- batch / instance / layer


def batch_norm(
    x: Tensor,
    running_mean: Tensor | Any | None,
    running_var: Tensor | Any | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    activation: str | None = None,
    negative_slope: float = 0.01,
) -> Tensor:
    """Batch normalisation (Ioffe & Szegedy 2015), as PyTorch's ``F.batch_norm``.

    x: (N, C) or (N, C, H, W) (any (N, C, *)); weight, bias, running stats: (C,).
    training: normalise with the batch mean and biased variance over N (and H, W), and
    update the running statistics in place, r ← (1 − momentum)·r + momentum·s, with the
    unbiased variance. Eval: normalise with the running statistics.
    activation: None, "relu" or "leaky_relu" (with ``negative_slope`` in [0, 1]), applied to
    the result: the same values as ``relu(batch_norm(...))``, in fewer passes on the CPU.
    """
    op = "batch_norm"
    _check_channels(
        op, x, weight=weight, bias=bias, running_mean=running_mean, running_var=running_var
    )
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    slope = _activation_slope(op, activation, negative_slope)
    if not training and running_mean is not None:
        y = _with_running_stats(x, running_mean, running_var, weight, bias, eps)
        return _activate(y, slope)
    axes = (0,) + tuple(range(2, x.ndim))
    if training and x.size // x.shape[1] <= 1:
        raise ValueError(f"{op}: need more than one value per channel to train, got {x.shape}")
    running = (
        (running_mean, running_var, momentum) if training and running_mean is not None else None
    )
    return _Normalize.apply(
        x, *_affine(x, weight, bias), axes=axes, eps=eps, running=running, kind="batch",
        slope=slope,
    )  # fmt: skip


def instance_norm(
    x: Tensor,
    running_mean: Tensor | Any | None = None,
    running_var: Tensor | Any | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
    activation: str | None = None,
    negative_slope: float = 0.01,
) -> Tensor:
    """Instance normalisation (Ulyanov et al. 2016), as PyTorch's ``F.instance_norm``.

    x: (N, C, H, W) (any (N, C, *)); each (sample, channel) plane is normalised by its own
    mean and biased variance; optional per-channel affine weight and bias (C,). Given running
    statistics, they are updated with the batch average of the per-instance statistics
    (unbiased variance); ``use_input_stats=False`` normalises with them instead.
    activation, negative_slope: as for ``batch_norm``.
    """
    op = "instance_norm"
    _check_channels(
        op, x, weight=weight, bias=bias, running_mean=running_mean, running_var=running_var
    )
    if x.ndim < 3:
        raise ValueError(f"{op}: input must be (N, C, H, W) or (N, C, L), got shape {x.shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    slope = _activation_slope(op, activation, negative_slope)
    if not use_input_stats:
        if running_mean is None:
            raise ValueError(f"{op}: use_input_stats=False needs running_mean and running_var")
        y = _with_running_stats(x, running_mean, running_var, weight, bias, eps)
        return _activate(y, slope)
    axes = tuple(range(2, x.ndim))
    if running_mean is not None and math.prod(x.shape[2:]) <= 1:
        raise ValueError(f"{op}: need more than one value per plane for running stats, {x.shape}")
    running = None if running_mean is None else (running_mean, running_var, momentum)
    return _Normalize.apply(
        x, *_affine(x, weight, bias), axes=axes, eps=eps, running=running, kind="instance",
        slope=slope,
    )  # fmt: skip


def layer_norm(
    x: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalisation (Ba et al. 2016), as PyTorch's ``F.layer_norm``.

    x: (..., *S) with S = normalized_shape; each sample is normalised over the trailing axes
    S; weight and bias have shape S.
    """
    op = "layer_norm"
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or tuple(x.shape[x.ndim - len(shape) :]) != shape or x.ndim < len(shape):
        raise ValueError(f"{op}: normalized_shape {shape} does not end input shape {x.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise ValueError(f"{op}: {name} of shape {tuple(p.shape)} is not {shape}")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    return _Normalize.apply(x, weight, bias, axes=axes, eps=eps)


# ---------------------------------------------------------------- style: AdaIN, modulation


def adain(content: Tensor, style: Tensor, eps: float = 1e-5) -> Tensor:
    """Adaptive instance normalisation (Huang & Belongie 2017):
    AdaIN(c, s) = σ(s) · (c − μ(c)) / σ(c) + μ(s), statistics per sample and channel over
    H, W (σ = √(biased variance + ε)). content: (N, C, H, W), style: (N, C, H', W')."""
    op = "adain"
    if content.ndim != 4 or style.ndim != 4 or content.shape[:2] != style.shape[:2]:
        raise ValueError(
            f"{op}: content {content.shape} and style {style.shape} must be (N, C, H, W) "
            "with the same N and C"
        )
    s_mean = mean(style, (2, 3), keepdims=True)
    s_std = sqrt(var(style, (2, 3), keepdims=True) + eps)
    return instance_norm(content, eps=eps) * s_std + s_mean


def style_modulation(x: Tensor, scale: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """StyleGAN's AdaIN (Karras et al. 2019): y = scale · (x − μ(x)) / σ(x) + bias with a
    per-sample style: x: (N, C, H, W), scale and bias: (N, C) (e.g. an affine map of w)."""
    op = "style_modulation"
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be (N, C, H, W), got shape {x.shape}")
    for name, p in (("scale", scale), ("bias", bias)):
        if tuple(p.shape) != x.shape[:2]:
            raise ValueError(f"{op}: {name} of shape {p.shape} must be (N, C) = {x.shape[:2]}")
    shape = x.shape[:2] + (1, 1)
    return instance_norm(x, eps=eps) * reshape(scale, shape) + reshape(bias, shape)


# ---------------------------------------------------------------- PGGAN / StyleGAN helpers


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Pixelwise feature normalisation (Karras et al. 2018, PGGAN):
    y = x / √(mean_c(x²) + ε) over the channel axis; x: (N, C, *)."""
    if x.ndim < 2:
        raise ValueError(f"pixel_norm: input must be (N, C, ...), got shape {x.shape}")
    return x / sqrt(mean(x * x, axis=1, keepdims=True) + eps)


def minibatch_stddev(x: Tensor, group_size: int = 4, num_channels: int = 1) -> Tensor:
    """Minibatch standard deviation (Karras et al. 2018, PGGAN; StyleGAN's variant with
    groups): split the batch into groups of G = min(group_size, N) samples (sample n is in
    group n mod N/G), take the std over each group for every feature, average it over the
    C/F features, H and W of each of F = num_channels channel groups, and append those F
    values as constant feature maps. x: (N, C, H, W) -> (N, C + F, H, W)."""
    op = "minibatch_stddev"
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be (N, C, H, W), got shape {x.shape}")
    N, C, H, W = x.shape
    G, F = min(group_size, N), num_channels
    if G < 1 or N % G:
        raise ValueError(f"{op}: batch {N} must be divisible by the group size {G}")
    if F < 1 or C % F:
        raise ValueError(f"{op}: channels {C} must be divisible by num_channels {F}")
    y = reshape(x, (G, N // G, F, C // F, H, W))
    std = sqrt(var(y, axis=0) + 1e-8)  # (N/G, F, C/F, H, W)
    std = mean(std, axis=(2, 3, 4), keepdims=True)  # (N/G, F, 1, 1, 1)
    std = broadcast_to(reshape(std, (1, N // G, F, 1, 1)), (G, N // G, F, H, W))
    return concat([x, reshape(std, (N, F, H, W))], axis=1)
