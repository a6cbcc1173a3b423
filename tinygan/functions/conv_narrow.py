"""Stride-1 convolutions with a narrow side: unfold the few channels, never the many.

conv.py's im2col path unfolds the convolution's input into a column matrix of C·KH·KW rows,
even when the other side of the product has a handful of channels. For CycleGAN's output
layer (7×7, 64 -> 3 channels, 128×128 output) those columns are 64·49 × 16384 floats,
205 MB written and read for 0.3 GFLOP: the layer is bound by memory, in all three products
(forward, input gradient, weight gradient). Here each product unfolds the narrow side only,
or nothing at all:

    forward        y  = conv2d(x, W), OC ≪ C       kn2row: Z = W_taps @ x, then the taps'
                                                   shifted slices of Z summed (no unfold)
    input grad     dx = conv_transpose2d(gy, W),   unfold gy (OC·KH·KW rows), one GEMM by
                   gy with few channels            the flipped kernel, no col2im
    weight grad    dW of conv2d(x, W), OC ≪ C      unfold gy over x's padded positions,
                                                   one GEMM with x, no columns of x

The forward and the weight gradient work on a "flat padded-width" layout: an image (Hp, Wp)
flattened row-major, so that moving by (kh, kw) is moving by kh·Wp + kw in the flat index,
and every tap's shift is one contiguous slice. Positions whose column wraps past the row end
only ever read zeros or land in columns that are cut off afterwards (see each function). The
input gradient is an ordinary unfold, of an array with few channels.

Only NumPy arrays, stride 1, dilation 1, groups 1 come here (``use_*`` decide); everything
else, CuPy arrays and the CUDA-kernel runner included, stays on conv.py's im2col path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import kernel_runner

Pair = tuple[int, int]

# Take a narrow path when the narrow side's unfolded (or kn2row) matrix, times this factor,
# is still no larger than the im2col columns of the wide side it replaces. Measured on the
# 2-core machine, one thread, float32, C = 64 or 128 input channels, kernels 3-7, 16-134 px:
# each narrow product took 0.02-0.75x the im2col path's time for OC <= C/4, 0.4-0.9x for
# OC = C/2 and 0.7-1.25x for OC = C (two threads: the input gradient at OC = C/2, 128 px,
# 1.2x). Factor 2 takes them up to OC = C/2, short of it once the padded border counts.
NARROW_RATIO = 2.0
# Switch to turn every narrow path off (tests compare against the im2col path with it).
ENABLED = True


def _plain(arrays: tuple, stride: Any, dilation: Any, groups: int) -> bool:
    """NumPy arrays (no CUDA-kernel runner), stride 1, dilation 1, one group."""
    return (
        ENABLED
        and groups == 1
        and tuple(stride) == (1, 1)
        and tuple(dilation) == (1, 1)
        and all(isinstance(a, np.ndarray) and kernel_runner(a) is None for a in arrays)
    )


def _narrower(narrow: int, wide: int) -> bool:
    """Whether ``narrow`` elements (the matrix a narrow path builds) are few enough against
    ``wide`` (the im2col columns the old path would build)."""
    return NARROW_RATIO * narrow <= wide


def use_forward(
    x: Any,
    w: Any,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    out_size: Pair,
    cols: Any = None,
) -> bool:
    """conv2d(x, w) by kn2row: its product Z (OC·KH·KW × N·Hp·Wp) against im2col's columns
    (C·KH·KW × N·OH·OW), i.e. OC·Hp·Wp against C·OH·OW. Not when the caller already has the
    columns (``cols``: conv_transpose2d's backward shares one unfold of its output gradient)."""
    if cols is not None or not _plain((x, w), stride, dilation, groups):
        return False
    _, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    Hp, Wp = H + 2 * padding[0], W + 2 * padding[1]
    if tuple(out_size) != (Hp - KH + 1, Wp - KW + 1):
        return False
    return _narrower(OC * Hp * Wp, C * out_size[0] * out_size[1])


def use_transpose(
    x: Any, w: Any, stride: Pair, padding: Pair, dilation: Pair, groups: int, out_size: Pair
) -> bool:
    """conv_transpose2d(x, w) (x: Ci channels, w: (Ci, Co, KH, KW)) by unfolding x: its
    columns (Ci·KH·KW × N·OH·OW) against the col2im path's (Co·KH·KW × N·H·W)."""
    if not _plain((x, w), stride, dilation, groups):
        return False
    _, Ci, H, W = x.shape
    Co = w.shape[1]
    return _narrower(Ci * out_size[0] * out_size[1], Co * H * W)


def use_weight_grad(
    x: Any,
    gy: Any,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    cols: Any = None,
) -> bool:
    """dW of conv2d(x, ·) from gy by unfolding gy over x's padded positions: those columns
    (OC·KH·KW × N·Hp·Wp) against im2col's columns of x (C·KH·KW × N·OH·OW). Not when the
    caller already has x's columns (``cols``)."""
    if cols is not None or not _plain((x, gy), stride, dilation, groups):
        return False
    _, C, H, W = x.shape
    _, OC, OH, OW = gy.shape
    Hp, Wp = H + 2 * padding[0], W + 2 * padding[1]
    if (OH, OW) != (Hp - kernel[0] + 1, Wp - kernel[1] + 1):
        return False
    return _narrower(OC * Hp * Wp, C * OH * OW)


def _padded_flat(x: Any, padding: Pair) -> Any:
    """x (N, C, H, W) zero-padded by ``padding`` and flattened: (N, C, Hp·Wp)."""
    N, C, H, W = x.shape
    PH, PW = padding
    if PH or PW:
        out = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
        out[:, :, PH : PH + H, PW : PW + W] = x
        x = out
    return np.ascontiguousarray(x).reshape(N, C, -1)


def conv_forward(x: Any, w: Any, padding: Pair, out_size: Pair) -> Any:
    """y = conv2d(x, w) at stride 1 by kn2row: one GEMM, then a shift-and-add of the taps.

    With x_p the padded input flattened per sample to f = r·Wp + s (r < Hp, s < Wp),

        Z[n, (o, kh, kw), f] = Σ_c W[o, c, kh, kw] · x_p[n, c, f]        (one GEMM)
        y[n, o, i, j]        = Σ_{kh, kw} Z[n, (o, kh, kw), (i + kh)·Wp + (j + kw)]

    since y[n, o, i, j] = Σ_{c,kh,kw} W[o, c, kh, kw] · x_p[n, c, i + kh, j + kw] and
    (i + kh)·Wp + (j + kw) = (i·Wp + j) + (kh·Wp + kw): on the flat index g = i·Wp + j of the
    output in padded-width rows, tap (kh, kw) is the contiguous slice of Z starting at
    kh·Wp + kw. The sum runs over g < (OH − 1)·Wp + OW; its entries with j ≥ OW (wrapped
    into the next row) are computed and cut off. Z has OC·KH·KW rows over N·Hp·Wp columns
    (10 MB for CycleGAN's 64 -> 3 layer) where im2col's columns have C·KH·KW rows (205 MB).
    """
    N, C, _, _ = x.shape
    OC, _, KH, KW = w.shape
    OH, OW = out_size
    Wp = x.shape[3] + 2 * padding[1]
    xf = _padded_flat(x, padding)  # (N, C, Hp·Wp)
    w_taps = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(OC * KH * KW, C)
    z = np.matmul(w_taps, xf).reshape(N, OC, KH * KW, -1)
    length = (OH - 1) * Wp + OW  # flat positions up to the last output pixel
    acc = np.empty((N, OC, OH * Wp), dtype=z.dtype)
    for t in range(KH * KW):
        shift = (t // KW) * Wp + t % KW
        if t == 0:
            acc[:, :, :length] = z[:, :, t, shift : shift + length]
        else:
            acc[:, :, :length] += z[:, :, t, shift : shift + length]
    return np.ascontiguousarray(acc.reshape(N, OC, OH, Wp)[:, :, :, :OW])


def conv_transpose_forward(x: Any, w: Any, padding: Pair, out_size: Pair) -> Any:
    """y = conv_transpose2d(x, w) at stride 1 (x: (N, Ci, H, W) with Ci small, w: (Ci, Co,
    KH, KW)) as a conv2d of x zero-padded by K − 1 − P with the flipped, transposed kernel.

    conv_transpose2d scatters y[n, c, i + kh − PH, j + kw − PW] += x[n, o, i, j] · w[o, c,
    kh, kw], so y[n, c, h, v] = Σ_{o,kh,kw} x[n, o, h + PH − kh, v + PW − kw] · w[o, c, kh,
    kw]. With kh' = KH − 1 − kh and x_q = x padded by A = KH − 1 − PH rows (B = KW − 1 − PW
    columns) in front, x[n, o, h + PH − kh, ·] = x_q[n, o, h + kh', ·], hence

        cols[n, (o, kh', kw'), (h, v)] = x_q[n, o, h + kh', v + kw']       (unfold x: small)
        y[n, c, h, v] = Σ_{(o,kh',kw')} w[o, c, KH−1−kh', KW−1−kw'] · cols[n, (o,kh',kw'), (h, v)]

    one GEMM (Co × Ci·KH·KW) @ (Ci·KH·KW × OH·OW) per sample whose result is y itself:
    no col2im of a (Co·KH·KW × N·H·W) matrix. A negative A or B (P > K − 1) crops x.
    """
    N, Ci, H, W = x.shape
    _, Co, KH, KW = w.shape
    OH, OW = out_size
    A, B = KH - 1 - padding[0], KW - 1 - padding[1]
    xq = np.zeros((N, Ci, OH + KH - 1, OW + KW - 1), dtype=x.dtype)
    r0, r1 = max(0, -A), min(H, xq.shape[2] - A)  # rows of x that land inside xq
    c0, c1 = max(0, -B), min(W, xq.shape[3] - B)
    if r1 > r0 and c1 > c0:
        xq[:, :, r0 + A : r1 + A, c0 + B : c1 + B] = x[:, :, r0:r1, c0:c1]
    sn, sc, sh, sw = xq.strides
    view = np.lib.stride_tricks.as_strided(
        xq, (N, Ci, KH, KW, OH, OW), (sn, sc, sh, sw, sh, sw), writeable=False
    )
    cols = np.ascontiguousarray(view).reshape(N, Ci * KH * KW, OH * OW)
    w_flip = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(Co, -1)
    return np.matmul(w_flip, cols).reshape(N, Co, OH, OW)


def conv_weight_grad(x: Any, gy: Any, kernel: Pair, padding: Pair) -> Any:
    """dW of y = conv2d(x, W) at stride 1 given gy = dL/dy (N, OC, OH, OW), OC small:

        dW[o, c, kh, kw] = Σ_{n,i,j} gy[n, o, i, j] · x_p[n, c, i + kh, j + kw]
                         = Σ_{n,f} gy_f[n, o, f − (kh·Wp + kw)] · x_p[n, c, f]

    with x_p padded by P and flattened to f = r·Wp + s, and gy_f gy laid out in the same
    padded-width rows (gy[n, o, i, j] at i·Wp + j, zero at j ≥ OW, i ≥ OH and before 0).
    The substitution f = (i + kh)·Wp + (j + kw) is one-to-one onto the padded positions
    because j + kw < Wp and i + kh < Hp; every other f − (kh·Wp + kw) falls on a zero of
    gy_f (a column j ≥ OW of the previous row, or before the start). So gy is unfolded into
    columns over x's padded positions — the "gy zero-padded by K − 1" unfold, with
    kh' = KH − 1 − kh so that the taps are positive shifts of one buffer q that holds gy_f
    after (KH − 1)·Wp + KW − 1 zeros:

        cols[n, (o, kh', kw'), f] = q[n, o, f + kh'·Wp + kw']             (OC·KH·KW rows)
        dW_flipped (OC·KH·KW × C) = Σ_n cols[n] @ x_p[n]ᵀ,   dW[o, c, kh, kw] =
                                    dW_flipped[(o, KH−1−kh, KW−1−kw), c]

    No column matrix of x (C·KH·KW rows); the GEMM's contraction is N·Hp·Wp long.
    """
    N, C, H, W = x.shape
    _, OC, OH, OW = gy.shape
    KH, KW = kernel
    Wp = W + 2 * padding[1]
    xf = _padded_flat(x, padding)  # (N, C, L), L = Hp·Wp
    L = xf.shape[2]
    # q: gy behind KH − 1 zero rows and KW − 1 zero columns, in rows of width Wp = OW + KW − 1
    # (so flat offset (KH − 1)·Wp + KW − 1), one spare zero row at the end for the last shift
    q = np.zeros((N, OC, OH + 2 * KH - 1, Wp), dtype=gy.dtype)
    q[:, :, KH - 1 : KH - 1 + OH, KW - 1 :] = gy
    q = q.reshape(N, OC, -1)
    sn, so, se = q.strides
    view = np.lib.stride_tricks.as_strided(
        q, (N, OC, KH, KW, L), (sn, so, Wp * se, se, se), writeable=False
    )
    cols = np.ascontiguousarray(view).reshape(N, OC * KH * KW, L)
    rows = OC * KH * KW
    grad = None
    for n in range(N):  # per-sample GEMMs summed: no batch-inside copy of x
        if rows >= C:  # OpenBLAS splits a long-contraction product well with rows ≥ columns
            part = np.matmul(cols[n], xf[n].T)
        else:
            part = np.matmul(xf[n], cols[n].T).T
        grad = part if grad is None else grad + part
    grad = grad.reshape(OC, KH, KW, C)[:, ::-1, ::-1, :]
    return np.ascontiguousarray(grad.transpose(0, 3, 1, 2))
