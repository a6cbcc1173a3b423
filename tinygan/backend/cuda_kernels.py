"""The hand-written CUDA kernels of ``kernels/*.cu``: loading, launch geometry, launch helpers.

Each ``*_gpu`` helper below takes arrays, checks them, allocates the outputs, computes the
launch geometry and launches one or two kernels. The ops call them on the cuda path. Every
helper takes a ``runner``: by default the CuPy runner (NVRTC-compiled kernels on the GPU);
``tinygan.backend.host_kernels.HOST`` runs the very same kernel text on the CPU through a
small shim, which is how the CPU test suite checks the kernels, their argument order and
their launch geometry without a GPU.

CuPy is imported only when a kernel is launched on the GPU, so this module imports without it.
All kernels are float32, C-contiguous, and index with 32-bit ints (sizes must stay < 2**31).
"""

from __future__ import annotations

import functools
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


def _kernel_dir() -> Path:
    """kernels/ of a source checkout (editable install), else the copy setup.py installs
    under <prefix>/share/tinygan/kernels."""
    checkout = Path(__file__).resolve().parents[2] / "kernels"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "tinygan" / "kernels"


KERNEL_DIR = _kernel_dir()
BLOCK = 256  # threads per block of the elementwise kernels
REDUCE_BLOCK = 256  # most threads per block of the block-reduction kernels (TG_MAX_BLOCK)
MAX_BLOCKS = 4096  # cap on 1-D grids; the kernels' grid-stride loops cover the rest
NVRTC_OPTIONS = ("--std=c++17",)

Dim3 = tuple[int, int, int]


# ---- reading the sources -----------------------------------------------------------------


def kernel_source(file: str) -> str:
    """The text of ``kernels/<file>`` with its local ``#include "x.h"`` lines expanded in place.

    Expanding here (rather than passing ``-I`` to the compiler) makes the text self-contained,
    so a cache keyed by it (CuPy's, or the host shim's) sees edits to the headers too.
    ``#line`` directives keep compiler messages pointing at the right file and line.
    """
    path = KERNEL_DIR / file
    if not path.is_file():
        raise FileNotFoundError(f"CUDA kernel file not found: {path}")
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = re.fullmatch(r'\s*#include\s+"([\w.]+)"\s*', line)
        if match is None:
            out.append(line)
            continue
        header = [h for h in kernel_source(match.group(1)).splitlines() if h != "#pragma once"]
        out += [f'#line 1 "{match.group(1)}"', *header, f'#line {number + 1} "{file}"']
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Param:
    """One kernel parameter: ``ctype`` is one of ``PARAM_TYPES``."""

    ctype: str
    name: str


PARAM_TYPES = ("const float*", "float*", "int", "float")
_KERNEL_RE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)')


def _parse_param(text: str, where: str) -> Param:
    words = text.replace("*", " * ").replace("__restrict__", " ").split()
    if not words:
        raise ValueError(f"{where}: empty parameter")
    ctype = " ".join(words[:-1]).replace(" *", "*")
    if ctype not in PARAM_TYPES:
        raise ValueError(f"{where}: parameter {text.strip()!r} has a type outside {PARAM_TYPES}")
    return Param(ctype, words[-1])


@functools.cache
def kernel_signatures(file: str) -> dict[str, tuple[Param, ...]]:
    """``{kernel name: parameters}`` for each ``extern "C" __global__`` function of ``file``."""
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", kernel_source(file), flags=re.S)
    return {
        name: tuple(_parse_param(p, f"{file}:{name}") for p in params.split(","))
        for name, params in _KERNEL_RE.findall(text)
    }


