"""Image datasets read from folders: plain (DCGAN), unpaired (CycleGAN), paired (pix2pix).

Every item is float32 ``(C, S, S)`` in [-1, 1]. Random crops and flips are drawn from
``item_rng(seed, epoch, index)``, so they are reproducible and a resumed run sees the same
ones (the DataLoader calls ``set_epoch``).

Files: found recursively, sorted, hidden names skipped; any format this Pillow can decode
among PNG, JPEG, BMP, GIF, TIFF, WebP, PNM, TGA. At construction each file's header is read
(``verify=True``: each file is fully decoded); files that fail are skipped, counted in
``.skipped`` and reported in ONE warning -- or raise at once with ``strict=True``. A file that
only fails when decoded later (e.g. truncated data) is replaced by the next readable file,
added to ``.skipped``, and reported by one further warning the first time it happens.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any

import numpy as np
from PIL import Image

from tinygan.data.dataset import Dataset, item_rng
from tinygan.data.transforms import (
    crop_offsets,
    crop_square,
    maybe_flip,
    resize_shorter,
    resize_square,
)
from tinygan.imageio import ImageFileError, open_image, to_array

__all__ = ["find_images", "ImageFolder", "UnpairedImageFolder", "PairedImageFolder"]

_COMMON = ".png .jpg .jpeg .jpe .jfif .bmp .dib .gif .tif .tiff .webp .ppm .pgm .pbm .pnm .tga"


def _extensions() -> frozenset[str]:
    Image.init()
    readable = {e for e, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return frozenset(e for e in _COMMON.split() if e in readable)


def find_images(root: str | os.PathLike) -> list[str]:
    """All image files under ``root`` (recursive, sorted, hidden files and folders skipped)."""
    root = os.fspath(root)
    if not os.path.exists(root):
        raise FileNotFoundError(f"{root}: no such directory")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root}: not a directory")
    exts = _extensions()
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            os.path.join(folder, f)
            for f in files
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in exts
        ]
    if not found:
        raise FileNotFoundError(f"{root}: no image files found (looked for {sorted(exts)})")
    return sorted(found)


class _Files:
    """The readable image files of one folder, with skip-and-warn-once bookkeeping."""

    def __init__(self, root: str, who: str, channels: int, strict: bool, verify: bool) -> None:
        self.root, self.who, self.channels, self.strict = root, who, channels, strict
        self.skipped: list[str] = []
        self._lock = threading.Lock()
        self._warned_late = False
        good, reasons = [], []
        for path in find_images(root):
            try:
                if verify:
                    open_image(path, channels)
                else:
                    with Image.open(path) as img:
                        img.size  # noqa: B018 -- the header is parsed on open
            except (
                ImageFileError,
                OSError,
                SyntaxError,
                ValueError,
                Image.DecompressionBombError,
            ) as e:
                if strict:
                    raise ImageFileError(f"{who}: {path}: unreadable image ({e})") from None
                self.skipped.append(path)
                reasons.append(f"{path} ({type(e).__name__})")
                continue
            good.append(path)
        if reasons:
            more = f" and {len(reasons) - 3} more" if len(reasons) > 3 else ""
            warnings.warn(
                f"{who}: skipped {len(reasons)} unreadable image file(s) under {root}: "
                f"{', '.join(reasons[:3])}{more}",
                stacklevel=3,
            )
        if not good:
            raise ImageFileError(
                f"{who}: {root}: none of the {len(reasons)} image files is readable"
            )
        self.paths = good

    def __len__(self) -> int:
        return len(self.paths)

    def open(self, index: int) -> tuple[int, Image.Image]:
        """Decode file ``index``, or (not strict) the next readable one; returns (index, image)."""
        n = len(self.paths)
        for k in range(n):
            j = (index + k) % n
            try:
                return j, open_image(self.paths[j], self.channels)
            except ImageFileError as e:
                if self.strict:
                    raise ImageFileError(f"{self.who}: {e}") from None
                with self._lock:
                    if self.paths[j] not in self.skipped:
                        self.skipped.append(self.paths[j])
                    first, self._warned_late = not self._warned_late, True
                if first:
                    warnings.warn(
                        f"{self.who}: {e}; using the next readable file instead (further "
                        "failures are only counted in .skipped)",
                        stacklevel=3,
                    )
        raise ImageFileError(f"{self.who}: {self.root}: no readable image left")


def _check(who: str, image_size: int, load_size: int | None, channels: int, crop: str) -> int:
    if not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"{who}: image_size must be a positive int, got {image_size!r}")
    load_size = image_size if load_size is None else load_size
    if not isinstance(load_size, (int, np.integer)) or load_size < image_size:
        raise ValueError(f"{who}: load_size must be an int >= image_size, got {load_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"{who}: channels must be 1 or 3, got {channels!r}")
    if crop not in ("center", "random"):
        raise ValueError(f"{who}: crop must be 'center' or 'random', got {crop!r}")
    return int(load_size)


class ImageFolder(Dataset):
    """Images under ``root`` (recursive), resized, cropped to ``image_size`` squares.

    Pipeline: shorter side -> ``load_size`` (default ``image_size``; ``resize="square"``
    scales both sides to it instead), then a centre or random ``image_size`` crop, then a
    random horizontal flip when ``flip``.

    Args:
        labels: None (items are images) or ``"subfolder"``: items are ``(image, label)`` with
            the label the index of the image's top-level subfolder in sorted ``.classes``.
        strict: raise on the first unreadable file instead of skipping it.
        verify: fully decode every file at construction (slower; catches truncated files).
        seed: seed of the random crops/flips.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int,
        channels: int = 3,
        labels: str | None = None,
        crop: str = "center",
        flip: bool = False,
        load_size: int | None = None,
        resize: str = "shorter",
        strict: bool = False,
        verify: bool = False,
        seed: int = 0,
    ) -> None:
        who = type(self).__name__
        root = os.fspath(root)
        self.load_size = _check(who, image_size, load_size, channels, crop)
        if labels not in (None, "subfolder"):
            raise ValueError(f"{who}: labels must be None or 'subfolder', got {labels!r}")
        if resize not in ("shorter", "square"):
            raise ValueError(f"{who}: resize must be 'shorter' or 'square', got {resize!r}")
        self.files = _Files(root, who, channels, strict, verify)
        self.root, self.image_size, self.channels = root, int(image_size), channels
        self.crop, self.flip, self.resize, self.seed = crop, bool(flip), resize, int(seed)
        self.labels = labels
        self.epoch = 0
        self.classes: list[str] = []
        self.targets: list[int] = []
        if labels == "subfolder":
            parts = [os.path.relpath(p, root).split(os.sep) for p in self.files.paths]
            loose = [p for p, rel in zip(self.files.paths, parts, strict=True) if len(rel) == 1]
            if loose:
                raise ValueError(
                    f"{who}: labels='subfolder' needs every image inside a class folder of "
                    f"{root}, but {loose[0]} is not"
                )
            self.classes = sorted({rel[0] for rel in parts})
            index = {c: i for i, c in enumerate(self.classes)}
            self.targets = [index[rel[0]] for rel in parts]

    @property
    def skipped(self) -> list[str]:
        """Paths of files found unreadable so far."""
        return self.files.skipped

    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        """Random crops/flips of this epoch: a pure function of (seed, epoch, index)."""
        self.epoch = int(epoch)

    def _rng(self, index: int, stream: int = 0) -> np.random.Generator | None:
        if self.crop == "random" or self.flip:
            return item_rng(self.seed, self.epoch, index, stream)
        return None

    def transform(self, img: Image.Image, rng: np.random.Generator | None) -> np.ndarray:
        """Resize, crop, flip one decoded image; returns (C, S, S) in [-1, 1]."""
        big = self.load_size
        img = resize_square(img, big) if self.resize == "square" else resize_shorter(img, big)
        left, top = crop_offsets(*img.size, self.image_size, rng if self.crop == "random" else None)
        img = crop_square(img, self.image_size, left, top)
        return to_array(maybe_flip(img, self.flip and rng is not None and rng.random() < 0.5))

    def load(self, index: int, rng: np.random.Generator | None) -> tuple[np.ndarray, int]:
        """(image, index of the file actually used) for file ``index``, with randomness ``rng``."""
        j, img = self.files.open(index)
        return self.transform(img, rng), j

    def __getitem__(self, index: int) -> Any:
        i = self._check_index(index)
        x, j = self.load(i, self._rng(i))
        return (x, self.targets[j]) if self.labels else x


