"""Convolution by im2col + GEMM: conv2d, conv_transpose2d, and im2col/col2im themselves.

Shapes (PyTorch's layouts):
    conv2d:           x: (N, C, H, W),  weight: (OC, C/g, KH, KW)  ->  (N, OC, OH, OW)
                      OH = (H + 2·PH − DH·(KH − 1) − 1) // SH + 1
    conv_transpose2d: x: (N, C, H, W),  weight: (C, OC/g, KH, KW)  ->  (N, OC, OH, OW)
                      OH = (H − 1)·SH − 2·PH + DH·(KH − 1) + output_padding + 1

im2col unfolds every receptive field into a column, cols[n, c, kh, kw, oh, ow] =
x_padded[n, c, oh·SH + kh·DH, ow·SW + kw·DW] (layout (N, C, KH, KW, OH, OW), shared with
kernels/im2col.cu); a convolution is then a matrix product per group, W (OC, C·KH·KW) @ cols
(C·KH·KW, OH·OW). col2im is im2col's adjoint: it adds every column entry back onto the pixel
it came from. The conv ops ask for the columns with the batch axis moved inside,
(C, KH, KW, N, OH, OW), so that each product is ONE GEMM per group over the whole batch.
On the CPU, conv_transpose2d of a large map whose kernel the stride divides (DCGAN's 4×4,
stride 2) skips col2im: it unfolds x's windows instead and multiplies them by the kernel's
stride phases (``_conv_transpose_phases``), a GEMM with a longer contraction and no fold.

Two other CPU forms take over where they do less work, each in its own module and each
choosing itself per product (forward, input gradient, weight gradient):
  * winograd.py — 3×3 stride-1 and 4×4 stride-2 layers with at least 16 channels on both
    sides (DCGAN, pix2pix, PatchGAN, CycleGAN's residual blocks): Winograd F(2×2, r×r),
    16/36 or 9/16 of the multiplications;
  * conv_narrow.py — stride-1 layers with few output channels (CycleGAN's 7×7 64→3 output):
    the narrow side is unfolded instead of the wide one.

The three ops close over differentiation (Dumoulin & Visin 2016, "A guide to convolution
arithmetic"): conv2d's input gradient is conv_transpose2d with the same weight and vice
versa, and both weight gradients are one bilinear op ``_WeightGrad(x, grad)`` whose own
derivatives are again conv2d and conv_transpose2d. So every op here is differentiable to
any order (WGAN-GP, R1), with a single implementation of each product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.autograd import Function, Tensor, is_grad_enabled
from tinygan.backend import cuda_kernels, get_array_module, kernel_runner
from tinygan.backend.batched_matmul import batched_matmul
from tinygan.functions import conv_narrow, im2col_kernels, winograd

Pair = tuple[int, int]
IntOrPair = int | tuple[int, int] | list[int]

# ---------------------------------------------------------------- argument checks


def _pair(value: Any, name: str, op: str, minimum: int = 0) -> Pair:
    """An int or a pair of ints as a pair; raises ValueError below ``minimum``."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """(size + 2·padding − dilation·(kernel − 1) − 1) // stride + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(
    size: int, kernel: int, stride: int, padding: int, dilation: int, output_padding: int
) -> int:
    """(size − 1)·stride − 2·padding + dilation·(kernel − 1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def _geometry(op: str, stride: Any, padding: Any, dilation: Any) -> dict[str, Pair]:
    return dict(
        stride=_pair(stride, "stride", op, 1),
        padding=_pair(padding, "padding", op, 0),
        dilation=_pair(dilation, "dilation", op, 1),
    )


def _windows(size: Any, kernel: Any, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    """Number of window positions (OH, OW) along H and W."""
    oh, ow = (conv_output_size(*args) for args in zip(size, kernel, stride, padding, dilation))
    return oh, ow


def _check_4d(op: str, x: Tensor, weight: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D, got shape {weight.shape}")


# ---------------------------------------------------------------- im2col / col2im on arrays


def im2col_array(
    x: Any,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    out_size: Pair | None = None,
    batch_first: bool = True,
) -> Any:
    """Unfold x (N, C, H, W) into cols (N, C, KH, KW, OH, OW), contiguous.

    One strided view of the zero-padded input (no copy) and one copy. ``out_size`` defaults
    to the conv output size; it may be smaller (a conv_transpose's gradient, whose rows past
    its input size are cut). ``batch_first=False`` gives (C, KH, KW, N, OH, OW) instead, the
    layout of the one-GEMM-per-group products.
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW), (DH, DW) = kernel, stride, padding, dilation
    if out_size is None:
        out_size = conv_output_size(H, KH, SH, PH, DH), conv_output_size(W, KW, SW, PW, DW)
    OH, OW = out_size
    runner = kernel_runner(x)
    if runner is not None:  # kernels/im2col.cu: batch-first columns, padding in the kernel
        cols = cuda_kernels.im2col_gpu(x, KH, KW, stride, padding, dilation, runner)
        cols = cols[:, :, :, :, :OH, :OW]
        return xp.ascontiguousarray(cols if batch_first else cols.transpose(1, 2, 3, 0, 4, 5))
    if im2col_kernels.usable(x):  # NumPy: compiled loops, one pass, in parallel
        return im2col_kernels.im2col(x, kernel, stride, padding, dilation, out_size, batch_first)
    if PH or PW:
        padded = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
        padded[:, :, PH : PH + H, PW : PW + W] = x
        x = padded
    sn, sc, sh, sw = x.strides
    view = xp.lib.stride_tricks.as_strided(
        x, (N, C, KH, KW, OH, OW), (sn, sc, sh * DH, sw * DW, sh * SH, sw * SW)
    )
    return xp.ascontiguousarray(view if batch_first else view.transpose(1, 2, 3, 0, 4, 5))


