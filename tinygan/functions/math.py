"""Elementwise arithmetic, matmul and linear.

Binary ops broadcast like NumPy; their backward sums each gradient back to its input's
shape with ``sum_to`` (the adjoint of broadcasting). Every backward is written with these
same ops, so second derivatives come for free.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.autograd import Function, Tensor, is_grad_enabled
from tinygan.autograd.creation import as_tensor
from tinygan.functions.shape import _broadcast_shape, reshape, sum_to, swapaxes


def _pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Make both operands tensors; a Python scalar takes the other side's dtype and device."""
    if isinstance(a, Tensor):
        return a, as_tensor(b, a)
    return as_tensor(a, b), b


# ---------------------------------------------------------------- + - * /


class Add(Function):
    def forward(self, a: Any, b: Any) -> Any:
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        need_a, need_b = self.needs_input_grad
        return (
            sum_to(grad, self.shapes[0]) if need_a else None,
            sum_to(grad, self.shapes[1]) if need_b else None,
        )


class Sub(Function):
    def forward(self, a: Any, b: Any) -> Any:
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        need_a, need_b = self.needs_input_grad
        return (
            sum_to(grad, self.shapes[0]) if need_a else None,
            sum_to(-grad, self.shapes[1]) if need_b else None,
        )


class Mul(Function):
    def forward(self, a: Any, b: Any) -> Any:
        self.save_for_backward(a, b)
        return a * b

    def backward(self, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, b = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        return (
            sum_to(grad * b, a.shape) if need_a else None,
            sum_to(grad * a, b.shape) if need_b else None,
        )


class Div(Function):
    def forward(self, a: Any, b: Any) -> Any:
        self.save_for_backward(a, b)
        return a / b

    def backward(self, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, b = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        grad_a = grad / b
        return (
            sum_to(grad_a, a.shape) if need_a else None,
            sum_to(-grad_a * a / b, b.shape) if need_b else None,
        )


def _binary(op: type[Function], name: str, a: Any, b: Any) -> Tensor:
    a, b = _pair(a, b)
    if a.shape != b.shape:
        _broadcast_shape(name, a.shape, b.shape)
    return op.apply(a, b)


def add(a: Tensor | float, b: Tensor | float) -> Tensor:
    return _binary(Add, "add", a, b)


def sub(a: Tensor | float, b: Tensor | float) -> Tensor:
    return _binary(Sub, "sub", a, b)


def mul(a: Tensor | float, b: Tensor | float) -> Tensor:
    return _binary(Mul, "mul", a, b)


def div(a: Tensor | float, b: Tensor | float) -> Tensor:
    return _binary(Div, "div", a, b)


class Neg(Function):
    def forward(self, x: Any) -> Any:
        return -x

    def backward(self, grad: Tensor) -> Tensor:
        return -grad


def neg(x: Tensor) -> Tensor:
    return Neg.apply(x)


# ---------------------------------------------------------------- powers, exp, log


class PowScalar(Function):
    """x ** p for a constant p; d/dx = p·x^(p−1)."""

    def forward(self, x: Any, p: float) -> Any:
        self.p = p
        self.save_for_backward(x)
        return x**p

    def backward(self, grad: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        if self.p == 2:
            return grad * (2 * x)
        return grad * (self.p * x ** (self.p - 1))


class Pow(Function):
    """a ** b for tensors; d/da = b·a^(b−1), d/db = a^b·log a."""

    def forward(self, a: Any, b: Any) -> Any:
        out = a**b
        self.save_for_backward(a, b, out)
        return out

    def backward(self, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, b, out = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        return (
            sum_to(grad * b * a ** (b - 1), a.shape) if need_a else None,
            sum_to(grad * out * log(a), b.shape) if need_b else None,
        )


def pow(x: Tensor | float, p: Tensor | float) -> Tensor:
    """x ** p; p a number or a tensor (then x must be positive where p is not an integer)."""
    if isinstance(x, Tensor) and not isinstance(p, Tensor):
        return PowScalar.apply(x, p=float(p) if not float(p).is_integer() else int(p))
    return _binary(Pow, "pow", x, p)


class Exp(Function):
    def forward(self, x: Any) -> Any:
        out = self.xp.exp(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad: Tensor) -> Tensor:
        (out,) = self.saved_tensors
        return grad * out


class Log(Function):
    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return self.xp.log(x)

    def backward(self, grad: Tensor) -> Tensor:
        (x,) = self.saved_tensors
        return grad / x


class Sqrt(Function):
    def forward(self, x: Any) -> Any:
        out = self.xp.sqrt(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad: Tensor) -> Tensor:
        (out,) = self.saved_tensors
        return grad / (2 * out)


class Abs(Function):
    def forward(self, x: Any) -> Any:
        self.save_for_backward(self.xp.sign(x))
        return self.xp.abs(x)

    def backward(self, grad: Tensor) -> Tensor:
        (sign,) = self.saved_tensors
        return grad * sign


def exp(x: Tensor) -> Tensor:
    return Exp.apply(x)


def log(x: Tensor) -> Tensor:
    """Natural logarithm (−inf at 0, nan below, as NumPy)."""
    return Log.apply(x)


def sqrt(x: Tensor) -> Tensor:
    return Sqrt.apply(x)


def abs(x: Tensor) -> Tensor:
    return Abs.apply(x)


# ---------------------------------------------------------------- selection


class Where(Function):
    """where(cond, a, b); the condition is a constant mask."""

    def forward(self, a: Any, b: Any, cond: Any) -> Any:
        self.cond, self.shapes = cond, (a.shape, b.shape)
        return self.xp.where(cond, a, b)

    def backward(self, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        need_a, need_b = self.needs_input_grad
        zero = as_tensor(0, grad)
        return (
            sum_to(where(self.cond, grad, zero), self.shapes[0]) if need_a else None,
            sum_to(where(self.cond, zero, grad), self.shapes[1]) if need_b else None,
        )


def where(cond: Any, a: Tensor | float, b: Tensor | float) -> Tensor:
    """Elements of ``a`` where ``cond`` holds, else of ``b``; ``cond`` gets no gradient."""
    a, b = _pair(a, b)
    cond = cond.data if isinstance(cond, Tensor) else cond
    _broadcast_shape("where", np.shape(cond), a.shape, b.shape)
    return Where.apply(a, b, cond=cond)


def maximum(a: Tensor | float, b: Tensor | float) -> Tensor:
    """Elementwise max; at ties the gradient goes to ``a``."""
    a, b = _pair(a, b)
    return where(a.data >= b.data, a, b)


def minimum(a: Tensor | float, b: Tensor | float) -> Tensor:
    """Elementwise min; at ties the gradient goes to ``a``."""
    a, b = _pair(a, b)
    return where(a.data <= b.data, a, b)


class Clip(Function):
    def forward(self, x: Any, low: float | None, high: float | None) -> Any:
        out = self.xp.clip(x, low, high)
        self.save_for_backward((out == x).astype(x.dtype))
        return out

    def backward(self, grad: Tensor) -> Tensor:
        (inside,) = self.saved_tensors
        return grad * inside


def clip(x: Tensor, low: float | None = None, high: float | None = None) -> Tensor:
    """Limit values to [low, high]; the gradient is zero where a bound is active."""
    if low is None and high is None:
        raise ValueError("clip: give low, high or both")
    return Clip.apply(x, low=low, high=high)


# ---------------------------------------------------------------- matmul and linear


class MatMul(Function):
    """a @ b with NumPy's rules (1-D operands, broadcast batch axes)."""

    def forward(self, a: Any, b: Any) -> Any:
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, b = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        a2 = reshape(a, (1, a.shape[0])) if a.ndim == 1 else a  # vectors as 1×k / k×1
        b2 = reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g2 = reshape(grad, batch + (a2.shape[-2], b2.shape[-1]))
        grad_a = grad_b = None
        if need_a:
            grad_a = reshape(sum_to(matmul(g2, swapaxes(b2, -1, -2)), a2.shape), a.shape)
        if need_b:
            grad_b = reshape(sum_to(matmul(swapaxes(a2, -1, -2), g2), b2.shape), b.shape)
        return grad_a, grad_b


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with NumPy's semantics (batched, 1-D cases)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: operands must have at least one dimension, got {a.shape} @ {b.shape}"
        )
    if a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    if a.ndim > 2 and b.ndim > 2:
        _broadcast_shape("matmul", a.shape[:-2], b.shape[:-2])
    return MatMul.apply(a, b)


class Linear(Function):
    """y = x Wᵀ + b for x: (..., in), W: (out, in), b: (out,) — one GEMM."""

    def forward(self, x: Any, weight: Any, bias: Any) -> Any:
        self.save_for_backward(x, weight)
        out = x @ weight.T
        if bias is not None:
            out += bias
        return out

    def backward(self, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = self.saved_tensors
        need_x, need_w, need_b = self.needs_input_grad
        if not is_grad_enabled():
            return self._first_order(grad.data, x.data, weight.data)
        grad_x = matmul(grad, weight) if need_x else None
        grad_w = grad_b = None
        if need_w or need_b:
            g2 = reshape(grad, (-1, grad.shape[-1]))
            if need_w:
                grad_w = matmul(swapaxes(g2, 0, 1), reshape(x, (-1, x.shape[-1])))
            if need_b:
                grad_b = g2.sum(axis=0)
        return grad_x, grad_w, grad_b

    def _first_order(self, g: Any, x: Any, weight: Any) -> tuple[Tensor | None, ...]:
        """The same three results on arrays, with no graph recorded (no create_graph to
        serve): one Function call per layer instead of seven. Per-op overhead is most of
        a small MLP's step (benchmarks/NOTES.md, item 22)."""
        need_x, need_w, need_b = self.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1])
        grad_x = Tensor._wrap(g @ weight) if need_x else None
        grad_w = Tensor._wrap(g2.T @ x.reshape(-1, x.shape[-1])) if need_w else None
        grad_b = Tensor._wrap(g2.sum(axis=0)) if need_b else None
        return grad_x, grad_w, grad_b


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Affine map y = x Wᵀ + b (PyTorch's layout: W is (out_features, in_features))."""
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input {x.shape} does not match weight {weight.shape} (out, in)")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias {bias.shape} does not match weight {weight.shape}")
    return Linear.apply(x, weight, bias)