def check_args(file: str, name: str, args: tuple[Any, ...], array_type: type) -> tuple[Param, ...]:
    """Check ``args`` against the kernel's parameters; return the parameters.

    Pointers must be C-contiguous float32 ``array_type`` arrays; ints must fit in 32 bits.
    """
    signatures = kernel_signatures(file)
    if name not in signatures:
        raise KeyError(f"no kernel {name!r} in {file}; it has {sorted(signatures)}")
    params = signatures[name]
    if len(args) != len(params):
        raise TypeError(f"{file}:{name} takes {len(params)} arguments, got {len(args)}")
    for p, a in zip(params, args, strict=True):
        where = f"{file}:{name} argument {p.name!r}"
        if p.ctype.endswith("*"):
            if not isinstance(a, array_type) or a.dtype != np.float32:
                raise TypeError(f"{where}: expected a float32 {array_type.__name__}, got {a!r:.80}")
            if not a.flags.c_contiguous:
                raise ValueError(f"{where}: array of shape {a.shape} is not C-contiguous")
        elif p.ctype == "int" and not -(2**31) <= int(a) < 2**31:
            raise ValueError(f"{where}: {a} does not fit in a 32-bit int")
    return params


# ---- launch geometry (shared by the GPU and the host runner) -----------------------------


def elementwise_geometry(total: int) -> tuple[Dim3, Dim3]:
    """Grid and block for a 1-D grid-stride loop over ``total`` elements (grid 0 if none)."""
    return (min(math.ceil(total / BLOCK), MAX_BLOCKS), 1, 1), (BLOCK, 1, 1)


def reduce_geometry(rows: int, row_length: int) -> tuple[Dim3, Dim3]:
    """One block per row; threads: the power of two covering the row, from 32 to REDUCE_BLOCK."""
    threads = min(max(32, 1 << max(row_length - 1, 0).bit_length()), REDUCE_BLOCK)
    return (rows, 1, 1), (threads, 1, 1)


def _check_int32(op: str, *sizes: int) -> None:
    if max(sizes) >= 2**31:
        raise ValueError(f"{op}: {max(sizes)} elements is too many for the 32-bit kernel indices")


# ---- runners: where a kernel runs ----------------------------------------------------------


class Runner(Protocol):
    """Launches kernels on the arrays of one array module ``xp`` (numpy or cupy)."""

    xp: Any

    def launch(self, file: str, name: str, grid: Dim3, block: Dim3, *args: Any) -> None: ...


@functools.cache
def _module(file: str) -> Any:
    from tinygan.backend import cupy

    return cupy().RawModule(code=kernel_source(file), options=NVRTC_OPTIONS)


def get_kernel(file: str, name: str) -> Any:
    """The ``cupy.RawKernel`` ``name`` of ``kernels/<file>`` (the file compiles once a process)."""
    if name not in kernel_signatures(file):
        raise KeyError(f"no kernel {name!r} in {file}; it has {sorted(kernel_signatures(file))}")
    return _module(file).get_function(name)


class CupyRunner:
    """Runs the kernels on the GPU through CuPy (NVRTC)."""

    @property
    def xp(self) -> Any:
        from tinygan.backend import cupy

        return cupy()

    def launch(self, file: str, name: str, grid: Dim3, block: Dim3, *args: Any) -> None:
        params = check_args(file, name, args, self.xp.ndarray)
        if 0 in grid:
            return  # nothing to do (CUDA rejects an empty grid)
        # Python scalars would be passed as 64-bit values: convert them to the C types.
        scalars = {"int": np.int32, "float": np.float32}
        args = tuple(
            scalars[p.ctype](a) if p.ctype in scalars else a
            for p, a in zip(params, args, strict=True)
        )
        get_kernel(file, name)(grid, block, args)


GPU = CupyRunner()


# ---- helpers shared by the launch functions ----------------------------------------------


