"""Differentiable ops, grouped by family (math, reduce, shape, activation, loss, conv, pool,
norm, special). Importing this package also installs the operators and methods of
:class:`~tinygan.Tensor` (``a + b``, ``x.sum()``, ``x.reshape(...)``...), which are thin
calls to the functions here.
"""

from __future__ import annotations

from typing import Any

from tinygan.autograd import Tensor
from tinygan.functions.activation import (
    elu,
    leaky_relu,
    log_softmax,
    prelu,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)
from tinygan.functions.loss import (
    bce_with_logits,
    binary_cross_entropy,
    cross_entropy,
    hinge_d,
    hinge_g,
    l1,
    mse,
    nll,
)
from tinygan.functions.math import (
    abs,
    add,
    clip,
    div,
    exp,
    linear,
    log,
    matmul,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    sqrt,
    sub,
    where,
)
from tinygan.functions.reduce import argmax, argmin, max, mean, min, std, sum, var
from tinygan.functions.shape import (
    broadcast_to,
    chunk,
    concat,
    expand,
    flatten,
    flip,
    getitem,
    index_add,
    pad,
    reshape,
    split,
    squeeze,
    stack,
    sum_to,
    swapaxes,
    transpose,
    unsqueeze,
)


def _compare(op: str) -> Any:
    def compare(self: Tensor, other: Any) -> Tensor:
        value = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(getattr(self.data, op)(value))

    return compare


def _install_tensor_methods() -> None:
    """Operators and methods of Tensor, each a call to the function of the same meaning."""
    methods = {
        "__add__": add,
        "__radd__": lambda a, b: add(b, a),
        "__sub__": sub,
        "__rsub__": lambda a, b: sub(b, a),
        "__mul__": mul,
        "__rmul__": lambda a, b: mul(b, a),
        "__truediv__": div,
        "__rtruediv__": lambda a, b: div(b, a),
        "__pow__": pow,
        "__rpow__": lambda a, b: pow(b, a),
        "__matmul__": matmul,
        "__rmatmul__": lambda a, b: matmul(b, a),
        "__neg__": neg,
        "__abs__": abs,
        "__getitem__": getitem,
        "exp": exp,
        "log": log,
        "sqrt": sqrt,
        "abs": abs,
        "clip": clip,
        "sum": sum,
        "mean": mean,
        "var": var,
        "std": std,
        "max": max,
        "min": min,
        "argmax": argmax,
        "argmin": argmin,
        "reshape": reshape,
        "view": reshape,
        "transpose": transpose,
        "permute": transpose,
        "swapaxes": swapaxes,
        "squeeze": squeeze,
        "unsqueeze": unsqueeze,
        "flatten": flatten,
        "expand": expand,
        "broadcast_to": broadcast_to,
        "flip": flip,
        "relu": relu,
        "sigmoid": sigmoid,
        "tanh": tanh,
        "softmax": softmax,
        "log_softmax": log_softmax,
        "matmul": matmul,
        "T": property(lambda t: transpose(t)),
    }
    for op in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
        methods[op] = _compare(op)
    for name, method in methods.items():
        setattr(Tensor, name, method)
    Tensor.__hash__ = object.__hash__


_install_tensor_methods()

__all__ = [
    "abs", "add", "argmax", "argmin", "bce_with_logits", "binary_cross_entropy",
    "broadcast_to", "chunk", "clip", "concat", "cross_entropy", "div", "elu", "exp",
    "expand", "flatten", "flip", "getitem", "hinge_d", "hinge_g", "index_add", "l1",
    "leaky_relu", "linear", "log", "log_softmax", "matmul", "max", "maximum", "mean", "min",
    "minimum", "mse", "mul", "neg", "nll", "pad", "pow", "prelu", "relu", "reshape",
    "sigmoid", "softmax", "softplus", "split", "sqrt", "squeeze", "stack", "std", "sub",
    "sum", "sum_to", "swapaxes", "tanh", "transpose", "unsqueeze", "var", "where",
]  # fmt: skip

# Convolution, pooling and resampling, normalisation, gradient-bending ops.
from tinygan.functions.conv import col2im, conv2d, conv_transpose2d, im2col  # noqa: E402
from tinygan.functions.norm import (  # noqa: E402
    adain,
    batch_norm,
    instance_norm,
    layer_norm,
    minibatch_stddev,
    pixel_norm,
    style_modulation,
)
from tinygan.functions.pool import (  # noqa: E402
    adaptive_avg_pool2d,
    avg_pool2d,
    interpolate,
    max_pool2d,
    pixel_shuffle,
    pixel_unshuffle,
    upsample,
)
from tinygan.functions.special import (  # noqa: E402
    dropout,
    embedding,
    gradient_reversal,
    stop_gradient,
    straight_through,
)

__all__ += [
    "adain", "adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "col2im", "conv2d",
    "conv_transpose2d", "dropout", "embedding", "gradient_reversal", "im2col", "instance_norm",
    "interpolate", "layer_norm", "max_pool2d", "minibatch_stddev", "pixel_norm", "pixel_shuffle",
    "pixel_unshuffle", "stop_gradient", "straight_through", "style_modulation", "upsample",
]  # fmt: skip