class UnpairedImageFolder(Dataset):
    """CycleGAN layout: ``root/{split}A`` and ``root/{split}B``; items ``(a, b)``.

    Length is the larger folder's; ``a = A[i % len(A)]`` and ``b`` is a seeded random file of B
    (``unaligned=True``, as in CycleGAN) or ``B[i % len(B)]``. Each image is scaled to
    ``load_size`` square (286) and cropped to ``image_size`` (256); crops and flips of a and b
    are independent. ``crop``/``flip`` default to random/True for ``split="train"``, else
    centre/False.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        image_size: int = 256,
        load_size: int | None = 286,
        channels: int = 3,
        crop: str | None = None,
        flip: bool | None = None,
        unaligned: bool = True,
        strict: bool = False,
        verify: bool = False,
        seed: int = 0,
    ) -> None:
        root = os.fspath(root)
        train = split == "train"
        crop = crop or ("random" if train else "center")
        flip = train if flip is None else flip
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{type(self).__name__}: {root}: no such directory")
        folders = []
        for side in "AB":
            path = os.path.join(root, split + side)
            if not os.path.isdir(path):
                have = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
                raise FileNotFoundError(
                    f"{type(self).__name__}: {path}: no such directory (found {have})"
                )
            folders.append(
                ImageFolder(path, image_size, channels, None, crop, flip, load_size, "square",
                            strict, verify, seed)
            )  # fmt: skip
        self.A, self.B = folders
        self.unaligned, self.seed, self.epoch = bool(unaligned), int(seed), 0

    def __len__(self) -> int:
        return max(len(self.A), len(self.B))

    def set_epoch(self, epoch: int) -> None:
        """Crops, flips and B partners of this epoch: pure functions of (seed, epoch, index)."""
        self.epoch = self.A.epoch = self.B.epoch = int(epoch)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        i = self._check_index(index)
        j = i % len(self.B)
        if self.unaligned:
            j = int(item_rng(self.seed, self.epoch, i, 3).integers(len(self.B)))
        a, _ = self.A.load(i % len(self.A), self.A._rng(i, 1))
        b, _ = self.B.load(j, self.B._rng(i, 2))
        return a, b


class PairedImageFolder(Dataset):
    """pix2pix layout: ``root/{split}/*.jpg``, each image A and B side by side (A left).

    Both halves are scaled to ``load_size`` square (286), then the SAME ``image_size`` crop
    (256) and the same flip are applied to both, as in pix2pix (Isola et al. 2017). Items are
    ``(A, B)`` for ``direction="AtoB"``, ``(B, A)`` for ``"BtoA"``: always (input, target).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        direction: str = "AtoB",
        image_size: int = 256,
        load_size: int | None = 286,
        channels: int = 3,
        crop: str | None = None,
        flip: bool | None = None,
        strict: bool = False,
        verify: bool = False,
        seed: int = 0,
    ) -> None:
        who = type(self).__name__
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"{who}: direction must be 'AtoB' or 'BtoA', got {direction!r}")
        train = split == "train"
        crop = crop or ("random" if train else "center")
        self.flip = train if flip is None else bool(flip)
        self.load_size = _check(who, image_size, load_size, channels, crop)
        folder = os.path.join(os.fspath(root), split)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{who}: {folder}: no such directory")
        self.files = _Files(folder, who, channels, strict, verify)
        self.image_size, self.crop, self.direction = int(image_size), crop, direction
        self.seed, self.epoch = int(seed), 0

    @property
    def skipped(self) -> list[str]:
        """Paths of files found unreadable so far."""
        return self.files.skipped

    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        """Crops and flips of this epoch: a pure function of (seed, epoch, index)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        i = self._check_index(index)
        _, ab = self.files.open(i)
        w, h = ab.size
        halves = [ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, 2 * (w // 2), h))]
        halves = [resize_square(x, self.load_size) for x in halves]
        rng = item_rng(self.seed, self.epoch, i)
        size, big = self.image_size, self.load_size
        left, top = crop_offsets(big, big, size, rng if self.crop == "random" else None)
        flip = self.flip and rng.random() < 0.5
        a, b = (to_array(maybe_flip(crop_square(x, size, left, top), flip)) for x in halves)
        return (a, b) if self.direction == "AtoB" else (b, a)
