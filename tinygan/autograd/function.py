"""Function: one node of the graph, an op's forward and backward side by side.

``forward`` works on raw arrays (NumPy or CuPy) and returns one array. ``backward`` receives
the gradient of the loss with respect to that output as a Tensor and returns one gradient
per input, computed with tinygan's own differentiable ops. That single rule makes
higher-order gradients free: when ``create_graph=True`` the backward pass is recorded like
any other computation, so it can be differentiated again (WGAN-GP, R1, DRAGAN).

What a node keeps (no reference cycles, so memory is freed as soon as a graph is dropped):

- ``parents``: for each input, the node that made it, the input itself if it is a leaf that
  requires grad, or None. These are the graph's edges.
- ``_saved``: the arrays ``save_for_backward`` was given, resolved to "input i", "my output"
  or "a constant". ``saved_tensors`` turns them back into Tensors wired into the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan import backend
from tinygan.autograd.grad_mode import _GradMode
from tinygan.autograd.tensor import Tensor

_INPUT, _OUTPUT, _CONSTANT = 0, 1, 2


class Function:
    """Base class of every differentiable op. Subclasses define ``forward`` and ``backward``."""

    xp = np  # the inputs' array module; set per call when CuPy is in use
    hooks: list | None = None
    parents: tuple = ()

    def forward(self, *arrays: Any, **params: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad: Tensor) -> Tensor | None | tuple[Tensor | None, ...]:
        raise NotImplementedError

    # ------------------------------------------------------------------ running an op
    @classmethod
    def apply(cls, *inputs: Tensor | None, **params: Any) -> Tensor:
        """Run ``forward`` on the inputs' arrays; when recording, link the result into the graph."""
        fn = cls.__new__(cls)
        arrays = [None if t is None else t.data for t in inputs]
        if backend.cupy_loaded():
            fn.xp = _common_array_module(cls.__name__, arrays)
        record = _GradMode.enabled and any(t is not None and t.requires_grad for t in inputs)
        if record:
            fn.parents = tuple(
                None if t is None or not t.requires_grad else (t if t._node is None else t._node)
                for t in inputs
            )
            fn.needs_input_grad = tuple(p is not None for p in fn.parents)
        else:
            fn.needs_input_grad = (False,) * len(inputs)
        fn._saved = []
        out = fn.forward(*arrays, **params)
        if not record:
            return Tensor._wrap(out)
        for array in arrays:
            if out is array:  # an identity op: give the output its own array object
                out = out.view()
                break
        fn._saved = [fn._resolve(array, inputs, arrays, out) for array in fn._saved]
        fn.out_shape, fn.out_dtype = out.shape, out.dtype
        return Tensor._wrap(out, fn)

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays for ``backward``: inputs, the output, or any other array."""
        self._saved.extend(arrays)

    @staticmethod
    def _resolve(array: Any, inputs: tuple, arrays: list, out: Any) -> tuple:
        for tensor, input_array in zip(inputs, arrays):
            if array is input_array and array is not None:
                return (_INPUT, tensor, array, tensor._version)
        if array is out:
            return (_OUTPUT, None, array, 0)
        return (_CONSTANT, None, array, 0)

    @property
    def saved_tensors(self) -> tuple[Tensor, ...]:
        """The saved arrays as Tensors: inputs and output wired to the graph, the rest constant."""
        if self._saved is None:
            raise RuntimeError(
                f"{type(self).__name__}: trying to backward through the graph a second time; its "
                "saved arrays were freed by the first backward. Pass retain_graph=True the first "
                "time."
            )
        return tuple(self._unpack(spec) for spec in self._saved)

    def _unpack(self, spec: tuple) -> Tensor:
        kind, tensor, array, version = spec
        if kind == _INPUT:
            if tensor._version != version or tensor.data is not array:
                raise RuntimeError(
                    f"{type(self).__name__}: an input of shape {tensor.shape} needed for the "
                    "gradient was modified in place after the forward pass (version "
                    f"{version} -> {tensor._version}); compute the forward again after the update"
                )
            return tensor
        if kind == _OUTPUT:
            return Tensor._wrap(array, self)
        return Tensor._wrap(array)

    def release(self) -> None:
        """Free the saved arrays (done by backward unless retain_graph)."""
        self._saved = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def _common_array_module(op: str, arrays: list) -> Any:
    """The one array module all inputs share; mixing devices is an error."""
    devices = {backend.device_of(a) for a in arrays if a is not None}
    if len(devices) > 1:
        shapes = [(backend.device_of(a), tuple(a.shape)) for a in arrays if a is not None]
        raise ValueError(f"{op}: inputs are on different devices: {shapes}")
    first = next((a for a in arrays if a is not None), None)
    return np if first is None else backend.get_array_module(first)


class ToDevice(Function):
    """Move to another device; the gradient moves back."""

    def forward(self, x: Any, device: str) -> Any:
        self.source = backend.device_of(x)
        return backend.to_device(x, device)

    def backward(self, grad: Tensor) -> Tensor:
        return grad.to(self.source)


class Cast(Function):
    """Change the dtype; the gradient is cast back to the input's dtype."""

    def forward(self, x: Any, dtype: Any) -> Any:
        self.source = x.dtype
        return x.astype(dtype)

    def backward(self, grad: Tensor) -> Tensor:
        return grad.astype(self.source)
