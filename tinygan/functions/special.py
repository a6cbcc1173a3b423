"""Ops that bend the gradient: gradient reversal, stop-gradient, straight-through; plus
dropout and embedding lookup."""

from __future__ import annotations

from typing import Any

from tinygan.autograd import Function, Tensor
from tinygan.backend import get_array_module
from tinygan.functions.shape import getitem
from tinygan.random import Generator, default_generator


class _GradientReversal(Function):
    """y = x; dL/dx = −λ · dL/dy."""

    def forward(self, x: Any, lam: float) -> Any:
        self.lam = lam
        return x

    def backward(self, grad: Tensor) -> Tensor:
        return grad * (-self.lam)


def gradient_reversal(x: Tensor, lam: float = 1.0) -> Tensor:
    """Gradient reversal layer (Ganin & Lempitsky 2015, domain-adversarial training): the
    identity forward, the gradient multiplied by −lam backward. x: any shape."""
    return _GradientReversal.apply(x, lam=float(lam))


def stop_gradient(x: Tensor) -> Tensor:
    """The same values, cut from the graph: no gradient flows through (sg[x] in VQ-VAE)."""
    return x.detach()


class _StraightThrough(Function):
    """y = (the value of) b; dL/da = dL/dy, nothing to b."""

    def forward(self, a: Any, b: Any) -> Any:
        return b

    def backward(self, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def straight_through(x: Tensor, y: Tensor) -> Tensor:
    """Straight-through estimator (Bengio et al. 2013; VQ-VAE, van den Oord et al. 2017): the
    forward value is ``y`` (e.g. a quantised x), the gradient goes to ``x`` unchanged, as in
    x + sg[y − x] but exact. x, y: the same shape."""
    if x.shape != y.shape:
        raise ValueError(f"straight_through: shapes {x.shape} and {y.shape} differ")
    return _StraightThrough.apply(x, y)


def dropout(
    x: Tensor, p: float = 0.5, training: bool = True, generator: Generator | None = None
) -> Tensor:
    """Inverted dropout (Srivastava et al. 2014): in training, zero each element with
    probability p and scale the rest by 1/(1 − p); the identity in eval. ``generator``
    (default: tinygan's default generator) makes the mask reproducible. x: any shape."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    gen = default_generator if generator is None else generator
    keep = gen.uniform(x.shape, dtype=x.dtype, device=x.device) >= p
    return x * Tensor._wrap(keep.astype(x.dtype) * (1.0 / (1.0 - p)))


def embedding(indices: Tensor | Any, weight: Tensor) -> Tensor:
    """Rows of a lookup table: y[..., :] = weight[indices[...], :] (gradients scatter-add into
    the rows used). indices: any integer shape I, weight: (num_embeddings, dim) -> (*I, dim)."""
    idx = indices.data if isinstance(indices, Tensor) else indices
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, dim), got {weight.shape}")
    idx = get_array_module(weight.data).asarray(idx)
    if idx.dtype.kind not in "iu":
        raise ValueError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= weight.shape[0]):
        raise ValueError(
            f"embedding: indices in [{int(idx.min())}, {int(idx.max())}] are out of range for "
            f"{weight.shape[0]} embeddings"
        )
    return getitem(weight, idx)
