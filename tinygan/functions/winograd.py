"""Winograd convolution: fewer multiplications for small kernels (CPU, NumPy + Numba).

Winograd's minimal filtering algorithm F(m, r) computes m outputs of an r-tap correlation
from α = m + r − 1 inputs with α multiplications instead of m·r:

    y = Aᵀ [ (G g) ⊙ (Bᵀ d) ]        (one dimension; g: r taps, d: α inputs, y: m outputs)
    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A   (nested, for an m×m output tile of a 2-D correlation)

(Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks"). Over channels the
element-wise product becomes α² independent matrix products, one per point (k1, k2):

    V[k] = Bᵀ d B  per input tile and channel        (T, C)   T = tiles over the batch
    U[k] = G w Gᵀ  per output and input channel      (OC, C)
    M[k] = V[k] @ U[k]ᵀ                              (T, OC)   α² GEMMs
    y    = Aᵀ M A  per output tile

F(2×2, 3×3) does a 3×3 layer's GEMM work in 16/36 of the multiplications, F(2×2, 2×2) a
2×2 layer's in 9/16. A stride-S convolution whose kernel the stride divides (DCGAN's 4×4,
stride 2) is a stride-1 convolution with an r = K/S kernel over the S² stride phases of the
input taken as channels (winograd_kernels.py, "phase channel"), so it runs as F(2×2, 2×2).

The algorithm is linear in d and in g, so the backward passes are its transposes, with the
same U: the input gradient (and conv_transpose2d, which is that adjoint) is
dx = Σ_tiles B [(A gy Aᵀ) @ U] Bᵀ, and the weight gradient is dW = Gᵀ [Σ_t (A gy Aᵀ)ᵀ V] G.
Each pass is three memory-bound transforms around α² GEMMs whose contraction is C·S² (or
OC), so it pays off only with enough channels on both sides (``variant_for``).

The element-wise tiles are where rounding grows with m: F(2×2, ·) has coefficients 0, ±1
and ±½, so its float32 results stay within a few units in the last place of im2col's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygan.backend.batched_matmul import batched_matmul

Pair = tuple[int, int]


@dataclass(frozen=True)
class Variant:
    """F(m×m, r×r): output tile m, kernel r, α = m + r − 1; Bᵀ (α×α), G (α×r), Aᵀ (m×α)."""

    name: str
    m: int
    BT: np.ndarray
    G: np.ndarray
    AT: np.ndarray

    @property
    def alpha(self) -> int:
        return self.BT.shape[0]


# Interpolation points 0, 1, ∞ (r = 2) and 0, 1, −1, ∞ (r = 3), as in Lavin & Gray 2016.
VARIANTS = {
    "F(2x2,2x2)": Variant(
        "F(2x2,2x2)",
        2,
        BT=np.array([[1, -1, 0], [0, 1, 0], [0, -1, 1]], dtype=np.float64),
        G=np.array([[1, 0], [1, 1], [0, 1]], dtype=np.float64),
        AT=np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float64),
    ),
    "F(2x2,3x3)": Variant(
        "F(2x2,3x3)",
        2,
        BT=np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        G=np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64),
        AT=np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64),
    ),
}
_FOR_TAPS = {2: "F(2x2,2x2)", 3: "F(2x2,3x3)"}

# Both channel counts of a layer (input counted with its stride phases, C·S²) must reach
# this for the transforms' memory traffic to cost less than the multiplications saved.
MIN_CHANNELS = 16

ENABLED = True  # tests compare against the im2col path by switching this off


def variant_for(
    x: Any,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    conv_channels: tuple,
) -> Variant | None:
    """The Winograd variant for a product of conv2d of this geometry, or None for im2col.

    ``conv_channels`` is (C, OC) of the conv2d the product belongs to: conv_transpose2d is
    the adjoint of the conv2d with its weight, so its own channels are the other way round.
    """
    if not ENABLED or type(x) is not np.ndarray or x.dtype not in (np.float32, np.float64):
        return None
    if groups != 1 or dilation != (1, 1) or stride[0] != stride[1] or stride[0] > 2:
        return None
    KH, KW = kernel
    S = stride[0]
    if KH != KW or KH % S or KH // S not in _FOR_TAPS or padding[0] != padding[1]:
        return None
    C, OC = conv_channels
    if min(C * S * S, OC) < MIN_CHANNELS:
        return None
    return VARIANTS[_FOR_TAPS[KH // S]]


def _tiles(variant: Variant, out_size: Pair) -> tuple[int, int]:
    """Tile rows and columns covering an output of ``out_size`` (the last ones may overhang)."""
    th, tw = (-(-size // variant.m) for size in out_size)
    return th, tw


# A band buffer (winograd_kernels.py) should stay in a core's L2 cache; bands are also cut
# small enough to give every thread several chunks when the batch is small (CycleGAN's 1).
BAND_BYTES = 256 * 1024
CHUNKS_PER_THREAD = 4


def _band(
    variant: Variant, N: int, C: int, th: int, tw: int, S: int, itemsize: int, halo: int
) -> int:
    """Tile rows per band of an image of ``th`` × ``tw`` tiles and C channels: its band
    buffer holds S·m rows per tile row (plus S·halo), each S·(tw·m + halo) wide."""
    import numba

    m = variant.m
    row_bytes = S * m * S * (tw * m + halo) * C * itemsize
    fits = max(1, BAND_BYTES // row_bytes)
    bands = max(-(-th // fits), -(-CHUNKS_PER_THREAD * numba.get_num_threads() // N))
    return -(-th // min(th, bands))  # bands of equal height, the last one perhaps shorter


def _kernels(variant: Variant, dtype: np.dtype, S: int) -> dict:  # noqa: N803
    from tinygan.functions.winograd_kernels import kernels

    return kernels(variant.name, np.dtype(dtype).name, S)


def _planes(count: int, rows: int, cols: int, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """``count`` empty (rows, cols) matrices as (buffer, matrices). The kernels take the
    buffer, one C-contiguous (count, spacing) array, matrix k row-major at the start of row
    k (contiguity is what lets Numba vectorise); the GEMMs take the (count, rows, cols) view.
    The spacing is not a multiple of 4 KiB: the transforms touch all α² planes at once, and
    planes a power of two apart share cache sets (a 256-channel 3×3 input transform ran
    1.5x faster once they did not)."""
    size = rows * cols
    spacing = size + (16 if (size * np.dtype(dtype).itemsize) % 4096 == 0 else 0)
    buffer = np.empty((count, spacing), dtype=dtype)
    return buffer, buffer[:, :size].reshape(count, rows, cols)


def _product(A: Any, B: Any) -> np.ndarray:  # noqa: N803
    """The α² GEMMs A[k] @ B[k], in the buffer of _planes that the kernels take, each on
    one core where the planes are many enough (backend/batched_matmul.py)."""
    buffer, out = _planes(A.shape[0], A.shape[1], B.shape[2], A.dtype)
    batched_matmul(A, B, out=out)
    return buffer


def _filter(variant: Variant, w: Any, S: int) -> np.ndarray:
    """U = G w' Gᵀ for every (OC, C·S²) pair of phase kernels: (α², OC, C·S²)."""
    OC, C = w.shape[:2]
    buffer, U = _planes(variant.alpha**2, OC, C * S * S, w.dtype)
    _kernels(variant, w.dtype, S)["filter_transform"](np.ascontiguousarray(w), buffer)
    return U