def _input(op: str, name: str, a: Any, xp: Any, ndim: int | None = None) -> Any:
    """``a`` as a C-contiguous float32 array of ``xp``, or a clear error."""
    if not isinstance(a, xp.ndarray):
        raise TypeError(f"{op}: {name} must be a {xp.__name__} array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise TypeError(f"{op}: {name} must be float32 (the CUDA kernels' type), got {a.dtype}")
    if ndim is not None and a.ndim < ndim:
        raise ValueError(f"{op}: {name} needs at least {ndim} dims, got shape {a.shape}")
    return xp.ascontiguousarray(a)


def _per_channel(
    op: str, name: str, a: Any, shape: tuple[int, ...], fill: float | None, xp: Any
) -> Any:
    """A per-channel (or per-row) array broadcast to ``shape``. None stands for a constant
    ``fill`` where the parameter is optional (``fill`` not None), and is an error otherwise."""
    if a is None:
        if fill is None:
            raise TypeError(f"{op}: {name} is required")
        return xp.full(shape, fill, dtype=np.float32)
    a = _input(op, name, a, xp)
    try:
        return xp.ascontiguousarray(xp.broadcast_to(a, shape))
    except ValueError:
        raise ValueError(f"{op}: {name} of shape {a.shape} does not broadcast to {shape}") from None


def _pair(op: str, name: str, v: int | tuple[int, int], low: int) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, int) else tuple(v)
    if len(pair) != 2 or any(not isinstance(p, int) or p < low for p in pair):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints >= {low}, got {v!r}")
    return pair  # type: ignore[return-value]


def _ncs(x: Any) -> tuple[int, int, int]:
    """(N, C, S) of an (N, C, *spatial) array, S the product of the spatial sizes."""
    return x.shape[0], x.shape[1], math.prod(x.shape[2:])


# ---- im2col.cu -----------------------------------------------------------------------------


def im2col_gpu(
    x: Any,
    kh: int,
    kw: int,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    runner: Runner | None = None,
) -> Any:
    """cols: (N, C, KH, KW, OH, OW) with cols[n,c,i,j,oh,ow] = x[n,c,oh*sh-ph+i*dh,ow*sw-pw+j*dw].

    x: (N, C, H, W); OH = (H + 2*ph - dh*(kh-1) - 1)//sh + 1, likewise OW; 0 outside the image.
    """
    r = runner or GPU
    x = _input("im2col", "x", x, r.xp)
    if x.ndim != 4:
        raise ValueError(f"im2col: x must be (N, C, H, W), got shape {x.shape}")
    sh, sw = _pair("im2col", "stride", stride, 1)
    ph, pw = _pair("im2col", "padding", padding, 0)
    dh, dw = _pair("im2col", "dilation", dilation, 1)
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if kh < 1 or kw < 1 or oh < 1 or ow < 1:
        raise ValueError(f"im2col: kernel ({kh}, {kw}) does not fit input {x.shape} as padded")
    cols = r.xp.empty((n, c, kh, kw, oh, ow), dtype=np.float32)
    _check_int32("im2col", cols.size)
    grid, block = elementwise_geometry(cols.size)
    dims = (n, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw)
    r.launch("im2col.cu", "im2col_kernel", grid, block, x, cols, *dims)
    return cols


def col2im_gpu(
    cols: Any,
    image_size: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    runner: Runner | None = None,
) -> Any:
    """x: (N, C, H, W), the adjoint of im2col: each column entry added back where it was read.

    cols: (N, C, KH, KW, OH, OW); image_size: (H, W). OH/OW are taken from cols, so H and W
    may exceed what im2col would give (e.g. a transposed convolution's output_padding).
    """
    r = runner or GPU
    cols = _input("col2im", "cols", cols, r.xp)
    if cols.ndim != 6:
        raise ValueError(f"col2im: cols must be (N, C, KH, KW, OH, OW), got shape {cols.shape}")
    sh, sw = _pair("col2im", "stride", stride, 1)
    ph, pw = _pair("col2im", "padding", padding, 0)
    dh, dw = _pair("col2im", "dilation", dilation, 1)
    h, w = _pair("col2im", "image_size", image_size, 1)
    n, c, kh, kw, oh, ow = cols.shape
    x = r.xp.empty((n, c, h, w), dtype=np.float32)
    _check_int32("col2im", cols.size, x.size)
    grid, block = elementwise_geometry(x.size)
    dims = (n, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw)
    r.launch("im2col.cu", "col2im_kernel", grid, block, cols, x, *dims)
    return x


# ---- bias_act.cu ---------------------------------------------------------------------------

ACTIVATIONS = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4}


