"""im2col and col2im on the CPU, compiled with Numba: one pass over the columns, in parallel
over the (sample, channel) planes (see conv.py for the layouts and the formulas).

NumPy's forms are a copy of a 6-D strided view (im2col) and KH·KW full-size strided adds
into a padded buffer plus a strided copy out (col2im). Here each plane is done in cache:

* im2col copies every row of every tap's window once, zeros where the window leaves x;
* col2im adds each tap's rows into a small per-plane buffer per stride phase (a ≡ row mod
  SH, b ≡ column mod SW), where a tap's rows land contiguously, then interleaves the phases
  into x. DCGAN's D1 input gradient (12.6 MB of columns folded onto 64×3×64×64): 5.5 ms
  with NumPy, see benchmarks/NOTES.md (fifth session) for this loop.

Columns come in either layout: (N, C, KH, KW, OH, OW) with ``batch_first``, else
(C, KH, KW, N, OH, OW). Plain copies and additions, so the results equal NumPy's bit for
bit (col2im adds a pixel's taps in the same order, kh then kw).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import prange

from tinygan.functions.winograd_kernels import one_at_a_time  # (also starts the pool)


@numba.njit(cache=True)
def _inside(size, kernel_offset, stride, pad, count):  # noqa: ANN001, ANN202
    """[first, last) of the window positions o < count whose tap, at o·stride + offset − pad,
    falls inside 0 .. size − 1."""
    shift = kernel_offset - pad
    first = max(0, -(shift // stride))
    last = min(count, (size - 1 - shift) // stride + 1)
    return first, max(first, last)


@numba.njit(parallel=True, cache=True)
def _im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, batch_first, cols):  # noqa: ANN001, ANN202, N803
    N, C, H, W = x.shape
    OH, OW = cols.shape[4], cols.shape[5]
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        for i in range(KH):
            oh0, oh1 = _inside(H, i * DH, SH, PH, OH)
            for j in range(KW):
                ow0, ow1 = _inside(W, j * DW, SW, PW, OW)
                for oh in range(OH):
                    dst = cols[n, c, i, j, oh] if batch_first else cols[c, i, j, n, oh]
                    if oh < oh0 or oh >= oh1:
                        dst[:] = 0
                        continue
                    row = x[n, c, oh * SH + i * DH - PH]
                    dst[:ow0] = 0
                    dst[ow1:] = 0
                    start = ow0 * SW + j * DW - PW
                    for q in range(ow1 - ow0):
                        dst[ow0 + q] = row[start + q * SW]


@numba.njit(parallel=True, cache=True)
def _col2im(cols, OW, SH, SW, PH, PW, DH, DW, batch_first, x):  # noqa: ANN001, ANN202, N803
    N, C, H, W = x.shape
    KH, KW = (cols.shape[2], cols.shape[3]) if batch_first else (cols.shape[1], cols.shape[2])
    OH = cols.shape[4]
    rows = OH + (KH - 1) * DH // SH  # per phase: tap (i, j) lands on rows i·DH // SH + oh
    width = OW + (KW - 1) * DW // SW
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        acc = np.zeros((SH, SW, rows, width), x.dtype)
        for i in range(KH):
            di, a = (i * DH) // SH, (i * DH) % SH
            for j in range(KW):
                dj, b = (j * DW) // SW, (j * DW) % SW
                for oh in range(OH):
                    src = cols[n, c, i, j, oh] if batch_first else cols[c, i, j, n, oh]
                    dst = acc[a, b, di + oh, dj : dj + OW]
                    for q in range(OW):
                        dst[q] += src[q]
        for h in range(H):
            a, r = (h + PH) % SH, (h + PH) // SH
            out = x[n, c, h]
            if r >= rows:
                out[:] = 0
                continue
            for b in range(SW):  # phase b fills the columns w ≡ b − PW (mod SW), k = 0, 1, ..
                w0 = (b - PW) % SW
                k0 = (w0 + PW) // SW
                count = (W - w0 + SW - 1) // SW
                inside = min(count, max(0, width - k0))
                src = acc[a, b, r]
                for q in range(inside):
                    out[w0 + q * SW] = src[k0 + q]
                for q in range(inside, count):
                    out[w0 + q * SW] = 0


_IM2COL = one_at_a_time(_im2col)
_COL2IM = one_at_a_time(_col2im)


def usable(a: Any) -> bool:
    """A NumPy float32 or float64 array (the CUDA kernels serve CuPy's)."""
    return type(a) is np.ndarray and a.dtype in (np.float32, np.float64)


def im2col(
    x: np.ndarray,
    kernel: tuple,
    stride: tuple,
    padding: tuple,
    dilation: tuple,
    out_size: tuple,
    batch_first: bool,
) -> np.ndarray:
    """cols of x (N, C, H, W), in the layout ``batch_first`` names."""
    N, C = x.shape[:2]
    (KH, KW), (OH, OW) = kernel, out_size
    shape = (N, C, KH, KW, OH, OW) if batch_first else (C, KH, KW, N, OH, OW)
    cols = np.empty(shape, x.dtype)
    _IM2COL(np.ascontiguousarray(x), KH, KW, *stride, *padding, *dilation, batch_first, cols)
    return cols


def col2im(
    cols: np.ndarray,
    size: tuple,
    stride: tuple,
    padding: tuple,
    dilation: tuple,
    width: int,
    batch_first: bool,
) -> np.ndarray:
    """x (N, C, *size) from cols in the layout ``batch_first`` names, of which the first
    ``width`` window columns are read."""
    N, C = (cols.shape[0], cols.shape[1]) if batch_first else (cols.shape[3], cols.shape[0])
    x = np.empty((N, C, *size), cols.dtype)
    _COL2IM(np.ascontiguousarray(cols), width, *stride, *padding, *dilation, batch_first, x)
    return x
