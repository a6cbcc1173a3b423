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

from tinygan.backend.batched_matmul import batched_matmul, on_cores

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
    variant: Variant,
    N: int,
    C: int,
    th: int,
    tw: int,
    S: int,
    itemsize: int,
    halo: int,
    serial: bool = False,
) -> int:
    """Tile rows per band of an image of ``th`` × ``tw`` tiles and C channels: its band
    buffer holds S·m rows per tile row (plus S·halo), each S·(tw·m + halo) wide."""
    import numba

    m = variant.m
    row_bytes = S * m * S * (tw * m + halo) * C * itemsize
    fits = max(1, BAND_BYTES // row_bytes)
    threads = 1 if serial else numba.get_num_threads()
    bands = max(-(-th // fits), -(-CHUNKS_PER_THREAD * threads // N))
    return -(-th // min(th, bands))  # bands of equal height, the last one perhaps shorter


def _kernels(variant: Variant, dtype: np.dtype, S: int, serial: bool = False) -> dict:  # noqa: N803
    from tinygan.functions import winograd_kernels

    get = winograd_kernels.serial_kernels if serial else winograd_kernels.kernels
    return get(variant.name, np.dtype(dtype).name, S)


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


def _product(A: Any, B: Any, serial: bool = False) -> np.ndarray:  # noqa: N803
    """The α² GEMMs A[k] @ B[k], in the buffer of _planes that the kernels take, each on
    one core where the planes are many enough (backend/batched_matmul.py), or all on this
    thread's core (``serial``)."""
    buffer, out = _planes(A.shape[0], A.shape[1], B.shape[2], A.dtype)
    (np.matmul if serial else batched_matmul)(A, B, out=out)
    return buffer


def _filter(variant: Variant, w: Any, S: int) -> np.ndarray:
    """U = G w' Gᵀ for every (OC, C·S²) pair of phase kernels: (α², OC, C·S²)."""
    OC, C = w.shape[:2]
    buffer, U = _planes(variant.alpha**2, OC, C * S * S, w.dtype)
    _kernels(variant, w.dtype, S)["filter_transform"](np.ascontiguousarray(w), buffer)
    return U


# The transforms below take ``serial``: run on the calling thread's core alone (the serial
# kernels, one BLAS thread), as each core does in the per-core chains further down.


def _input(
    variant: Variant, x: Any, S: int, pad: int, th: int, tw: int, serial: bool = False
) -> np.ndarray:
    """V = Bᵀ d B for every tile of the phase images of x: (α², T, C·S²)."""
    N, C = x.shape[:2]
    a, m = variant.alpha, variant.m
    buffer, V = _planes(a * a, N * th * tw, C * S * S, x.dtype)
    nb = _band(variant, N, C, th, tw, S, x.itemsize, a - m, serial)
    kernel = _kernels(variant, x.dtype, S, serial)["input_transform"]
    kernel(np.ascontiguousarray(x), pad, th, tw, nb, buffer)
    return V


def _output_adjoint(variant: Variant, gy: Any, th: int, tw: int, serial: bool = False) -> Any:
    """A gy Aᵀ for every output tile (gy taken as 0 beyond its edge): (α², T, OC)."""
    N, OC = gy.shape[:2]
    buffer, dM = _planes(variant.alpha**2, N * th * tw, OC, gy.dtype)
    nb = _band(variant, N, OC, th, tw, 1, gy.itemsize, 0, serial)
    kernel = _kernels(variant, gy.dtype, 1, serial)["output_adjoint"]
    kernel(np.ascontiguousarray(gy), 0, th, tw, nb, buffer)
    return dM


def _outputs(
    variant: Variant, U: Any, V: Any, th: int, tw: int, y: Any, serial: bool = False
) -> Any:
    """y = Aᵀ (V @ Uᵀ) A per tile, cropped to y's (N, OC, OH, OW), written into y."""
    M = _product(V, U.transpose(0, 2, 1), serial)
    N, OC = y.shape[:2]
    nb = _band(variant, N, OC, th, tw, 1, y.itemsize, 0, serial)
    _kernels(variant, V.dtype, 1, serial)["output_transform"](M, 0, th, tw, nb, y)
    return y


def _inputs(
    variant: Variant,
    U: Any,
    dM: Any,
    S: int,
    pad: int,
    th: int,
    tw: int,
    x: Any,
    serial: bool = False,
) -> Any:
    """x = Σ_tiles B (dM @ U) Bᵀ on the phase images of x, written into x."""
    dV = _product(dM, U, serial)
    N, C = x.shape[:2]
    nb = _band(variant, N, C, th, tw, S, x.itemsize, variant.alpha - variant.m, serial)
    _kernels(variant, dM.dtype, S, serial)["input_adjoint"](dV, pad, th, tw, nb, x)
    return x


def _weights(variant: Variant, dU: Any, S: int, shape: tuple) -> Any:
    """dW = Gᵀ dU G, scattered from phase kernels onto a weight of ``shape``; dU = dMᵀ @ V
    from _weight_planes."""
    dw = np.empty(shape, dtype=dU.dtype)
    _kernels(variant, dU.dtype, S)["filter_adjoint"](dU, dw)
    return dw


def _weight_planes(dM: Any, V: Any, serial: bool = False) -> np.ndarray:
    """dU = dMᵀ @ V per point: (α², OC, C·S²) in a planes buffer."""
    return _product(dM.transpose(0, 2, 1), V, serial)


# ---------------------------------------------------------------- per-core chains
#
# Where a layer's planes dwarf its weights (DCGAN's 32×32 layers: 38 MB of V for 1.2 MB of
# U), the batch's planes go out to memory between each transform and its GEMMs and come
# back: the input adjoint on D2's shape took 2.6 ms on planes still in cache and 3.8-4.1 on
# planes just written by the GEMMs. Each core instead runs the whole chain (transform, α²
# products, transform back) on a few images at a time, the serial kernels and one BLAS
# thread per core, so that a chunk's planes are read back from cache. The weight gradient
# Σ_t dMᵀ V is summed per core over its chunks, then over the cores. D2 and G4 forward +
# backward 0.96x the time of the batch-wide path, the DCGAN step 0.985x and 30 MB less at
# its peak (benchmarks/NOTES.md, item 38). Elsewhere (small maps with many channels: U would
# be read again for every chunk, D3 and G3 ran 1.1x slower) and on one core, the batch goes
# through each step whole, every kernel and GEMM on all threads.

CHAINS = True  # benchmarks.paths and the tests turn the chains off with this
CHAIN_BYTES = 8 * 2**20  # the planes (both sides) of one chunk of images
MIN_PLANES_PER_WEIGHT = 16  # the batch's planes against U, for the chains to pay


def chain_images(
    variant: Variant, N: int, th: int, tw: int, OC: int, CP: int, itemsize: int
) -> int | None:
    """Images per chunk of the per-core chains for a batch of N images of th × tw tiles with
    OC output and CP input plane channels, or None where the chains do not pay (a batch of
    one, or planes less than ``MIN_PLANES_PER_WEIGHT`` times the weights' U) or are off."""
    if not CHAINS or N < 2 or N * th * tw * (OC + CP) < MIN_PLANES_PER_WEIGHT * OC * CP:
        return None
    return max(1, CHAIN_BYTES // (variant.alpha**2 * th * tw * (OC + CP) * itemsize))


def _on_cores(variant: Variant, x: Any, th: int, tw: int, channels: tuple, chain: Any) -> bool:
    """chain(core, n0, n1) for chunks [n0, n1) of each core's share of the batch of x (th ×
    tw tiles an image, ``channels`` = (OC, C·S²) of the planes), one chunk after another
    (backend/batched_matmul.on_cores). False, having run nothing, where the chains do not
    pay (``chain_images``) or the cores cannot be had."""
    N = x.shape[0]
    images = chain_images(variant, N, th, tw, *channels, x.itemsize)
    if images is None:
        return False

    def task(core: int, cores: int) -> None:
        first, last = N * core // cores, N * (core + 1) // cores
        for n0 in range(first, last, images):
            chain(core, n0, min(last, n0 + images))

    return on_cores(task)


class _WeightSums:
    """Σ_t dMᵀ @ V over the chunks of images: a running sum per core, added up at the end."""

    def __init__(self) -> None:
        self.sums: dict[int, np.ndarray] = {}
        self.size = 0  # of each matrix: the planes' spacing beyond it is never read

    def add(self, core: int, dM: Any, V: Any) -> None:
        dU = _weight_planes(dM, V, serial=True)
        self.size = dM.shape[2] * V.shape[2]
        if core in self.sums:
            self.sums[core][:, : self.size] += dU[:, : self.size]
        else:
            self.sums[core] = dU

    def total(self) -> np.ndarray:
        """The sum, in the order of the cores (the same rounding in every run)."""
        first, *rest = sorted(self.sums)
        total = self.sums[first]
        for core in rest:
            total[:, : self.size] += self.sums[core][:, : self.size]
        return total


def conv2d(x: Any, w: Any, variant: Variant, stride: Pair, padding: Pair, out_size: Pair) -> Any:
    """y = conv2d(x, w): M = V @ Uᵀ per point, then y = Aᵀ M A per tile."""
    S, pad = stride[0], padding[0]
    th, tw = _tiles(variant, out_size)
    U = _filter(variant, w, S)
    y = np.empty((x.shape[0], w.shape[0], *out_size), dtype=x.dtype)

    def chain(core: int, n0: int, n1: int) -> None:
        V = _input(variant, x[n0:n1], S, pad, th, tw, serial=True)
        _outputs(variant, U, V, th, tw, y[n0:n1], serial=True)

    if not _on_cores(variant, x, th, tw, U.shape[1:], chain):
        _outputs(variant, U, _input(variant, x, S, pad, th, tw), th, tw, y)
    return y


def conv_transpose2d(
    x: Any, w: Any, variant: Variant, stride: Pair, padding: Pair, out_size: Pair
) -> Any:
    """y = conv_transpose2d(x, w), the adjoint of z ↦ conv2d(z, w) for z of ``out_size``:
    y = Σ_tiles B [(A x Aᵀ) @ U] Bᵀ on the phase images of y."""
    S, pad = stride[0], padding[0]
    th, tw = _tiles(variant, x.shape[2:])
    U = _filter(variant, w, S)
    y = np.empty((x.shape[0], w.shape[1], *out_size), dtype=x.dtype)

    def chain(core: int, n0: int, n1: int) -> None:
        dM = _output_adjoint(variant, x[n0:n1], th, tw, serial=True)
        _inputs(variant, U, dM, S, pad, th, tw, y[n0:n1], serial=True)

    if not _on_cores(variant, x, th, tw, U.shape[1:], chain):
        _inputs(variant, U, _output_adjoint(variant, x, th, tw), S, pad, th, tw, y)
    return y


def weight_grad(
    x: Any, gy: Any, variant: Variant, kernel: Pair, stride: Pair, padding: Pair
) -> Any:
    """dL/dW of y = conv2d(x, W) given gy: dU = (A gy Aᵀ)ᵀ @ V per point, dW = Gᵀ dU G."""
    S, pad = stride[0], padding[0]
    th, tw = _tiles(variant, gy.shape[2:])
    sums = _WeightSums()

    def chain(core: int, n0: int, n1: int) -> None:
        V = _input(variant, x[n0:n1], S, pad, th, tw, serial=True)
        dM = _output_adjoint(variant, gy[n0:n1], th, tw, serial=True)
        sums.add(core, dM, V)

    if _on_cores(variant, x, th, tw, (gy.shape[1], x.shape[1] * S * S), chain):
        dU = sums.total()
    else:
        V = _input(variant, x, S, pad, th, tw)
        dU = _weight_planes(_output_adjoint(variant, gy, th, tw), V)
    return _weights(variant, dU, S, (gy.shape[1], x.shape[1], *kernel))


def conv2d_backward(
    x: Any, w: Any, gy: Any, variant: Variant, stride: Pair, padding: Pair
) -> tuple[Any, Any]:
    """(dx, dW) of y = conv2d(x, w) at first order, transforming gy once for both."""
    S, pad = stride[0], padding[0]
    th, tw = _tiles(variant, gy.shape[2:])
    U = _filter(variant, w, S)
    gx = np.empty(x.shape, dtype=gy.dtype)
    sums = _WeightSums()

    def chain(core: int, n0: int, n1: int) -> None:
        dM = _output_adjoint(variant, gy[n0:n1], th, tw, serial=True)
        _inputs(variant, U, dM, S, pad, th, tw, gx[n0:n1], serial=True)
        V = _input(variant, x[n0:n1], S, pad, th, tw, serial=True)
        sums.add(core, dM, V)

    if _on_cores(variant, x, th, tw, U.shape[1:], chain):
        dU = sums.total()
    else:
        dM = _output_adjoint(variant, gy, th, tw)
        _inputs(variant, U, dM, S, pad, th, tw, gx)
        dU = _weight_planes(dM, _input(variant, x, S, pad, th, tw))
    return gx, _weights(variant, dU, S, w.shape)


def conv_transpose2d_backward(
    x: Any, w: Any, gy: Any, variant: Variant, stride: Pair, padding: Pair
) -> tuple[Any, Any]:
    """(dx, dW) of y = conv_transpose2d(x, w) at first order: dx = conv2d(gy, w) and dW =
    weight_grad(gy, x) share the transform of gy, the layer's largest array."""
    S, pad = stride[0], padding[0]
    th, tw = _tiles(variant, x.shape[2:])
    U = _filter(variant, w, S)
    gx = np.empty(x.shape, dtype=gy.dtype)
    sums = _WeightSums()

    def chain(core: int, n0: int, n1: int) -> None:
        V = _input(variant, gy[n0:n1], S, pad, th, tw, serial=True)
        _outputs(variant, U, V, th, tw, gx[n0:n1], serial=True)
        dM = _output_adjoint(variant, x[n0:n1], th, tw, serial=True)
        sums.add(core, dM, V)

    if _on_cores(variant, x, th, tw, U.shape[1:], chain):
        dU = sums.total()
    else:
        V = _input(variant, gy, S, pad, th, tw)
        _outputs(variant, U, V, th, tw, gx)
        dU = _weight_planes(_output_adjoint(variant, x, th, tw), V)
    return gx, _weights(variant, dU, S, w.shape)