def col2im_array(
    cols: Any,
    size: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    width: int | None = None,
    batch_first: bool = True,
) -> Any:
    """Fold cols (N, C, KH, KW, OH, CW) back into x (N, C, H, W), summing overlaps.

    ``batch_first=False``: cols are laid out (C, KH, KW, N, OH, CW), as one GEMM per group
    over the whole batch writes them. ``width`` is the true OW when that GEMM was fed
    zero-padded rows (CW > OW, columns past OW are zero; see ``_col_width``). With
    CW ≥ OW + (KW−1)·DW // SW every tap's rows land in one contiguous run of a per-phase
    buffer, so the fold is KH·KW long contiguous adds instead of KH·KW short strided ones
    (1.1–1.3× faster on the DCGAN layers), then one strided copy per stride phase.
    """
    xp = get_array_module(cols)
    if not batch_first:
        cols = cols.transpose(3, 0, 1, 2, 4, 5)  # a (N, C, KH, KW, OH, CW) view
    N, C, KH, KW, OH, CW = cols.shape
    OW = CW if width is None else width
    (H, W), (SH, SW), (PH, PW), (DH, DW) = size, stride, padding, dilation
    runner = kernel_runner(cols)
    if runner is not None:  # kernels/im2col.cu's col2im_kernel: one thread per pixel, a gather
        return cuda_kernels.col2im_gpu(cols[..., :OW], size, stride, padding, dilation, runner)
    if im2col_kernels.usable(cols):  # NumPy: compiled loops, one pass, in parallel
        layout = cols.transpose(1, 2, 3, 0, 4, 5) if not batch_first else cols
        return im2col_kernels.col2im(layout, size, stride, padding, dilation, OW, batch_first)
    if CW < OW + (KW - 1) * DW // SW:  # rows too narrow to fold flat: strided adds
        out = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=cols.dtype)
        for i in range(KH):
            for j in range(KW):
                rows = slice(i * DH, i * DH + SH * (OH - 1) + 1, SH)
                columns = slice(j * DW, j * DW + SW * (OW - 1) + 1, SW)
                out[:, :, rows, columns] += cols[:, :, i, j, :, :OW]
        return xp.ascontiguousarray(out[:, :, PH : PH + H, PW : PW + W])
    # Tap (i, j) hits output row i·DH + SH·oh: stride phase a = i·DH % SH, row i·DH // SH + oh
    # of that phase's grid. One flat buffer of R rows × CW per phase (a, b), its (N, C) axes
    # in the memory order of cols. A phase's first tap is copied in (and only the rest of
    # its buffer zeroed) rather than added to zeros: folds 1.1-1.2x faster on DCGAN shapes.
    R = OH + (KH - 1) * DH // SH + 1
    L = OH * CW
    src = cols.reshape(N, C, KH, KW, L)
    acc = xp.empty((SH, SW) + ((N, C) if batch_first else (C, N)) + (R * CW,), cols.dtype)
    acc = acc if batch_first else acc.transpose(0, 1, 3, 2, 4)
    written = set()
    for i in range(KH):
        di, a = divmod(i * DH, SH)
        for j in range(KW):
            dj, b = divmod(j * DW, SW)
            start = di * CW + dj
            if (a, b) in written:
                acc[a, b, :, :, start : start + L] += src[:, :, i, j]
                continue
            written.add((a, b))
            acc[a, b, :, :, :start] = 0
            acc[a, b, :, :, start : start + L] = src[:, :, i, j]
            acc[a, b, :, :, start + L :] = 0
    for a in range(SH):
        for b in range(SW):
            if (a, b) not in written:
                acc[a, b] = 0
    acc = acc.reshape(SH, SW, N, C, R, CW)
    out = xp.zeros((N, C, H, W), dtype=cols.dtype)
    for a in range(SH):
        rows_out, rows_acc = _phase_slices(a, SH, PH, H, R)
        for b in range(SW):
            cols_out, cols_acc = _phase_slices(b, SW, PW, W, CW)
            out[:, :, rows_out, cols_out] = acc[a, b, :, :, rows_acc, cols_acc]
    return out