def _input(variant: Variant, x: Any, S: int, pad: int, th: int, tw: int) -> np.ndarray:
    """V = Bᵀ d B for every tile of the phase images of x: (α², T, C·S²)."""
    N, C = x.shape[:2]
    a, m = variant.alpha, variant.m
    buffer, V = _planes(a * a, N * th * tw, C * S * S, x.dtype)
    nb = _band(variant, N, C, th, tw, S, x.itemsize, a - m)
    kernel = _kernels(variant, x.dtype, S)["input_transform"]
    kernel(np.ascontiguousarray(x), pad, th, tw, nb, buffer)
    return V


def _output_adjoint(variant: Variant, gy: Any, th: int, tw: int) -> np.ndarray:
    """A gy Aᵀ for every output tile (gy taken as 0 beyond its edge): (α², T, OC)."""
    N, OC = gy.shape[:2]
    buffer, dM = _planes(variant.alpha**2, N * th * tw, OC, gy.dtype)
    nb = _band(variant, N, OC, th, tw, 1, gy.itemsize, 0)
    kernel = _kernels(variant, gy.dtype, 1)["output_adjoint"]
    kernel(np.ascontiguousarray(gy), 0, th, tw, nb, buffer)
    return dM


def _outputs(variant: Variant, U: Any, V: Any, th: int, tw: int, shape: tuple) -> Any:
    """y = Aᵀ (V @ Uᵀ) A per tile, cropped to ``shape`` (N, OC, OH, OW)."""
    M = _product(V, U.transpose(0, 2, 1))
    N, OC = shape[:2]
    y = np.empty(shape, dtype=V.dtype)
    nb = _band(variant, N, OC, th, tw, 1, y.itemsize, 0)
    kernel = _kernels(variant, V.dtype, 1)["output_transform"]
    kernel(M, 0, th, tw, nb, y)
    return y


