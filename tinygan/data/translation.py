"""Data for image-to-image translation: embedded digit domains (no download) and the
pix2pix / CycleGAN folder layouts.

Embedded defaults, built from :class:`~tinygan.data.Digits` (UCI digits, white strokes on
black, upsampled to ``image_size``; its stratified train/test split). Everything is a pure
function of (split, image_size, seed): no download, the same arrays on every machine.

**Unpaired (CycleGAN), "plain digits <-> coloured bold digits"** (:class:`UnpairedDigits`).
Within the split, in order, the digits at even positions form domain A, those at odd
positions domain B, so no digit image is in both domains (train: 721 + 721; test: 178 +
177). A: the grey digit (repeated to 3 channels). B: the digit's strokes thickened by a
grey dilation (maximum over a (2r+1) x (2r+1) window, r = max(1, round(S / 32)), i.e. 3 x 3 at
32 px) and coloured with a per-image hue h ~ U[0, 1) drawn from ``seed`` (HSV saturation 0.6,
value 1: light colours whose grey mean is 0.6..0.8), on black. Items are ``(a, b)``: ``a`` =
A[i mod |A|], ``b`` = a random B drawn from (seed, epoch, i), as UnpairedImageFolder does.

**Paired (pix2pix), "degraded digit -> digit"** (:class:`PairedDigits`). A = the digit
degraded, B = the digit itself; items ``(A, B)`` for ``direction="AtoB"`` (restore),
``(B, A)`` for ``"BtoA"``. Degradations (``--data default:NAME``; ``default`` is ``mask``):

- ``mask``: a square of side round(3 S / 8) (12 px at 32 px) is set to grey (0) at a
  per-image position, its top-left corner uniform in [S/8, S - S/8 - side] on each axis,
  drawn from ``seed`` -- inpainting, a one-to-many task where L1 alone gives blur.
- ``blur``: a Gaussian blur of standard deviation S / 16 px (reflect borders) -- deblurring.
- ``edges``: the Sobel gradient magnitude of the digit, scaled by its maximum and
  thresholded at 0.25, as white lines on black -- edges -> digit, as edges2shoes.

No random crop or flip for digits (a mirrored digit is another character). Labels are kept as
``.labels_A``/``.labels_B`` (unpaired) or ``.labels`` (paired) for the quality measurements.

Folders: ``folder_dataset`` wraps :class:`UnpairedImageFolder` (``trainA``, ``trainB``,
``testA``, ``testB``) and :class:`PairedImageFolder` (``train/``, ``val/``, ``test/`` of A|B
images), with the papers' jitter for training (scale to load_size = 286/256 of the image size,
random crop, random mirror) and none for the held-out split (load_size = image_size, as the
papers' test code).
"""

from __future__ import annotations

import colorsys
import os
from typing import Any

import numpy as np

from tinygan.data.dataset import ArrayDataset, Dataset, item_rng
from tinygan.data.digits import Digits
from tinygan.data.folders import PairedImageFolder, UnpairedImageFolder

__all__ = [
    "DEGRADATIONS",
    "PairedDigits",
    "UnpairedDigits",
    "blur",
    "default_dataset",
    "degrade",
    "dilate",
    "edges",
    "evaluation_arrays",
    "folder_dataset",
    "held_out_split",
    "mask_squares",
    "stylise",
]

DEGRADATIONS = ("mask", "blur", "edges")


# ---------------------------------------------------------------------------- image ops
def dilate(p: np.ndarray, r: int) -> np.ndarray:
    """Grey dilation of (N, C, H, W): the maximum over a (2r+1) x (2r+1) window (0 outside)."""
    h, w = p.shape[-2:]
    padded = np.pad(p, ((0, 0), (0, 0), (r, r), (r, r)))
    out = p.copy()
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            np.maximum(out, padded[..., dy : dy + h, dx : dx + w], out=out)
    return out