def _act_code(op: str, act: str, negative_slope: float) -> int:
    if act not in ACTIVATIONS:
        raise ValueError(f"{op}: unknown activation {act!r}; expected one of {list(ACTIVATIONS)}")
    if act == "leaky_relu" and negative_slope < 0:
        raise ValueError(f"{op}: negative_slope must be >= 0 (got {negative_slope})")
    return ACTIVATIONS[act]


def bias_act_gpu(
    x: Any,
    bias: Any | None,
    act: str = "identity",
    negative_slope: float = 0.01,
    runner: Runner | None = None,
) -> Any:
    """y = act(x + bias[c]); x: (N, C, *spatial), bias: (C,) or None.

    act: one of ``ACTIVATIONS``; negative_slope is leaky_relu's (>= 0).
    """
    r = runner or GPU
    code = _act_code("bias_act", act, negative_slope)
    x = _input("bias_act", "x", x, r.xp, ndim=2)
    n, c, s = _ncs(x)
    b = _per_channel("bias_act", "bias", bias, (c,), 0.0, r.xp)
    y = r.xp.empty_like(x)
    _check_int32("bias_act", x.size)
    grid, block = elementwise_geometry(x.size)
    args = (x, b, y, n, c, s, code, float(negative_slope))
    r.launch("bias_act.cu", "bias_act_forward", grid, block, *args)
    return y


def bias_act_backward_gpu(
    dy: Any,
    y: Any,
    act: str = "identity",
    negative_slope: float = 0.01,
    runner: Runner | None = None,
) -> Any:
    """dz = dy * act'(x + bias), computed from the forward's output y (same shape as dy)."""
    r = runner or GPU
    code = _act_code("bias_act_backward", act, negative_slope)
    dy, y = _input("bias_act_backward", "dy", dy, r.xp), _input("bias_act_backward", "y", y, r.xp)
    if dy.shape != y.shape:
        raise ValueError(f"bias_act_backward: dy {dy.shape} and y {y.shape} differ in shape")
    dz = r.xp.empty_like(dy)
    _check_int32("bias_act_backward", dy.size)
    grid, block = elementwise_geometry(dy.size)
    args = (dy, y, dz, dy.size, code, float(negative_slope))
    r.launch("bias_act.cu", "bias_act_backward", grid, block, *args)
    return dz


def bias_grad_gpu(dz: Any, runner: Runner | None = None) -> Any:
    """db[c] = sum of dz[n, c, ...] over every axis but 1; dz: (N, C, *spatial) -> (C,)."""
    r = runner or GPU
    dz = _input("bias_grad", "dz", dz, r.xp, ndim=2)
    n, c, s = _ncs(dz)
    db = r.xp.empty((c,), dtype=np.float32)
    _check_int32("bias_grad", dz.size)
    grid, block = reduce_geometry(c, n * s)
    r.launch("bias_act.cu", "bias_grad", grid, block, dz, db, n, c, s)
    return db


# ---- batch_norm.cu -------------------------------------------------------------------------