def _inputs(variant: Variant, U: Any, dM: Any, S: int, pad: int, th: int, tw: int, shape: tuple):
    """x = Σ_tiles B (dM @ U) Bᵀ on the phase images of an x of ``shape``."""
    dV = _product(dM, U)
    N, C = shape[:2]
    x = np.empty(shape, dtype=dM.dtype)
    nb = _band(variant, N, C, th, tw, S, x.itemsize, variant.alpha - variant.m)
    kernel = _kernels(variant, dM.dtype, S)["input_adjoint"]
    kernel(dV, pad, th, tw, nb, x)
    return x


def _weights(variant: Variant, dM: Any, V: Any, S: int, shape: tuple) -> Any:
    """dW = Gᵀ (dMᵀ @ V) G, scattered from phase kernels onto a weight of ``shape``."""
    dU = _product(dM.transpose(0, 2, 1), V)
    dw = np.empty(shape, dtype=V.dtype)
    _kernels(variant, V.dtype, S)["filter_adjoint"](dU, dw)
    return dw


def conv2d(x: Any, w: Any, variant: Variant, stride: Pair, padding: Pair, out_size: Pair) -> Any:
    """y = conv2d(x, w): M = V @ Uᵀ per point, then y = Aᵀ M A per tile."""
    S, pad = stride[0], padding[0]
    th, tw = _tiles(variant, out_size)
    V = _input(variant, x, S, pad, th, tw)
    return _outputs(variant, _filter(variant, w, S), V, th, tw, (x.shape[0], w.shape[0], *out_size))


def conv_transpose2d(
    x: Any, w: Any, variant: Variant, stride: Pair, padding: Pair, out_size: Pair
) -> Any:
    """y = conv_transpose2d(x, w), the adjoint of z ↦ conv2d(z, w) for z of ``out_size``:
    y = Σ_tiles B [(A x Aᵀ) @ U] Bᵀ on the phase images of y."""
    S, pad = stride[0], padding[0]
    th, tw = _tiles(variant, x.shape[2:])
    dM = _output_adjoint(variant, x, th, tw)
    U = _filter(variant, w, S)
    return _inputs(variant, U, dM, S, pad, th, tw, (x.shape[0], w.shape[1], *out_size))


def weight_grad(
    x: Any, gy: Any, variant: Variant, kernel: Pair, stride: Pair, padding: Pair
) -> Any:
    """dL/dW of y = conv2d(x, W) given gy: dU = (A gy Aᵀ)ᵀ @ V per point, dW = Gᵀ dU G."""
    S, pad = stride[0], padding[0]
    th, tw = _tiles(variant, gy.shape[2:])
    V = _input(variant, x, S, pad, th, tw)
    dM = _output_adjoint(variant, gy, th, tw)
    return _weights(variant, dM, V, S, (gy.shape[1], x.shape[1], *kernel))


def conv2d_backward(
    x: Any, w: Any, gy: Any, variant: Variant, stride: Pair, padding: Pair
) -> tuple[Any, Any]:
    """(dx, dW) of y = conv2d(x, w) at first order, transforming gy once for both."""
    S, pad = stride[0], padding[0]
    th, tw = _tiles(variant, gy.shape[2:])
    dM = _output_adjoint(variant, gy, th, tw)
    gx = _inputs(variant, _filter(variant, w, S), dM, S, pad, th, tw, x.shape)
    gw = _weights(variant, dM, _input(variant, x, S, pad, th, tw), S, w.shape)
    return gx, gw


def conv_transpose2d_backward(
    x: Any, w: Any, gy: Any, variant: Variant, stride: Pair, padding: Pair
) -> tuple[Any, Any]:
    """(dx, dW) of y = conv_transpose2d(x, w) at first order: dx = conv2d(gy, w) and dW =
    weight_grad(gy, x) share the transform of gy, the layer's largest array."""
    S, pad = stride[0], padding[0]
    th, tw = _tiles(variant, x.shape[2:])
    V = _input(variant, gy, S, pad, th, tw)
    gx = _outputs(variant, _filter(variant, w, S), V, th, tw, x.shape)
    gw = _weights(variant, _output_adjoint(variant, x, th, tw), V, S, w.shape)
    return gx, gw
