"""Geometric transforms on Pillow images: resize, crop, flip (the DCGAN/pix2pix recipes).

Random choices come from a NumPy generator passed in, so a dataset can make them a pure
function of (seed, epoch, index); see :func:`tinygan.data.dataset.item_rng`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["resize_shorter", "resize_square", "crop_offsets", "crop_square", "maybe_flip"]


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Scale (bicubic) so the shorter side is ``size``, keeping the aspect ratio."""
    w, h = img.size
    s = size / min(w, h)
    new = (max(size, round(w * s)), max(size, round(h * s)))
    return img if new == (w, h) else img.resize(new, Image.BICUBIC)


def resize_square(img: Image.Image, size: int) -> Image.Image:
    """Scale (bicubic) to ``size x size``, ignoring the aspect ratio (pix2pix/CycleGAN)."""
    return img if img.size == (size, size) else img.resize((size, size), Image.BICUBIC)


def crop_offsets(
    width: int, height: int, size: int, rng: np.random.Generator | None
) -> tuple[int, int]:
    """(left, top) of a ``size`` square: centred when ``rng`` is None, else uniform."""
    if rng is None:
        return (width - size) // 2, (height - size) // 2
    return int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))


def crop_square(img: Image.Image, size: int, left: int, top: int) -> Image.Image:
    """The ``size x size`` window at (left, top)."""
    return img.crop((left, top, left + size, top + size))


def maybe_flip(img: Image.Image, flip: bool) -> Image.Image:
    """Mirror left-right when ``flip``."""
    return img.transpose(Image.FLIP_LEFT_RIGHT) if flip else img