def batch_norm_stats_gpu(x: Any, eps: float = 1e-5, runner: Runner | None = None) -> Any:
    """(mean, var, invstd), each (C,), over axes (0, 2, 3, ...) of x: (N, C, *spatial).

    var is the biased variance (divide by M = N*S); invstd = 1/sqrt(var + eps). For running
    statistics the caller rescales var by M/(M-1).
    """
    r = runner or GPU
    x = _input("batch_norm", "x", x, r.xp, ndim=2)
    n, c, s = _ncs(x)
    if n * s == 0:
        raise ValueError(f"batch_norm: no values per channel in x of shape {x.shape}")
    _check_int32("batch_norm", x.size)
    mean, var, invstd = (r.xp.empty((c,), dtype=np.float32) for _ in range(3))
    grid, block = reduce_geometry(c, n * s)
    args = (x, mean, var, invstd, n, c, s, float(eps))
    r.launch("batch_norm.cu", "batch_norm_stats", grid, block, *args)
    return mean, var, invstd


def batch_norm_forward_gpu(
    x: Any,
    mean: Any,
    invstd: Any,
    gamma: Any | None = None,
    beta: Any | None = None,
    runner: Runner | None = None,
) -> Any:
    """y = gamma[c] * (x - mean[c]) * invstd[c] + beta[c]; x: (N, C, *spatial), the rest (C,).

    Training passes the batch statistics, evaluation the running mean and 1/sqrt(var + eps).
    gamma/beta None mean 1 and 0 (no affine).
    """
    r = runner or GPU
    x = _input("batch_norm", "x", x, r.xp, ndim=2)
    n, c, s = _ncs(x)
    mean = _per_channel("batch_norm", "mean", mean, (c,), None, r.xp)
    invstd = _per_channel("batch_norm", "invstd", invstd, (c,), None, r.xp)
    gamma = _per_channel("batch_norm", "gamma", gamma, (c,), 1.0, r.xp)
    beta = _per_channel("batch_norm", "beta", beta, (c,), 0.0, r.xp)
    y = r.xp.empty_like(x)
    _check_int32("batch_norm", x.size)
    grid, block = elementwise_geometry(x.size)
    args = (x, mean, invstd, gamma, beta, y, n, c, s)
    r.launch("batch_norm.cu", "batch_norm_forward", grid, block, *args)
    return y


def batch_norm_backward_gpu(
    dy: Any,
    x: Any,
    mean: Any,
    invstd: Any,
    gamma: Any | None = None,
    runner: Runner | None = None,
) -> tuple[Any, Any, Any]:
    """(dx, dgamma, dbeta) of training-mode batch norm, from the saved mean and invstd.

    dbeta = sum(dy), dgamma = sum(dy * xhat) per channel (one fused pass), then
    dx = gamma * invstd * (dy - dbeta/M - xhat * dgamma/M) with xhat = (x - mean) * invstd.
    """
    r = runner or GPU
    op = "batch_norm_backward"
    dy, x = _input(op, "dy", dy, r.xp, ndim=2), _input(op, "x", x, r.xp, ndim=2)
    if dy.shape != x.shape:
        raise ValueError(f"{op}: dy {dy.shape} and x {x.shape} differ in shape")
    n, c, s = _ncs(x)
    mean = _per_channel(op, "mean", mean, (c,), None, r.xp)
    invstd = _per_channel(op, "invstd", invstd, (c,), None, r.xp)
    gamma = _per_channel(op, "gamma", gamma, (c,), 1.0, r.xp)
    _check_int32(op, x.size)
    dbeta, dgamma = r.xp.empty((c,), dtype=np.float32), r.xp.empty((c,), dtype=np.float32)
    grid, block = reduce_geometry(c, n * s)
    args = (dy, x, mean, invstd, dbeta, dgamma, n, c, s)
    r.launch("batch_norm.cu", "batch_norm_backward_reduce", grid, block, *args)
    dx = r.xp.empty_like(x)
    grid, block = elementwise_geometry(x.size)
    args = (dy, x, mean, invstd, gamma, dbeta, dgamma, dx, n, c, s)
    r.launch("batch_norm.cu", "batch_norm_backward_dx", grid, block, *args)
    return dx, dgamma, dbeta


# ---- instance_norm.cu ----------------------------------------------------------------------