def stylise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Domain B of the unpaired digits: x (N, 1, S, S) in [-1, 1] -> (N, 3, S, S), bold strokes
    (dilation, r = max(1, round(S / 32))) in a light per-image colour (hue ~ U[0, 1))."""
    size = x.shape[-1]
    thick = dilate((x + 1) / 2, max(1, round(size / 32)))
    hues = rng.random(len(x))
    colours = np.array([colorsys.hsv_to_rgb(h, 0.6, 1.0) for h in hues], dtype=np.float32)
    return (thick * colours[:, :, None, None] * 2 - 1).astype(np.float32)


def mask_squares(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grey (0) square of side round(3 S / 8) per image, corner uniform in [S/8, S-S/8-side]."""
    size = x.shape[-1]
    side, margin = round(3 * size / 8), size // 8
    corners = rng.integers(margin, size - margin - side + 1, size=(len(x), 2))
    out = x.copy()
    for im, (top, left) in zip(out, corners):
        im[:, top : top + side, left : left + side] = 0.0
    return out


def _conv_axis(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    r = len(kernel) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    padded = np.pad(x, pad, mode="reflect")
    n = x.shape[axis]
    return sum(k * np.take(padded, range(i, i + n), axis=axis) for i, k in enumerate(kernel))


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (N, C, H, W), std ``sigma`` px, radius 3 sigma, reflect."""
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    return _conv_axis(_conv_axis(x, k, 2), k, 3).astype(np.float32)


def edges(x: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """White-on-black edge maps: Sobel gradient magnitude / its per-image max > threshold."""
    smooth, diff = np.array([1, 2, 1], np.float32), np.array([-1, 0, 1], np.float32)
    gx = _conv_axis(_conv_axis(x, smooth, 2), diff, 3)
    gy = _conv_axis(_conv_axis(x, diff, 2), smooth, 3)
    mag = np.sqrt(gx**2 + gy**2)
    mag /= np.maximum(mag.max(axis=(1, 2, 3), keepdims=True), 1e-8)
    return np.where(mag > threshold, 1.0, -1.0).astype(np.float32)


def degrade(x: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Domain A of the paired digits (see the module docstring)."""
    if kind == "mask":
        return mask_squares(x, rng)
    if kind == "blur":
        return blur(x, x.shape[-1] / 16)
    if kind == "edges":
        return edges(x)
    raise ValueError(f"--data default:{kind}: unknown degradation; choose from {DEGRADATIONS}")


def _digits(split: str, image_size: int) -> Digits:
    if split not in ("train", "test"):
        raise ValueError(f"digits domains: split must be 'train' or 'test', got {split!r}")
    return Digits(split, image_size=image_size, channels=1)


# ---------------------------------------------------------------------------- datasets
class UnpairedDigits(Dataset):
    """Plain digits (A) <-> coloured bold digits (B), unpaired; items ``(a, b)``.

    Args: split ("train"/"test"), image_size, channels (3; 1 gives B's grey mean), seed (the
    colours and the random B partners). ``.images_A``, ``.labels_A``, ``.images_B``,
    ``.labels_B`` hold the two domains.
    """

    def __init__(
        self, split: str = "train", image_size: int = 32, channels: int = 3, seed: int = 0
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"UnpairedDigits: channels must be 1 or 3, got {channels!r}")
        d = _digits(split, image_size)
        a, b = np.arange(0, len(d), 2), np.arange(1, len(d), 2)
        styled = stylise(d.images[b], np.random.default_rng([seed, 17]))
        self.images_A = np.repeat(d.images[a], channels, axis=1)
        self.images_B = styled if channels == 3 else styled.mean(1, keepdims=True)
        self.labels_A, self.labels_B = d.labels[a], d.labels[b]
        self.seed, self.epoch = int(seed), 0

    def __len__(self) -> int:
        return max(len(self.images_A), len(self.images_B))

    def set_epoch(self, epoch: int) -> None:
        """B partners of this epoch: a pure function of (seed, epoch, index)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        i = self._check_index(index)
        j = int(item_rng(self.seed, self.epoch, i, 3).integers(len(self.images_B)))
        return self.images_A[i % len(self.images_A)], self.images_B[j]


class PairedDigits(ArrayDataset):
    """Degraded digit (A) -> digit (B), paired; items (input, target) = (A, B) for "AtoB".

    Args: split, image_size, degradation ("mask", "blur", "edges"), direction, seed (mask
    positions), channels (1; 3 repeats the grey). ``.labels``: the digits' classes.
    """

    def __init__(
        self,
        split: str = "train",
        image_size: int = 32,
        degradation: str = "mask",
        direction: str = "AtoB",
        seed: int = 0,
        channels: int = 1,
    ) -> None:
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"PairedDigits: direction must be AtoB or BtoA, got {direction!r}")
        if channels not in (1, 3):
            raise ValueError(f"PairedDigits: channels must be 1 or 3, got {channels!r}")
        d = _digits(split, image_size)
        rng = np.random.default_rng([seed, 29, 0 if split == "train" else 1])
        b = np.asarray(d.images)
        a = degrade(b, degradation, rng)
        a, b = np.repeat(a, channels, axis=1), np.repeat(b, channels, axis=1)
        self.images_A, self.images_B, self.labels = a, b, np.asarray(d.labels)
        self.degradation, self.direction = degradation, direction
        super().__init__(*((a, b) if direction == "AtoB" else (b, a)))


# ---------------------------------------------------------------------------- specs
def default_dataset(
    layout: str,
    spec: str,
    split: str,
    image_size: int,
    channels: int | None,
    seed: int,
    direction: str = "AtoB",
) -> Dataset:
    """``--data default[:NAME]`` for the ``"unpaired"`` or ``"paired"`` layout."""
    name = spec.partition(":")[2]
    if layout == "unpaired":
        if name:
            raise ValueError(f"--data {spec}: the unpaired default takes no variant")
        return UnpairedDigits(split, image_size, channels or 3, seed)
    return PairedDigits(split, image_size, name or "mask", direction, seed, channels or 1)


def folder_dataset(
    layout: str,
    root: str,
    split: str,
    image_size: int,
    channels: int,
    seed: int,
    load_size: int | None = None,
    flip: bool = True,
    direction: str = "AtoB",
    who: str = "",
) -> Dataset:
    """A folder in the CycleGAN (``"unpaired"``) or pix2pix (``"paired"``) layout."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{who}: --data {root}: not 'default' and not an existing folder")
    train = split == "train"
    if load_size is None or not train:
        load_size = round(image_size * 286 / 256) if train else image_size
    if load_size < image_size:
        raise ValueError(
            f"{who}: --load-size {load_size} is smaller than --image-size {image_size}"
        )
    try:
        if layout == "unpaired":
            return UnpairedImageFolder(root, split, image_size, load_size, channels,
                                       flip=flip and train, seed=seed)  # fmt: skip
        return PairedImageFolder(root, split, direction, image_size, load_size, channels,
                                 flip=flip and train, seed=seed)  # fmt: skip
    except FileNotFoundError as e:
        want = "trainA/trainB (testA/testB)" if layout == "unpaired" else "train/ (val/, test/)"
        raise FileNotFoundError(f"{who}: --data {root} needs the {want} layout: {e}") from None