def _phase_slices(phase: int, stride: int, pad: int, size: int, length: int) -> tuple:
    """Where phase ``phase`` (padded positions phase + stride·t, t < length) lands in the
    unpadded output of ``size``: (output slice, buffer slice)."""
    first = -(-(pad - phase) // stride) if pad > phase else 0  # first t inside the output
    last = min(length - 1, (size - 1 + pad - phase) // stride)  # last t inside
    if last < first:
        return slice(0, 0), slice(0, 0)
    start = phase + stride * first - pad
    return slice(start, start + stride * (last - first) + 1, stride), slice(first, last + 1)


def _col_width(OW: int, KW: int, SW: int, DW: int) -> int:
    """Row width for cols that col2im will fold: OW + (KW−1)·DW // SW zero-padded columns
    when that costs the GEMM at most a quarter more work (the flat fold), else OW."""
    wide = OW + (KW - 1) * DW // SW
    return wide if 4 * (wide - OW) <= OW else OW


# ---------------------------------------------------------------- the three products
# Each is one GEMM per group over the whole batch, so the columns and the images enter the
# GEMM with the batch axis inside: (C·KH·KW, N·OH·OW). A single large GEMM keeps the BLAS
# threads busy where one small GEMM per sample would make them wait on each other.


def _covers(size: Any, kernel: Any, padding: Pair, dilation: Pair, groups: int) -> bool:
    """Whether the kernel covers the whole unpadded map (DCGAN's D5 and G1, a 4×4 kernel on
    a 4×4 map): then the convolution is a dense layer, one product on x as it is laid out,
    with no columns to build (D5 forward + backward, batch 64: 1.19 -> 0.51 ms)."""
    return tuple(size) == tuple(kernel) and padding == (0, 0) and dilation == (1, 1) and groups == 1


def _batch_last(x: Any, width: int | None = None) -> Any:
    """x (N, C, H, W) -> (C, N, H, width), zero-padded on the right to ``width``, one copy."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    out = xp.empty((C, N, H, width or W), dtype=x.dtype)
    out[..., :W] = x.transpose(1, 0, 2, 3)
    out[..., W:] = 0
    return out


def _conv_forward(
    x: Any,
    w: Any,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    out_size: Pair,
    cols: Any = None,
) -> Any:
    """y = conv2d(x, w): y_g (OC/g, N·OH·OW) = W_g (OC/g, C/g·KH·KW) @ cols_g.

    The product has few rows (OC/g) and many columns (N·OH·OW); with a long contraction it
    is computed as its transpose, y_gᵀ = cols_gᵀ @ W_gᵀ (see _transposed_is_faster). With
    short columns it runs per sample instead, y[n] = W @ cols[n] (see _per_sample); ``cols``,
    when given, are in the layout _per_sample picks.
    """
    fast = cols is None and winograd.variant_for(
        x, w.shape[2:], stride, padding, dilation, groups, w.shape[1::-1]
    )
    if fast:
        return winograd.conv2d(x, w, fast, stride, padding, out_size)
    if cols is None and _covers(x.shape[2:], w.shape[2:], padding, dilation, groups):
        return (x.reshape(x.shape[0], -1) @ w.reshape(w.shape[0], -1).T)[:, :, None, None]
    if conv_narrow.use_forward(x, w, stride, padding, dilation, groups, out_size, cols):
        return conv_narrow.conv_forward(x, w, padding, out_size)  # few output channels: kn2row
    xp = get_array_module(x)
    N = x.shape[0]
    OC, Cg, KH, KW = w.shape
    OH, OW = out_size
    per_sample = _per_sample(x, groups, Cg * KH * KW, OH * OW)
    if cols is None:
        geometry = (KH, KW), stride, padding, dilation, out_size
        cols = im2col_array(x, *geometry, batch_first=per_sample)
    if per_sample:
        y = _sample_products(xp, w.reshape(OC, -1), cols.reshape(N, Cg * KH * KW, OH * OW))
        return y.reshape(N, OC, OH, OW)
    cols = cols.reshape(groups, Cg * KH * KW, -1)
    w = w.reshape(groups, OC // groups, -1)
    if _transposed_is_faster(OC // groups, cols.shape[2], Cg * KH * KW):
        yt = xp.matmul(cols.transpose(0, 2, 1), w.transpose(0, 2, 1))  # (g, N·OH·OW, OC/g)
        y = yt.reshape(groups, N, OH * OW, OC // groups).transpose(1, 0, 3, 2)
        return xp.ascontiguousarray(y).reshape(N, OC, OH, OW)
    y = xp.matmul(w, cols)
    return xp.ascontiguousarray(y.reshape(OC, N, OH, OW).transpose(1, 0, 2, 3))


def _sample_products(xp: Any, a: Any, b: Any) -> Any:
    """The per-sample products a @ b[n] (or a[n] @ b[n]): on NumPy, one core per product
    (backend/batched_matmul.py)."""
    return batched_matmul(a, b) if xp is np else xp.matmul(a, b)


def _per_sample(x: Any, groups: int, rows: int, positions: int) -> bool:
    """Whether a product of the im2col path runs as one GEMM per sample, on the batch-first
    layout (x, y and dy as they are), rather than as one GEMM over the whole batch.

    The whole-batch GEMM needs its operands batch-last: a transposed copy of the output on
    the way out (forward), of dy on the way in (both gradients). With short columns
    (``rows`` = C/g·KH·KW values per output position, at most _PER_SAMPLE_MAX_ROWS) the
    products are cheap and those copies cost more than they do. DCGAN's D1 (3->64, 4x4
    stride 2, 64x64 maps, batch 64; rows 48), whole batch -> per sample: forward 21 -> 8
    ms, weight gradient 12.5 -> 9.5 ms, input gradient 26 -> 11.5 ms. With long rows the
    big GEMM wins (a 64->64 3x3 layer: weight gradient 59 vs 62 ms, input gradient 85 vs
    92), and on small maps (``positions`` = OH·OW below _PER_SAMPLE_MIN_POSITIONS) the
    per-sample GEMMs are too small to thread well (8x8 maps: 1.3-1.4x slower). CPU only:
    these are OpenBLAS measurements.
    """
    return (
        type(x) is np.ndarray
        and x.shape[0] > 1
        and groups == 1
        and rows <= _PER_SAMPLE_MAX_ROWS
        and positions >= _PER_SAMPLE_MIN_POSITIONS
    )


_PER_SAMPLE_MAX_ROWS = 128
_PER_SAMPLE_MIN_POSITIONS = 256


def _transposed_is_faster(rows: int, cols: int, contraction: int) -> bool:
    """Whether OpenBLAS runs a product with fewer rows than columns faster as its transpose
    (many rows), plus the copy that lays the result back out.

    A long contraction split over few rows is what OpenBLAS threads badly: DCGAN's
    256->512 forward (512 rows, contraction 4096) ran at 23 GFLOP/s, its transpose at 45;
    CycleGAN's 7x7 stem weight gradient (contraction 16384) took 2.2 ms transposed against
    3.5 ms. With a short contraction the product is bound by its result, and the transposed
    copy of that result costs more than the product gains: CycleGAN's PatchGAN 256->512
    weight gradient (512 x 4096 result, contraction 225) took 15 ms transposed against 5.1
    ms direct, its 3x3 stride-2 64->128 forward (contraction 576) 3.8 against 3.2 ms,
    DCGAN's D1 forward (48) 7.8 against 5.7 ms. Between the two, a 128->256 forward and
    weight gradient with contraction 1024-1152 ran 0.9x direct, a 64->128 weight gradient
    with contraction 4096 1.05x.
    """
    return rows < cols and contraction >= _TRANSPOSED_MIN_K


_TRANSPOSED_MIN_K = 2048


def _conv_transpose_forward(
    x: Any, w: Any, stride: Pair, padding: Pair, dilation: Pair, groups: int, out_size: Pair
) -> Any:
    """y = conv_transpose2d(x, w): cols_g = W_gᵀ (OC/g·KH·KW, C/g) @ x_g, then col2im
    (or, for large maps, by stride phases: see _conv_transpose_phases)."""
    fast = winograd.variant_for(x, w.shape[2:], stride, padding, dilation, groups, w.shape[1::-1])
    if fast:
        return winograd.conv_transpose2d(x, w, fast, stride, padding, out_size)
    if conv_narrow.use_transpose(x, w, stride, padding, dilation, groups, out_size):
        return conv_narrow.conv_transpose_forward(x, w, padding, out_size)  # few input channels
    if _covers(out_size, w.shape[2:], padding, dilation, groups):  # x is 1×1
        x, w2 = x.reshape(x.shape[0], -1), w.reshape(w.shape[0], -1)
        # OpenBLAS ran the one-term product (D5's input gradient) 10x slower than a multiply
        y = x * w2 if x.shape[1] == 1 else x @ w2
        return y.reshape(-1, *w.shape[1:])
    grid = _phase_grid(x, w, stride, padding, dilation, groups, out_size)
    if grid is not None:
        return _conv_transpose_phases(x, w, stride, padding, groups, out_size, grid)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    _, OCg, KH, KW = w.shape
    if _per_sample(x, groups, OCg * KH * KW, H * W):
        x = xp.ascontiguousarray(x).reshape(N, C, H * W)
        cols = _sample_products(xp, w.reshape(C, -1).T, x)
        cols = cols.reshape(N, OCg, KH, KW, H, W)
        return col2im_array(cols, out_size, stride, padding, dilation)
    width = _col_width(W, KW, stride[1], dilation[1])
    x = _batch_last(x, width).reshape(groups, C // groups, -1)
    wt = w.reshape(groups, C // groups, OCg * KH * KW).transpose(0, 2, 1)
    cols = xp.matmul(wt, x).reshape(groups * OCg, KH, KW, N, H, width)
    return col2im_array(cols, out_size, stride, padding, dilation, W, batch_first=False)


# When the stride-phase form of conv_transpose2d is used (see _conv_transpose_phases): its
# product must have at least this many rows (SH·SW·OC/g; DCGAN's G5, 12 rows, ran 1.7x
# slower) and at most this much more work than the col2im form's (window grid vs input:
# G4 at 17²/16² ran 0.6-0.85x the time, G3 at 9²/8² 0.99x, G2 at 5²/4² 1.24x).
_PHASE_MIN_ROWS = 64
_PHASE_MAX_GROWTH = 1.15


def _phase_grid(
    x: Any, w: Any, stride: Pair, padding: Pair, dilation: Pair, groups: int, out_size: Pair
) -> tuple | None:
    """Per axis (first window m0, window count M, input offset) of the stride-phase form of
    conv_transpose2d, or None where the col2im form is used instead."""
    _, OCg, KH, KW = w.shape
    if kernel_runner(x) is not None or get_array_module(x) is not np or dilation != (1, 1):
        return None
    if KH % stride[0] or KW % stride[1] or stride == (1, 1):
        return None
    if stride[0] * stride[1] * OCg < _PHASE_MIN_ROWS:
        return None
    grid = []
    for out, k, s, p in zip(out_size, (KH, KW), stride, padding):
        m0 = p // s  # output o is phase (o + p) % s of window (o + p) // s
        windows = (out - 1 + p) // s - m0 + 1
        grid.append((m0, windows, m0 - (k // s - 1)))
    if grid[0][1] * grid[1][1] > _PHASE_MAX_GROWTH * x.shape[2] * x.shape[3]:
        return None
    return tuple(grid)


def _conv_transpose_phases(
    x: Any, w: Any, stride: Pair, padding: Pair, groups: int, out_size: Pair, grid: tuple
) -> Any:
    """conv_transpose2d as one GEMM over stride phases, for kernels that the stride divides.

    Along an axis with kernel K = Q·S, output o = i·S + k − P collects x[i]·w[k]; writing
    o + P = m·S + r and k = q·S + r, output o of phase r is Σ_q x[m − q]·w[q·S + r]: a
    Q-tap correlation of x, the same Q input pixels for every phase of window m. So the
    unfolded Q×Q windows of x (C/g·Q·Q rows) times the S·S per-phase kernels stacked
    (S·S·OC/g rows) give every output pixel, and the phases interleave into y with one
    strided copy each. Against the col2im form, the GEMM's contraction is Q·Q = 4 times
    longer (OpenBLAS ran the C/g-long one at half its rate) and there is no fold; it
    computes window positions the output does not use (M ≥ H), hence _PHASE_MAX_GROWTH.
    """
    N, C, H, W = x.shape
    _, OCg, KH, KW = w.shape
    SH, SW = stride
    QH, QW, Cg = KH // SH, KW // SW, C // groups
    (mh, MH, oh), (mw, MW, ow) = grid
    # the windows' inputs, channels first: xq[c, n, u, v] = x[n, c, u + oh, v + ow] (0 outside)
    xq = np.zeros((C, N, MH + QH - 1, MW + QW - 1), dtype=x.dtype)
    u0, u1 = max(0, -oh), min(xq.shape[2], H - oh)
    v0, v1 = max(0, -ow), min(xq.shape[3], W - ow)
    xq[:, :, u0:u1, v0:v1] = x[:, :, u0 + oh : u1 + oh, v0 + ow : v1 + ow].transpose(1, 0, 2, 3)
    sc, sn, sh, sw = xq.strides
    view = np.lib.stride_tricks.as_strided(xq, (C, QH, QW, N, MH, MW), (sc, sh, sw, sn, sh, sw))
    cols = np.ascontiguousarray(view).reshape(groups, Cg * QH * QW, N * MH * MW)
    # window element e pairs with tap q = Q − 1 − e: wph[g, r, s, o, c, e, f]
    w7 = w.reshape(groups, Cg, OCg, QH, SH, QW, SW)[:, :, :, ::-1, :, ::-1, :]
    wph = np.ascontiguousarray(w7.transpose(0, 4, 6, 2, 1, 3, 5))
    y = np.matmul(wph.reshape(groups, SH * SW * OCg, -1), cols)
    y = y.reshape(groups, SH, SW, OCg, N, MH, MW)
    out = np.empty((N, groups, OCg) + tuple(out_size), dtype=x.dtype)
    for a in range(SH):
        rows_out, rows = _phase_slices(a, SH, padding[0], out_size[0], mh + MH)
        for b in range(SW):
            cols_out, columns = _phase_slices(b, SW, padding[1], out_size[1], mw + MW)
            part = y[
                :,
                a,
                b,
                :,
                :,
                rows.start - mh : rows.stop - mh,
                columns.start - mw : columns.stop - mw,
            ]
            out[:, :, :, rows_out, cols_out] = part.transpose(2, 0, 1, 3, 4)
    return out.reshape(N, groups * OCg, *out_size)


def _conv_weight_grad(
    x: Any,
    gy: Any,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    cols: Any = None,
) -> Any:
    """dL/dW of y = conv2d(x, W) given gy = dL/dy: Σ_n,oh,ow gy ⊗ cols, one GEMM per group
    over the whole batch, gy_g (OC/g, N·OH·OW) @ cols_gᵀ (N·OH·OW, C/g·KH·KW).

    With few rows (OC/g) against its columns (C/g·KH·KW) and a long contraction (N·OH·OW)
    it is computed as its transpose, dWᵀ = cols_g @ gy_gᵀ (see _transposed_is_faster). With
    short columns it runs per sample, dW = Σ_n gy[n] @ cols[n]ᵀ (see _per_sample); ``cols``,
    when given, are in the layout _per_sample picks.
    """
    channels = x.shape[1], gy.shape[1]
    fast = cols is None and winograd.variant_for(
        x, kernel, stride, padding, dilation, groups, channels
    )
    if fast:
        return winograd.weight_grad(x, gy, fast, kernel, stride, padding)
    if cols is None and _covers(x.shape[2:], kernel, padding, dilation, groups):  # gy is 1×1
        gy = get_array_module(gy).ascontiguousarray(gy).reshape(gy.shape[0], -1)
        return (gy.T @ x.reshape(x.shape[0], -1)).reshape(-1, *x.shape[1:])
    if conv_narrow.use_weight_grad(x, gy, kernel, stride, padding, dilation, groups, cols):
        return conv_narrow.conv_weight_grad(x, gy, kernel, padding)  # few output channels
    xp = get_array_module(x)
    N, C = x.shape[:2]
    OC = gy.shape[1]
    positions = gy.shape[2] * gy.shape[3]
    per_sample = _per_sample(x, groups, C // groups * kernel[0] * kernel[1], positions)
    if cols is None:
        geometry = kernel, stride, padding, dilation, gy.shape[2:]
        cols = im2col_array(x, *geometry, batch_first=per_sample)
    if per_sample:
        cols = cols.reshape(N, -1, positions).transpose(0, 2, 1)
        grad = _sample_products(xp, xp.ascontiguousarray(gy).reshape(N, OC, positions), cols)
        return grad.sum(axis=0).reshape(OC, C, *kernel)
    cols = cols.reshape(groups, -1, cols.shape[3] * cols.shape[4] * cols.shape[5])
    gy = _batch_last(gy).reshape(groups, OC // groups, -1)
    if _transposed_is_faster(gy.shape[1], cols.shape[1], gy.shape[2]):
        grad = xp.ascontiguousarray(xp.matmul(cols, gy.transpose(0, 2, 1)).transpose(0, 2, 1))
    else:
        grad = xp.matmul(gy, cols.transpose(0, 2, 1))
    return grad.reshape(OC, C // groups, *kernel)


# ---------------------------------------------------------------- differentiable ops


class _Convolution(Function):
    """The forward both convolutions share: y = product(x, W) + b, keeping x and W."""

    product: Any = None  # _conv_forward or _conv_transpose_forward

    def forward(self, x: Any, w: Any, b: Any, out_size: Pair, **params: Any) -> Any:
        self.params, self.in_size, self.kernel = params, x.shape[2:], w.shape[2:]
        self.save_for_backward(x, w)
        y = type(self).product(x, w, out_size=out_size, **params)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y


class Conv2d(_Convolution):
    """y = conv2d(x, W) + b; dx = conv_transpose2d(dy, W), dW = _WeightGrad(x, dy), db = Σ dy."""

    product = _conv_forward

    def backward(self, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w = self.saved_tensors
        need_x, need_w, need_b = self.needs_input_grad
        gx = gw = gb = None
        if need_x and need_w and not is_grad_enabled():
            gx, gw = _winograd_backward(winograd.conv2d_backward, x, w, grad, self.params)
        if need_x and gx is None:
            gx = ConvTranspose2d.apply(grad, w, None, out_size=self.in_size, **self.params)
        if need_w and gw is None:
            gw = _WeightGrad.apply(x, grad, kernel=self.kernel, **self.params)
        if need_b:
            gb = grad.sum(axis=(0, 2, 3))
        return gx, gw, gb


def _winograd_backward(backward: Any, x: Tensor, w: Tensor, grad: Tensor, params: dict) -> tuple:
    """(dx, dW) at first order from winograd.conv2d_backward or conv_transpose2d_backward
    (which share one transform between the two), or (None, None) where Winograd does not
    apply. The channels are those of the conv2d the layer belongs to, as in variant_for."""
    geometry = params["stride"], params["padding"], params["dilation"], params["groups"]
    variant = winograd.variant_for(x.data, w.shape[2:], *geometry, w.shape[1::-1])
    if not variant:
        return None, None
    gx, gw = backward(x.data, w.data, grad.data, variant, params["stride"], params["padding"])
    return Tensor._wrap(gx), Tensor._wrap(gw)


class ConvTranspose2d(_Convolution):
    """y = conv_transpose2d(x, W) + b, the adjoint of conv2d in x:
    dx = conv2d(dy, W), dW = _WeightGrad(dy, x), db = Σ dy."""

    product = _conv_transpose_forward

    def backward(self, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w = self.saved_tensors
        need_x, need_w, need_b = self.needs_input_grad
        gx = gw = gb = None
        if need_x and need_w and not is_grad_enabled():
            gx, gw = _winograd_backward(winograd.conv_transpose2d_backward, x, w, grad, self.params)
            if gx is None:
                gx, gw = self._shared_columns(grad.data, x.data, w.data)
        if need_x and gx is None:
            gx = Conv2d.apply(grad, w, None, out_size=self.in_size, **self.params)
        if need_w and gw is None:  # <dy, convT(x, W)> = <conv2d(dy, W), x>: conv2d(dy)'s dW
            gw = _WeightGrad.apply(grad, x, kernel=self.kernel, **self.params)
        if need_b:
            gb = grad.sum(axis=(0, 2, 3))
        return gx, gw, gb

    def _shared_columns(self, gy: Any, x: Any, w: Any) -> tuple[Tensor, Tensor]:
        """dx and dW at first order from ONE im2col of dy: both conv2d(dy, W) and the
        weight gradient of conv2d(dy) multiply the same columns, and unfolding dy (the
        layer's output gradient, the largest array here) is the costliest copy of the
        backward. Saves one im2col per transposed convolution: DCGAN's G4, G3, G2 forward +
        backward took 0.81x, 0.92x, 0.96x the time of computing them separately."""
        p = self.params
        geometry = p["stride"], p["padding"], p["dilation"]
        cols = None  # a kernel covering the map multiplies dy as it is: no columns to share
        if not _covers(gy.shape[2:], self.kernel, p["padding"], p["dilation"], p["groups"]):
            rows = gy.shape[1] // p["groups"] * self.kernel[0] * self.kernel[1]
            positions = self.in_size[0] * self.in_size[1]
            layout = _per_sample(gy, p["groups"], rows, positions)  # as the products will
            cols = im2col_array(gy, self.kernel, *geometry, self.in_size, batch_first=layout)
        gx = _conv_forward(gy, w, out_size=self.in_size, cols=cols, **self.params)
        gw = _conv_weight_grad(gy, x, self.kernel, cols=cols, **self.params)
        return Tensor._wrap(gx), Tensor._wrap(gw)


class _WeightGrad(Function):
    """G(x, gy) = dL/dW of conv2d(x, W) for output gradient gy; bilinear, so
    dG/dx · H = conv_transpose2d(gy, H) and dG/dgy · H = conv2d(x, H)."""

    def forward(self, x: Any, gy: Any, kernel: Pair, **params: Any) -> Any:
        self.params, self.x_size, self.gy_size = params, x.shape[2:], gy.shape[2:]
        self.save_for_backward(x, gy)
        return _conv_weight_grad(x, gy, kernel, **params)

    def backward(self, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, gy = self.saved_tensors
        need_x, need_gy = self.needs_input_grad
        gx = ggy = None
        if need_x:
            gx = ConvTranspose2d.apply(gy, grad, None, out_size=self.x_size, **self.params)
        if need_gy:
            ggy = Conv2d.apply(x, grad, None, out_size=self.gy_size, **self.params)
        return gx, ggy


def _same_padding(op: str, kernel: Pair, stride: Pair, dilation: Pair, padding: Any) -> Pair:
    """'valid' -> 0; 'same' (stride 1) -> the padding that keeps H and W (symmetric only)."""
    if padding == "valid":
        return 0, 0
    if padding != "same":
        raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid': {padding!r}")
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    if any(t % 2 for t in total):
        raise ValueError(
            f"{op}: padding='same' with kernel {kernel} and dilation {dilation} would need "
            "asymmetric padding; pad the input explicitly with pad()"
        )
    return total[0] // 2, total[1] // 2


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation, as PyTorch's ``F.conv2d`` (LeCun et al. 1998).

    y[n, o, i, j] = b[o] + Σ_{c ∈ group(o), kh, kw} W[o, c, kh, kw] ·
                    x_pad[n, c, i·SH + kh·DH, j·SW + kw·DW]

    x: (N, C, H, W), weight: (OC, C/groups, KH, KW), bias: (OC,) -> (N, OC, OH, OW).
    ``padding`` is an int, a pair, "valid" (0) or "same" (stride 1 only).
    """
    op = "conv2d"
    _check_4d(op, x, weight)
    C, OC, (Cg, KH, KW) = x.shape[1], weight.shape[0], weight.shape[1:]
    if isinstance(padding, str):
        s, d = _pair(stride, "stride", op, 1), _pair(dilation, "dilation", op, 1)
        padding = _same_padding(op, (KH, KW), s, d, padding)
    params = _geometry(op, stride, padding, dilation)
    _check_groups(op, C, OC, groups)
    if Cg * groups != C:
        raise ValueError(
            f"{op}: weight {weight.shape} expects {Cg * groups} input channels "
            f"({Cg} per group × {groups} groups), input {x.shape} has {C}"
        )
    if bias is not None and bias.shape != (OC,):
        raise ValueError(f"{op}: bias {bias.shape} does not match {OC} output channels")
    out = _windows(x.shape[2:], (KH, KW), **params)
    _check_positive(op, out, x, (KH, KW), params)
    return Conv2d.apply(x, weight, bias, out_size=out, groups=groups, **params)


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
) -> Tensor:
    """Transposed convolution ("deconvolution"), as PyTorch's ``F.conv_transpose2d``: the
    adjoint of conv2d in its input (Zeiler et al. 2010; Dumoulin & Visin 2016).

    y[n, o, i·SH + kh·DH − PH, j·SW + kw·DW − PW] += Σ_{c ∈ group(o)} x[n, c, i, j] ·
                                                      W[c, o, kh, kw]

    x: (N, C, H, W), weight: (C, OC/groups, KH, KW), bias: (OC,) -> (N, OC, OH, OW) with
    OH = (H − 1)·SH − 2·PH + DH·(KH − 1) + output_padding + 1. ``output_padding`` (< stride
    or < dilation) picks among the input sizes a strided conv2d maps to the same size.
    """
    op = "conv_transpose2d"
    _check_4d(op, x, weight)
    C, (Cw, OCg, KH, KW) = x.shape[1], weight.shape
    params = _geometry(op, stride, padding, dilation)
    output_padding = _pair(output_padding, "output_padding", op, 0)
    OC = OCg * groups
    _check_groups(op, C, OC, groups)
    if Cw != C:
        raise ValueError(
            f"{op}: weight {weight.shape} expects {Cw} input channels, input {x.shape} has {C}"
        )
    steps, dilations = params["stride"], params["dilation"]
    if any(o >= s and o >= d for o, s, d in zip(output_padding, steps, dilations)):
        raise ValueError(
            f"{op}: output_padding {output_padding} must be smaller than stride {steps} "
            f"or dilation {dilations}"
        )
    if bias is not None and bias.shape != (OC,):
        raise ValueError(f"{op}: bias {bias.shape} does not match {OC} output channels")
    out = tuple(
        conv_transpose_output_size(*args)
        for args in zip(x.shape[2:], (KH, KW), *params.values(), output_padding)
    )
    _check_positive(op, out, x, (KH, KW), params)
    return ConvTranspose2d.apply(x, weight, bias, out_size=out, groups=groups, **params)


def _check_positive(op: str, out: tuple, x: Tensor, kernel: Pair, params: dict) -> None:
    if min(out) <= 0:
        raise ValueError(
            f"{op}: output size {out} is not positive for input {x.shape}, kernel {kernel}, "
            + ", ".join(f"{k} {v}" for k, v in params.items())
        )


def _check_groups(op: str, C: int, OC: int, groups: int) -> None:
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if C % groups or OC % groups:
        raise ValueError(
            f"{op}: groups={groups} must divide input channels {C} and output channels {OC}"
        )


# ---------------------------------------------------------------- im2col / col2im as ops


class Im2Col(Function):
    """cols = im2col(x); its adjoint col2im is the backward."""

    def forward(self, x: Any, kernel: Pair, out_size: Pair, **params: Pair) -> Any:
        self.params, self.size = params, x.shape[2:]
        return im2col_array(x, kernel, out_size=out_size, **params)

    def backward(self, grad: Tensor) -> Tensor:
        return Col2Im.apply(grad, size=self.size, **self.params)


class Col2Im(Function):
    """x = col2im(cols), summing overlapping taps; its adjoint im2col is the backward."""

    def forward(self, cols: Any, size: Pair, **params: Pair) -> Any:
        self.params, self.kernel, self.out_size = params, cols.shape[2:4], cols.shape[4:]
        return col2im_array(cols, size, **params)

    def backward(self, grad: Tensor) -> Tensor:
        return Im2Col.apply(grad, kernel=self.kernel, out_size=self.out_size, **self.params)


def im2col(
    x: Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> Tensor:
    """Unfold patches: x (N, C, H, W) -> cols (N, C, KH, KW, OH, OW), with
    cols[n, c, kh, kw, oh, ow] = x_pad[n, c, oh·SH + kh·DH, ow·SW + kw·DW] (zero outside)."""
    if x.ndim != 4:
        raise ValueError(f"im2col: input must be (N, C, H, W), got shape {x.shape}")
    kernel = _pair(kernel_size, "kernel_size", "im2col", 1)
    params = _geometry("im2col", stride, padding, dilation)
    out = _windows(x.shape[2:], kernel, **params)
    if min(out) <= 0:
        raise ValueError(f"im2col: output size {out} is not positive for input {x.shape}")
    return Im2Col.apply(x, kernel=kernel, out_size=out, **params)


def col2im(
    cols: Tensor,
    output_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> Tensor:
    """Fold cols (N, C, KH, KW, OH, OW) back to x (N, C, H, W): every entry is added to the
    pixel it was read from (the adjoint of im2col), so overlapping windows sum."""
    if cols.ndim != 6:
        raise ValueError(f"col2im: cols must be (N, C, KH, KW, OH, OW), got shape {cols.shape}")
    size = _pair(output_size, "output_size", "col2im", 1)
    params = _geometry("col2im", stride, padding, dilation)
    fits = _windows(size, cols.shape[2:4], **params)
    if fits[0] < cols.shape[4] or fits[1] < cols.shape[5]:
        raise ValueError(
            f"col2im: cols {cols.shape} hold {cols.shape[4:]} windows but output_size {size} "
            f"has room for {fits}"
        )
    return Col2Im.apply(cols, size=size, **params)
