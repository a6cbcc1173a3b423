"""The embedded default dataset: UCI handwritten digits, no download needed.

Source: "Optical Recognition of Handwritten Digits" (optdigits), E. Alpaydin and C. Kaynak,
UCI Machine Learning Repository, 1998 -- 1797 grey 8x8 images (values 0..16, white strokes on
black), labels 0..9, as shipped inside scikit-learn (``sklearn.datasets.load_digits``).

The images are upsampled to ``image_size`` with Pillow (bicubic, on float pixels, clipped) and
scaled to [-1, 1]. The split is deterministic and stratified: within each class, in file
order, every fifth image (ranks 4, 9, 14, ...) is ``"test"`` (20%), the rest ``"train"``.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from tinygan.data.dataset import ArrayDataset

__all__ = ["Digits"]

_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}
_LOCK = threading.Lock()


def _load(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 images as float32 (N, 1, S, S) in [-1, 1] and int64 labels; cached, read-only."""
    with _LOCK:
        if image_size not in _CACHE:
            from sklearn.datasets import load_digits

            raw = load_digits()
            images = raw.images.astype(np.float32)  # (1797, 8, 8), 0..16
            if image_size != 8:
                size = (image_size, image_size)
                images = np.stack(
                    [np.asarray(Image.fromarray(im).resize(size, Image.BICUBIC)) for im in images]
                )
            x = (np.clip(images / np.float32(16), 0, 1) * 2 - 1).astype(np.float32)[:, None]
            y = raw.target.astype(np.int64)
            x.setflags(write=False)
            y.setflags(write=False)
            _CACHE[image_size] = (x, y)
        return _CACHE[image_size]


def split_indices(labels: np.ndarray, split: str, every: int = 5) -> np.ndarray:
    """Stratified split: per class, in order, rank % every == every-1 is test."""
    rank = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        rank[where] = np.arange(len(where))
    test = rank % every == every - 1
    return np.flatnonzero(test if split == "test" else ~test)


class Digits(ArrayDataset):
    """UCI optdigits at ``image_size`` (default 32); items ``(image (C, S, S), label)``.

    Args:
        split: ``"train"`` (1442 images), ``"test"`` (355) or ``"all"`` (1797).
        image_size: side of the square output, 8..256 (e.g. 28, 32, 64).
        channels: 1, or 3 (the grey image repeated, for RGB models).

    ``.images`` (float32, read-only), ``.labels`` (int64) and ``.classes`` (0..9) are exposed.
    """

    num_classes = 10

    def __init__(self, split: str = "train", image_size: int = 32, channels: int = 1) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"Digits: split must be 'train', 'test' or 'all', got {split!r}")
        if not isinstance(image_size, (int, np.integer)) or not 8 <= image_size <= 256:
            raise ValueError(f"Digits: image_size must be an int in 8..256, got {image_size!r}")
        if channels not in (1, 3):
            raise ValueError(f"Digits: channels must be 1 or 3, got {channels!r}")
        x, y = _load(int(image_size))
        idx = np.arange(len(y)) if split == "all" else split_indices(y, split)
        images, labels = x[idx], y[idx]
        if channels == 3:
            images = np.repeat(images, 3, axis=1)
        images.setflags(write=False)
        labels.setflags(write=False)
        self.images, self.labels = images, labels
        self.classes = list(range(10))
        super().__init__(images, labels)
