"""Where a tensor's array lives: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every op takes its array module (``xp``) from its inputs, so one implementation serves both
devices. CuPy is imported lazily, the first time a ``"cuda"`` array is asked for: tinygan
imports and runs fully without it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy: ModuleType | None = None


def cupy() -> ModuleType:
    """Import CuPy and check that a GPU is visible; raise one clear error saying what is missing."""
    global _cupy
    if _cupy is not None:
        return _cupy
    try:
        import cupy as cp
    except ImportError as exc:
        raise RuntimeError(
            "device 'cuda' needs CuPy, which is not installed: pip install 'tinygan[gpu]' "
            "(cupy-cuda12x for CUDA 12 drivers, cupy-cuda13x for CUDA 13)"
        ) from exc
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy raises its own CUDARuntimeError when no driver is present
        raise RuntimeError(
            f"device 'cuda': CuPy is installed but no GPU is usable ({exc})"
        ) from exc
    if count == 0:
        raise RuntimeError("device 'cuda': CuPy is installed but no GPU was found")
    _cupy = cp
    return cp


def cupy_loaded() -> bool:
    """True once a CUDA array has been created in this process."""
    return _cupy is not None


def is_cuda_array(array: Any) -> bool:
    return _cupy is not None and isinstance(array, _cupy.ndarray)


def get_array_module(array: Any) -> ModuleType:
    """numpy or cupy, whichever ``array`` belongs to."""
    return _cupy if is_cuda_array(array) else np


def device_of(array: Any) -> str:
    return "cuda" if is_cuda_array(array) else "cpu"


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    return device


def to_device(array: Any, device: str) -> Any:
    """The same values on ``device`` (the array itself when it is already there)."""
    check_device(device)
    if device == "cuda":
        return cupy().asarray(array)
    return array.get() if is_cuda_array(array) else np.asarray(array)


def array_module_for(device: str) -> ModuleType:
    return cupy() if check_device(device) == "cuda" else np


# ---------------------------------------------------------------- the hand-written kernels


class _KernelMode:
    # TINYGAN_HOST_KERNELS=1 runs every op's kernel branch on the CPU (run_kernels_on_host).
    on_host = os.environ.get("TINYGAN_HOST_KERNELS") == "1"


@contextlib.contextmanager
def run_kernels_on_host(enabled: bool = True) -> Iterator[None]:
    """Inside this block, ops on float32 CPU arrays take their GPU branch, running the CUDA
    kernels of ``kernels/`` on the CPU through the host shim (slow; for tests). CI uses it to
    execute the ops' kernel code paths, launch geometry included, without a GPU."""
    previous = _KernelMode.on_host
    _KernelMode.on_host = enabled
    try:
        yield
    finally:
        _KernelMode.on_host = previous


def kernel_runner(array: Any) -> Any:
    """Where an op should run tinygan's CUDA kernels on ``array``: the CuPy runner for a
    float32 GPU array, the host-shim runner for a float32 CPU array inside
    :func:`run_kernels_on_host`, or None (use the array code: NumPy, or CuPy for float64)."""
    if array.dtype != np.float32:
        return None
    if is_cuda_array(array):
        from tinygan.backend.cuda_kernels import GPU

        return GPU
    if _KernelMode.on_host:
        from tinygan.backend.host_kernels import HOST

        return HOST
    return None
