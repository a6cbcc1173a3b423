"""Reverse-mode automatic differentiation: Tensor, Function, the graph walk, grad modes."""

from tinygan.autograd.engine import backward, grad
from tinygan.autograd.function import Function
from tinygan.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from tinygan.autograd.tensor import RemovableHandle, Tensor

__all__ = [
    "Function",
    "RemovableHandle",
    "Tensor",
    "backward",
    "enable_grad",
    "grad",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]