def held_out_split(layout: str, spec: str) -> str:
    """The split to draw grid/evaluation inputs from: test, else val, else train."""
    if spec == "default" or spec.startswith("default:"):
        return "test"
    for split in ("test", "val"):
        parts = [split + "A", split + "B"] if layout == "unpaired" else [split]
        if all(os.path.isdir(os.path.join(spec, p)) for p in parts):
            return split
    return "train"


def evaluation_arrays(ds: Dataset, n: int) -> dict[str, Any]:
    """Up to ``n`` held-out inputs ``x`` and real targets ``y`` of a translation dataset, with
    labels where known (embedded digits; else None) and whether x[i], y[i] are pairs."""
    if isinstance(ds, UnpairedDigits):
        a, b = ds.images_A[:n], ds.images_B[:n]
        return {"x": a, "y": b, "x_labels": ds.labels_A[:n], "y_labels": ds.labels_B[:n],
                "paired": False}  # fmt: skip
    if isinstance(ds, PairedDigits):
        x, y = (arr[:n] for arr in ds.arrays)
        labels = ds.labels[:n]
        return {"x": x, "y": y, "x_labels": labels, "y_labels": labels, "paired": True}
    items = [ds[i] for i in range(min(n, len(ds)))]
    x, y = (np.stack([it[j] for it in items]) for j in (0, 1))
    paired = isinstance(ds, PairedImageFolder)
    return {"x": x, "y": y, "x_labels": None, "y_labels": None, "paired": paired}