def instance_norm_forward_gpu(
    x: Any,
    scale: Any | None = None,
    bias: Any | None = None,
    eps: float = 1e-5,
    runner: Runner | None = None,
) -> tuple[Any, Any, Any]:
    """(y, mean, invstd): y = scale[n,c] * (x - mean[n,c]) * invstd[n,c] + bias[n,c].

    x: (N, C, *spatial), statistics over the spatial axes (biased variance). scale and bias
    broadcast to (N, C): AdaIN passes (N, C) style statistics, affine instance norm (C,)
    parameters, plain instance norm None (1 and 0). mean and invstd come back as (N, C).
    """
    r = runner or GPU
    op = "instance_norm"
    x = _input(op, "x", x, r.xp, ndim=3)
    n, c, s = _ncs(x)
    scale = _per_channel(op, "scale", scale, (n, c), 1.0, r.xp)
    bias = _per_channel(op, "bias", bias, (n, c), 0.0, r.xp)
    y = r.xp.empty_like(x)
    mean, invstd = r.xp.empty((n, c), dtype=np.float32), r.xp.empty((n, c), dtype=np.float32)
    _check_int32(op, x.size)
    grid, block = reduce_geometry(n * c, s)
    args = (x, scale, bias, y, mean, invstd, n * c, s, float(eps))
    r.launch("instance_norm.cu", "instance_norm_forward", grid, block, *args)
    return y, mean, invstd


def instance_norm_backward_gpu(
    dy: Any,
    x: Any,
    mean: Any,
    invstd: Any,
    scale: Any | None = None,
    runner: Runner | None = None,
) -> tuple[Any, Any, Any]:
    """(dx, dscale, dbias) of instance norm / AdaIN; dscale and dbias are (N, C).

    dbias = sum(dy), dscale = sum(dy * xhat) over each (n, c) plane (one fused pass);
    dx = scale * invstd * (dy - dbias/S - xhat * dscale/S). Sum them over n for affine
    parameters of shape (C,).
    """
    r = runner or GPU
    op = "instance_norm_backward"
    dy, x = _input(op, "dy", dy, r.xp, ndim=3), _input(op, "x", x, r.xp, ndim=3)
    if dy.shape != x.shape:
        raise ValueError(f"{op}: dy {dy.shape} and x {x.shape} differ in shape")
    n, c, s = _ncs(x)
    mean = _per_channel(op, "mean", mean, (n, c), None, r.xp)
    invstd = _per_channel(op, "invstd", invstd, (n, c), None, r.xp)
    scale = _per_channel(op, "scale", scale, (n, c), 1.0, r.xp)
    dx = r.xp.empty_like(x)
    dscale, dbias = r.xp.empty((n, c), dtype=np.float32), r.xp.empty((n, c), dtype=np.float32)
    _check_int32(op, x.size)
    grid, block = reduce_geometry(n * c, s)
    args = (dy, x, mean, invstd, scale, dx, dscale, dbias, n * c, s)
    r.launch("instance_norm.cu", "instance_norm_backward", grid, block, *args)
    return dx, dscale, dbias


# ---- reflection_pad.cu ---------------------------------------------------------------------


def _reflection_padding(
    op: str, padding: int | tuple[int, int, int, int], h: int, w: int
) -> tuple[int, int, int, int]:
    """(left, right, top, bottom), PyTorch's order, each >= 0 and smaller than its axis
    (h, w: the unpadded size)."""
    pads = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
    if len(pads) != 4 or any(not isinstance(p, int) or p < 0 for p in pads):
        raise ValueError(f"{op}: padding must be an int or 4 ints >= 0, got {padding!r}")
    left, right, top, bottom = pads
    if max(left, right) >= w or max(top, bottom) >= h:
        raise ValueError(f"{op}: padding {pads} must be smaller than the input's (H, W) = {h, w}")
    return left, right, top, bottom


