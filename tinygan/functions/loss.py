"""Losses: the GAN objectives and the usual regression/classification losses.

All are stable at extreme inputs: ``bce_with_logits`` never exponentiates a large positive
number, ``binary_cross_entropy`` clamps its logarithms at −100 (as PyTorch does), and
``cross_entropy`` works in log space. ``reduction`` is "mean" (default), "sum" or "none".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.autograd import Function, Tensor
from tinygan.autograd.creation import as_tensor
from tinygan.backend import get_array_module
from tinygan.functions.activation import log_softmax, relu, sigmoid
from tinygan.functions.math import abs, where
from tinygan.functions.shape import getitem, reshape, transpose

REDUCTIONS = ("mean", "sum", "none")


def reduce_loss(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _target_like(op: str, input: Tensor, target: Tensor | float) -> Tensor:
    """The target as a tensor of the input's shape; a number fills the whole shape."""
    if not isinstance(target, Tensor) and np.ndim(target) == 0:
        xp = get_array_module(input.data)
        return Tensor._wrap(xp.full(input.shape, target, dtype=input.dtype))
    target = as_tensor(target, input)
    if input.shape != target.shape:
        raise ValueError(
            f"{op}: input {input.shape} and target {target.shape} must have the same shape"
        )
    return target


class BCEWithLogits(Function):
    """ℓ = max(x, 0) − x·t + log(1 + e^(−|x|)); ∂ℓ/∂x = σ(x) − t, ∂ℓ/∂t = −x."""

    def forward(self, x: Any, t: Any) -> Any:
        self.save_for_backward(x, t)
        xp = self.xp
        return xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, t = self.saved_tensors
        need_x, need_t = self.needs_input_grad
        return (
            grad * (sigmoid(x) - t) if need_x else None,
            -grad * x if need_t else None,
        )


def bce_with_logits(logits: Tensor, target: Tensor | float, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy on logits: −[t log σ(x) + (1 − t) log(1 − σ(x))], computed stably.

    The GAN discriminator loss of Goodfellow et al. (2014) is
    ``bce_with_logits(D(x), 1) + bce_with_logits(D(G(z)), 0)``.
    """
    target = _target_like("bce_with_logits", logits, target)
    return reduce_loss(BCEWithLogits.apply(logits, target), reduction, "bce_with_logits")


class BinaryCrossEntropy(Function):
    """ℓ = −[t·max(log p, −100) + (1 − t)·max(log(1 − p), −100)]."""

    def forward(self, p: Any, t: Any) -> Any:
        self.save_for_backward(p, t)
        xp = self.xp
        with np.errstate(divide="ignore", invalid="ignore"):
            log_p = xp.maximum(xp.log(p), -100)
            log_q = xp.maximum(xp.log1p(-p), -100)
        return -(t * log_p + (1 - t) * log_q)

    def backward(self, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        p, t = self.saved_tensors
        need_p, need_t = self.needs_input_grad
        grad_p = grad_t = None
        if need_p:  # (p − t) / (p(1 − p)), with the denominator kept away from 0 (eps 1e-12)
            denom = p * (1 - p)
            safe = where(denom.data > 1e-12, denom, as_tensor(1e-12, denom))
            grad_p = grad * (p - t) / safe
        if need_t:
            xp = self.xp
            with np.errstate(divide="ignore", invalid="ignore"):
                logit = xp.maximum(xp.log(p.data), -100) - xp.maximum(xp.log1p(-p.data), -100)
            grad_t = -grad * Tensor._wrap(logit)
        return grad_p, grad_t


def binary_cross_entropy(p: Tensor, target: Tensor | float, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy on probabilities p ∈ [0, 1], logarithms clamped at −100."""
    target = _target_like("binary_cross_entropy", p, target)
    return reduce_loss(BinaryCrossEntropy.apply(p, target), reduction, "binary_cross_entropy")


def mse(input: Tensor, target: Tensor | float, reduction: str = "mean") -> Tensor:
    """Mean squared error (x − t)² — LSGAN's loss (Mao et al. 2017)."""
    target = as_tensor(target, input)
    diff = input - target
    return reduce_loss(diff * diff, reduction, "mse")


def l1(input: Tensor, target: Tensor | float, reduction: str = "mean") -> Tensor:
    """Mean absolute error |x − t| — pix2pix's and CycleGAN's reconstruction loss."""
    return reduce_loss(abs(input - as_tensor(target, input)), reduction, "l1")


def _class_last(logp: Tensor) -> Tensor:
    """(N, C, d1, ...) → (N·d1·..., C) so per-position classes become rows."""
    if logp.ndim == 2:
        return logp
    channels_last = transpose(logp, 0, *range(2, logp.ndim), 1)
    return reshape(channels_last, (-1, logp.shape[1]))


def nll(log_probs: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood −log p[target] for log-probabilities (N, C) or (N, C, d1, ...)."""
    labels = target.data if isinstance(target, Tensor) else target
    if getattr(labels, "dtype", None) is None or labels.dtype.kind not in "iu":
        raise TypeError(
            "nll: target must hold integer class labels, got "
            f"{getattr(labels, 'dtype', type(labels))}"
        )
    expected = (log_probs.shape[0],) + log_probs.shape[2:]
    if log_probs.ndim < 2 or tuple(labels.shape) != expected:
        raise ValueError(
            f"nll: log-probabilities {log_probs.shape} need target {expected}, got {labels.shape}"
        )
    classes = log_probs.shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"nll: labels must lie in [0, {classes}), got range [{labels.min()}, {labels.max()}]"
        )
    rows = _class_last(log_probs)
    flat = labels.reshape(-1)
    xp = get_array_module(flat)
    picked = getitem(rows, (xp.arange(flat.shape[0]), flat))
    loss = -picked.reshape(labels.shape)
    return reduce_loss(loss, reduction, "nll")


def cross_entropy(
    logits: Tensor, target: Tensor, reduction: str = "mean", label_smoothing: float = 0.0
) -> Tensor:
    """Softmax cross-entropy with integer labels; optional label smoothing (Szegedy et al. 2016):
    the target puts 1 − ε on the label and ε spread evenly over all C classes."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if logits.ndim < 2:
        raise ValueError(f"cross_entropy: logits must be (N, C) or (N, C, ...), got {logits.shape}")
    logp = log_softmax(logits, axis=1)
    loss = nll(logp, target, reduction="none")
    if label_smoothing > 0:
        uniform = -logp.mean(axis=1)
        loss = loss * (1 - label_smoothing) + uniform * label_smoothing
    return reduce_loss(loss, reduction, "cross_entropy")


def hinge_d(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator hinge loss E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017;
    Miyato et al. 2018)."""
    return relu(1 - real_logits).mean() + relu(1 + fake_logits).mean()


def hinge_g(fake_logits: Tensor) -> Tensor:
    """Generator hinge loss −E[D(G(z))]."""
    return -fake_logits.mean()
