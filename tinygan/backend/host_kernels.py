"""Run the CUDA kernels of ``kernels/*.cu`` on the CPU, for tests on machines without a GPU.

A .cu file is compiled with g++ as C++20, with ``kernels/cuda_host_shim.h`` force-included
in front of it (the shim supplies ``threadIdx``, ``__syncthreads`` and friends, and a launcher
that walks the grid one block at a time, one std::thread per CUDA thread). The kernels'
``extern "C" __global__`` signatures are parsed here, and a small C-ABI wrapper per kernel,
``tg_launch_<name>(grid, block, params...)``, is appended to the translation unit; ctypes
then calls the wrappers with argument types derived from the same signatures.

The shared library is cached on disk, keyed by a hash of everything that goes into it
(shim, expanded kernel source, wrappers, compiler command), and loaded once per process.
This is a correctness tool, not a fast path: keep launches small.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.backend.cuda_kernels import (
    KERNEL_DIR,
    Dim3,
    Param,
    check_args,
    kernel_signatures,
    kernel_source,
)

SHIM = KERNEL_DIR / "cuda_host_shim.h"
CXXFLAGS = ("-std=c++20", "-O1", "-pthread", "-shared", "-fPIC")
_CTYPES = {"const float*": ctypes.c_void_p, "float*": ctypes.c_void_p}
_CTYPES |= {"int": ctypes.c_int, "float": ctypes.c_float}

_libraries: dict[str, ctypes.CDLL] = {}
_lock = threading.Lock()


def cache_dir() -> Path:
    """Where compiled kernels live: $TINYGAN_KERNEL_CACHE, else a per-user temp folder."""
    default = Path(tempfile.gettempdir()) / f"tinygan-host-kernels-{os.getuid()}"
    return Path(os.environ.get("TINYGAN_KERNEL_CACHE", default))


def compiler() -> str:
    """The C++ compiler ($CXX, else g++), or a RuntimeError saying it is missing."""
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise RuntimeError(f"host kernels need a C++20 compiler: {cxx!r} not found on PATH")
    return cxx


def _wrapper(name: str, params: tuple[Param, ...]) -> str:
    """C source of ``tg_launch_<name>``: grid and block dims, then the kernel's parameters."""
    decls = ", ".join(f"{p.ctype} {p.name}" for p in params)
    names = ", ".join(p.name for p in params)
    return (
        f'extern "C" void tg_launch_{name}(unsigned tg_gx, unsigned tg_gy, unsigned tg_gz, '
        f"unsigned tg_bx, unsigned tg_by, unsigned tg_bz, {decls}) {{\n"
        f"    tg_host::launch({name}, dim3(tg_gx, tg_gy, tg_gz), dim3(tg_bx, tg_by, tg_bz), "
        f"{names});\n}}\n"
    )


def _compile(file: str) -> ctypes.CDLL:
    """Build (or find in the cache) the shared library for ``kernels/<file>`` and load it."""
    signatures = kernel_signatures(file)
    source = kernel_source(file) + "\n// ---- host launchers ----\n"
    source += "".join(_wrapper(name, params) for name, params in signatures.items())
    command = [compiler(), *CXXFLAGS, "-include", str(SHIM), "-x", "c++"]
    key = hashlib.sha256("\0".join([SHIM.read_text(), source, *command]).encode()).hexdigest()
    folder = cache_dir()
    library = folder / f"{Path(file).stem}-{key[:16]}.so"
    if not library.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            cpp, so = Path(tmp) / f"{Path(file).stem}.cpp", Path(tmp) / "out.so"
            cpp.write_text(source)
            done = subprocess.run(
                [*command, str(cpp), "-o", str(so)], capture_output=True, text=True
            )
            if done.returncode != 0:
                raise RuntimeError(f"host compile of kernels/{file} failed:\n{done.stderr}")
            os.replace(so, library)  # atomic: a concurrent process sees all of it or nothing
    lib = ctypes.CDLL(str(library))
    for name, params in signatures.items():
        fn = getattr(lib, f"tg_launch_{name}")
        fn.argtypes = [ctypes.c_uint] * 6 + [_CTYPES[p.ctype] for p in params]
        fn.restype = None
    return lib


def library(file: str) -> ctypes.CDLL:
    """The loaded host library of ``kernels/<file>``, compiled at most once per process."""
    with _lock:
        if file not in _libraries:
            _libraries[file] = _compile(file)
        return _libraries[file]


Dims = int | tuple[int, ...]  # a CUDA dim3 as given: 1 to 3 sizes


def _dim3(v: Dims) -> Dim3:
    t = (v,) if isinstance(v, int) else tuple(v)
    if not 1 <= len(t) <= 3 or any(not isinstance(d, int) or d < 0 for d in t):
        raise ValueError(f"grid/block must be 1 to 3 ints >= 0, got {v!r}")
    return (*t, 1, 1)[:3]  # type: ignore[return-value]


def launch(file: str, name: str, grid: Dims, block: Dims, *args: Any) -> None:
    """Run ``name<<<grid, block>>>(*args)`` from ``kernels/<file>`` on the CPU; returns when done.

    Arrays must be C-contiguous float32 NumPy arrays (outputs writeable); scalars are passed
    as the kernel's int / float parameters.
    """
    grid, block = _dim3(grid), _dim3(block)
    params = check_args(file, name, args, np.ndarray)
    if 0 in grid:
        return
    if 0 in block:
        raise ValueError(f"{file}:{name}: empty block {block}")
    values = []
    for p, a in zip(params, args, strict=True):
        if p.ctype == "float*" and not a.flags.writeable:
            raise ValueError(f"{file}:{name}: output {p.name!r} is a read-only array")
        scalar = int if p.ctype == "int" else float
        values.append(a.ctypes.data if p.ctype.endswith("*") else scalar(a))
    getattr(library(file), f"tg_launch_{name}")(*grid, *block, *values)


class HostRunner:
    """The ``Runner`` of ``cuda_kernels``' launch helpers that runs them on the CPU."""

    xp = np

    def launch(self, file: str, name: str, grid: Dim3, block: Dim3, *args: Any) -> None:
        launch(file, name, grid, block, *args)


HOST = HostRunner()