def reflection_pad2d_gpu(
    x: Any, padding: int | tuple[int, int, int, int], runner: Runner | None = None
) -> Any:
    """y: (..., top+H+bottom, left+W+right), x: (..., H, W) mirrored at its edges (edge not
    repeated); padding = (left, right, top, bottom) or one int for all four."""
    r = runner or GPU
    x = _input("reflection_pad2d", "x", x, r.xp, ndim=2)
    *lead, h, w = x.shape
    left, right, top, bottom = _reflection_padding("reflection_pad2d", padding, h, w)
    oh, ow = top + h + bottom, left + w + right
    y = r.xp.empty((*lead, oh, ow), dtype=np.float32)
    _check_int32("reflection_pad2d", y.size)
    grid, block = elementwise_geometry(y.size)
    args = (x, y, math.prod(lead), h, w, top, left, oh, ow)
    r.launch("reflection_pad.cu", "reflection_pad2d_forward", grid, block, *args)
    return y


def reflection_pad2d_backward_gpu(
    dy: Any, padding: int | tuple[int, int, int, int], runner: Runner | None = None
) -> Any:
    """dx: (..., H, W), the gradient of reflection_pad2d for the output gradient dy."""
    r = runner or GPU
    op = "reflection_pad2d_backward"
    dy = _input(op, "dy", dy, r.xp, ndim=2)
    *lead, oh, ow = dy.shape
    left, right, top, bottom = _reflection_padding(op, padding, oh, ow)  # types and signs
    h, w = oh - top - bottom, ow - left - right
    _reflection_padding(op, padding, h, w)  # and now the sizes
    dx = r.xp.empty((*lead, h, w), dtype=np.float32)
    _check_int32(op, dy.size)
    grid, block = elementwise_geometry(dx.size)
    args = (dy, dx, math.prod(lead), h, w, top, left, oh, ow)
    r.launch("reflection_pad.cu", "reflection_pad2d_backward", grid, block, *args)
    return dx


# ---- upsample_nearest.cu -------------------------------------------------------------------


def upsample_nearest2d_gpu(
    x: Any, scale_factor: int | tuple[int, int], runner: Runner | None = None
) -> Any:
    """y: (..., H*fh, W*fw) with y[..., i, j] = x[..., i // fh, j // fw]; x: (..., H, W)."""
    r = runner or GPU
    x = _input("upsample_nearest2d", "x", x, r.xp, ndim=2)
    fh, fw = _pair("upsample_nearest2d", "scale_factor", scale_factor, 1)
    *lead, h, w = x.shape
    y = r.xp.empty((*lead, h * fh, w * fw), dtype=np.float32)
    _check_int32("upsample_nearest2d", y.size)
    grid, block = elementwise_geometry(y.size)
    args = (x, y, math.prod(lead), h, w, fh, fw)
    r.launch("upsample_nearest.cu", "upsample_nearest2d_forward", grid, block, *args)
    return y


def upsample_nearest2d_backward_gpu(
    dy: Any, scale_factor: int | tuple[int, int], runner: Runner | None = None
) -> Any:
    """dx: (..., H, W), each entry the sum of its fh x fw block of dy: (..., H*fh, W*fw)."""
    r = runner or GPU
    op = "upsample_nearest2d_backward"
    dy = _input(op, "dy", dy, r.xp, ndim=2)
    fh, fw = _pair(op, "scale_factor", scale_factor, 1)
    *lead, oh, ow = dy.shape
    if oh % fh or ow % fw:
        raise ValueError(f"{op}: dy of shape {dy.shape} is not a multiple of {(fh, fw)}")
    dx = r.xp.empty((*lead, oh // fh, ow // fw), dtype=np.float32)
    _check_int32(op, dy.size)
    grid, block = elementwise_geometry(dx.size)
    args = (dy, dx, math.prod(lead), oh // fh, ow // fw, fh, fw)
    r.launch("upsample_nearest.cu", "upsample_nearest2d_backward", grid, block, *args)
    return dx
