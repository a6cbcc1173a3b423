"""Making tensors: ``tensor`` from data, and ``zeros/ones/full/arange/randn/rand`` (+ ``*_like``).

Default dtype: float32 for Python floats and for the filled constructors; NumPy arrays keep
their dtype (as ``torch.tensor`` does), so ``tensor(np.random.randn(3))`` is float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.autograd.tensor import Tensor, _check_float
from tinygan.backend import array_module_for, device_of, to_device
from tinygan.random import Generator, default_generator

Shape = tuple[int, ...]


def _shape(shape: tuple) -> Shape:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _finish(data: Any, requires_grad: bool) -> Tensor:
    t = Tensor._wrap(data)
    if requires_grad:
        _check_float(data.dtype, "tensor")
        t.requires_grad = True
    return t


def tensor(
    data: Any, requires_grad: bool = False, dtype: Any = None, device: str | None = None
) -> Tensor:
    """A new leaf tensor holding a copy of ``data`` (list, scalar, ndarray or Tensor)."""
    if isinstance(data, Tensor):
        data = data.data
    if hasattr(data, "__cuda_array_interface__") or isinstance(data, (np.ndarray, np.generic)):
        source_device = device_of(data)
        array = np.asarray(data) if isinstance(data, np.generic) else data
        array = array.astype(dtype if dtype is not None else array.dtype, copy=True)
    else:
        source_device = "cpu"
        array = np.array(data)
        if dtype is None and array.dtype.kind == "f":
            dtype = np.float32
        elif dtype is None and array.dtype.kind in "iu":
            dtype = np.int64
        if dtype is not None:
            array = array.astype(dtype, copy=False)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"tensor: cannot make a tensor from data of dtype {array.dtype}")
    array = to_device(array, device or source_device)
    return _finish(array, requires_grad)


def as_tensor(value: Any, like: Tensor) -> Tensor:
    """``value`` as a constant tensor with ``like``'s dtype and device (scalars, arrays)."""
    if isinstance(value, Tensor):
        return value
    xp = array_module_for(like.device)
    return Tensor._wrap(xp.asarray(value, dtype=like.dtype))


def _filled(fill: str, shape: Shape, dtype: Any, device: str, value: float = 0.0) -> Any:
    xp = array_module_for(device)
    dtype = np.dtype(dtype)
    if fill == "zeros":
        return xp.zeros(shape, dtype)
    if fill == "ones":
        return xp.ones(shape, dtype)
    return xp.full(shape, value, dtype)


def zeros(
    *shape: Any, dtype: Any = np.float32, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    return _finish(_filled("zeros", _shape(shape), dtype, device), requires_grad)


def ones(
    *shape: Any, dtype: Any = np.float32, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    return _finish(_filled("ones", _shape(shape), dtype, device), requires_grad)


def full(
    shape: Any,
    fill_value: float,
    dtype: Any = np.float32,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _finish(_filled("full", shape, dtype, device, fill_value), requires_grad)


def arange(
    start: float, stop: float | None = None, step: float = 1, dtype: Any = None, device: str = "cpu"
) -> Tensor:
    """Evenly spaced values in [start, stop); int64 for integer arguments, else float32."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        ints = all(float(v).is_integer() and isinstance(v, int) for v in (start, stop, step))
        dtype = np.int64 if ints else np.float32
    return _finish(array_module_for(device).arange(start, stop, step, dtype=dtype), False)


def randn(
    *shape: Any,
    dtype: Any = np.float32,
    device: str = "cpu",
    requires_grad: bool = False,
    generator: Generator | None = None,
) -> Tensor:
    """Standard normal samples."""
    gen = generator or default_generator
    return _finish(gen.normal(_shape(shape), dtype, device), requires_grad)


def rand(
    *shape: Any,
    dtype: Any = np.float32,
    device: str = "cpu",
    requires_grad: bool = False,
    generator: Generator | None = None,
) -> Tensor:
    """Uniform samples in [0, 1)."""
    gen = generator or default_generator
    return _finish(gen.uniform(_shape(shape), dtype, device), requires_grad)


def _like(t: Tensor, dtype: Any) -> tuple[Shape, Any, str]:
    return t.shape, dtype or t.dtype, t.device


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like(t, dtype)
    return zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like(t, dtype)
    return ones(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(
    t: Tensor, fill_value: float, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    shape, dtype, device = _like(t, dtype)
    return full(shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype: Any = None, generator: Generator | None = None) -> Tensor:
    shape, dtype, device = _like(t, dtype)
    return randn(shape, dtype=dtype, device=device, generator=generator)


def rand_like(t: Tensor, dtype: Any = None, generator: Generator | None = None) -> Tensor:
    shape, dtype, device = _like(t, dtype)
    return rand(shape, dtype=dtype, device=device, generator=generator)
