"""Reductions: sum, mean, var, std, max, min (axes, keepdims) and argmax/argmin.

The backward of a reduction spreads the gradient back over the reduced axes:
``broadcast_to`` for sum and mean, and onto the arg-max positions for max and min.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygan.autograd import Function, Tensor
from tinygan.functions.math import sqrt
from tinygan.functions.shape import broadcast_to, reshape

Axis = int | Sequence[int] | None


def normalise_axes(axis: Axis, ndim: int, op: str) -> tuple[int, ...]:
    """Axis arguments as a sorted tuple of non-negative ints (None: all axes)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for {ndim} dimensions")
    return tuple(sorted({int(a) % ndim for a in axes}))


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with the reduced axes set to 1 (the keepdims shape)."""
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    def forward(self, x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
        self.in_shape, self.axes = x.shape, axes
        return self.xp.asarray(x.sum(axis=axes, keepdims=keepdims))

    def backward(self, grad: Tensor) -> Tensor:
        grad = reshape(grad, kept_shape(self.in_shape, self.axes))
        return broadcast_to(grad, self.in_shape)


class Mean(Function):
    def forward(self, x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
        self.in_shape, self.axes = x.shape, axes
        self.count = int(np.prod([x.shape[a] for a in axes]))
        return self.xp.asarray(x.mean(axis=axes, keepdims=keepdims))

    def backward(self, grad: Tensor) -> Tensor:
        grad = reshape(grad, kept_shape(self.in_shape, self.axes))
        return broadcast_to(grad * (1.0 / self.count), self.in_shape)


def sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return Sum.apply(x, axes=normalise_axes(axis, x.ndim, "sum"), keepdims=keepdims)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return Mean.apply(x, axes=normalise_axes(axis, x.ndim, "mean"), keepdims=keepdims)


def var(x: Tensor, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance Σ(x − mean)² / (n − ddof); NumPy's default ddof = 0 (biased)."""
    axes = normalise_axes(axis, x.ndim, "var")
    count = int(np.prod([x.shape[a] for a in axes]))
    if count - ddof <= 0:
        raise ValueError(f"var: {count} elements along axes {axes} of {x.shape} with ddof={ddof}")
    centred = x - mean(x, axes, keepdims=True)
    return sum(centred * centred, axes, keepdims) * (1.0 / (count - ddof))


def std(x: Tensor, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    return sqrt(var(x, axis, keepdims, ddof))


class MaxMin(Function):
    """max or min over axes; the gradient is shared equally among tied extreme elements."""

    def forward(self, x: Any, axes: tuple[int, ...], keepdims: bool, largest: bool) -> Any:
        self.in_shape, self.axes = x.shape, axes
        extreme = (x.max if largest else x.min)(axis=axes, keepdims=True)
        hits = (x == extreme).astype(x.dtype)
        self.save_for_backward(hits / hits.sum(axis=axes, keepdims=True))
        return (
            extreme
            if keepdims
            else extreme.reshape([s for i, s in enumerate(x.shape) if i not in axes])
        )

    def backward(self, grad: Tensor) -> Tensor:
        (share,) = self.saved_tensors
        grad = reshape(grad, kept_shape(self.in_shape, self.axes))
        return broadcast_to(grad, self.in_shape) * share


def max(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    if x.size == 0:
        raise ValueError(f"max: empty tensor of shape {x.shape}")
    return MaxMin.apply(
        x, axes=normalise_axes(axis, x.ndim, "max"), keepdims=keepdims, largest=True
    )


def min(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    if x.size == 0:
        raise ValueError(f"min: empty tensor of shape {x.shape}")
    return MaxMin.apply(
        x, axes=normalise_axes(axis, x.ndim, "min"), keepdims=keepdims, largest=False
    )


def argmax(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the largest element (flattened when ``axis`` is None); not differentiable."""
    return Tensor._wrap(x.data.argmax(axis=axis, keepdims=keepdims))


def argmin(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    return Tensor._wrap(x.data.argmin(axis=axis, keepdims=keepdims))
