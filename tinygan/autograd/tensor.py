"""The Tensor: an ndarray (NumPy or CuPy) plus what reverse-mode autodiff needs.

A tensor made by an op remembers the op (``_node``, a :class:`~tinygan.autograd.Function`);
walking those nodes from a loss back to the leaves is backpropagation (see ``engine.py``).
Arithmetic operators and methods such as ``x.sum()`` are installed on this class by
``tinygan.functions``, where the ops live.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygan.backend import device_of, get_array_module, to_device


def _check_float(dtype: np.dtype, what: str) -> None:
    if dtype.kind != "f":
        raise TypeError(f"{what}: only floating-point tensors can require gradients, got {dtype}")


class RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    Attributes:
        data: the numpy or cupy ndarray holding the values.
        grad: the accumulated gradient (a Tensor) after ``backward``, or None.
        requires_grad: whether gradients flow to this tensor.
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "_version", "_hooks", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if not hasattr(data, "__array_interface__") and not hasattr(
            data, "__cuda_array_interface__"
        ):
            data = np.asarray(data)
        self.data = data
        self.grad: Tensor | None = None
        self._node = None
        self._version = 0
        self._hooks: list | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, data: Any, node: Any = None) -> Tensor:
        """Fast constructor used by ops: no checks, no copies."""
        t = object.__new__(Tensor)
        t.data = data
        t.grad = None
        t._node = node
        t._version = 0
        t._hooks = None
        t.requires_grad = node is not None
        return t

    # ----------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        return device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> Any:
        """The op that made this tensor (None for a leaf)."""
        return self._node

    def __len__(self) -> int:
        return len(self.data)

    # ----------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (a copy from the GPU; shared memory on the CPU)."""
        return to_device(self.data, "cpu")

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(
                f"item(): tensor of shape {self.shape} has {self.size} elements, not 1"
            )
        return self.data.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def to(self, device: str) -> Tensor:
        """This tensor on ``device`` ("cpu" or "cuda"); differentiable."""
        if device == self.device:
            return self
        from tinygan.autograd.function import ToDevice

        return ToDevice.apply(self, device=device)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def astype(self, dtype: Any) -> Tensor:
        """This tensor cast to ``dtype``; differentiable between float types."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        from tinygan.autograd.function import Cast

        return Cast.apply(self, dtype=dtype)

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's memory, cut from the graph."""
        return Tensor._wrap(self.data.view())

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad:
            _check_float(self.data.dtype, "requires_grad")
        elif self._node is not None:
            raise RuntimeError(
                "requires_grad_(False): only leaves can stop requiring grad; use detach()"
            )
        self.requires_grad = bool(requires_grad)
        return self

    # ----------------------------------------------------------------- in place
    def data_update_(self, value: Any) -> Tensor:
        """Write into this tensor's array in place and bump its version.

        ``value`` is an array (copied in) or a callable that mutates the array it is given.
        Autograd raises if a tensor saved for backward was modified this way afterwards.
        """
        if callable(value):
            value(self.data)
        else:
            xp = get_array_module(self.data)
            if get_array_module(value) is not xp and not np.isscalar(value):
                raise ValueError(
                    f"data_update_: cannot copy a {device_of(value)} array into a "
                    f"{self.device} tensor"
                )
            xp.copyto(self.data, value, casting="same_kind")
        self._version += 1
        return self

    def copy_(self, src: Tensor | Any) -> Tensor:
        """Copy ``src``'s values into this tensor (shapes must broadcast)."""
        value = src.data if isinstance(src, Tensor) else src
        if (
            np.shape(value) != self.shape
            and np.broadcast_shapes(np.shape(value), self.shape) != self.shape
        ):
            raise ValueError(f"copy_: cannot copy shape {np.shape(value)} into {self.shape}")
        return self.data_update_(value)

    def zero_(self) -> Tensor:
        return self.data_update_(lambda a: a.fill(0))

    def fill_(self, value: float) -> Tensor:
        return self.data_update_(lambda a: a.fill(value))

    # ----------------------------------------------------------------- autograd
    def backward(
        self,
        grad: Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is d(loss)/d(self); it may be omitted only for a one-element tensor.
        The graph's saved arrays are freed afterwards unless ``retain_graph`` (default:
        ``create_graph``). ``create_graph=True`` records the backward pass itself, so the
        gradients can be differentiated again (gradient penalties).
        """
        from tinygan.autograd.engine import backward

        backward([self], None if grad is None else [grad], retain_graph, create_graph)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor
        replaces the gradient."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: the tensor does not require grad")
        if self._node is not None:
            if self._node.hooks is None:
                self._node.hooks = []
            hooks = self._node.hooks
        else:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    # ----------------------------------------------------------------- display
    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extras = []
        if self.dtype != np.float32 and self.dtype.kind == "f":
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn={type(self._node).__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    __hash__ = object.__hash__
