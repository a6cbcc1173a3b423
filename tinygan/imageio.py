"""Image files: read one image into an array, write a batch as a grid (PNG), atomically.

Pixel convention everywhere in tinygan: float32, channels first ``(C, H, W)``, values in
``[-1, 1]`` (the range of a ``tanh`` generator output); C is 1 (grey) or 3 (RGB).

Only NumPy and Pillow are used here, so ``tinygan.data`` can build on this module.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps

__all__ = ["ImageFileError", "open_image", "to_array", "load_image", "make_grid", "save_image_grid"]


class ImageFileError(ValueError):
    """A file exists but is not an image Pillow can decode (corrupt, truncated, wrong kind)."""


def to_host(x: Any) -> np.ndarray:
    """Return a NumPy array for a tinygan Tensor, a CuPy array or anything array-like."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__cuda_array_interface__") and hasattr(x, "get"):  # CuPy -> host
        return x.get()
    data = getattr(x, "data", None)  # a tinygan Tensor holds its array in .data
    if isinstance(data, np.ndarray) or hasattr(data, "__cuda_array_interface__"):
        return to_host(data)
    return np.asarray(x)


def _to_8bit(img: Image.Image, path: str) -> Image.Image:
    """Bring 16/32-bit integer images to 8 bits by scaling (Pillow's convert would clip)."""
    if img.mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float64) / 257.0
    elif img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageFileError(f"{path}: 32-bit image with values outside 0..65535")
        arr = arr / 257.0 if arr.max() > 255 else arr
    else:
        raise ImageFileError(
            f"{path}: cannot convert a mode {img.mode!r} image to 8-bit grey or RGB "
            "(floating-point pixels have no known range); convert the file first"
        )
    return Image.fromarray(np.rint(arr).astype(np.uint8))


def open_image(path: str | os.PathLike, channels: int = 3) -> Image.Image:
    """Decode an image file fully and return it in mode ``"L"`` (channels=1) or ``"RGB"`` (3).

    EXIF orientation is applied; transparency is composited onto white; palette, CMYK, LA and
    16-bit images are converted. Raises FileNotFoundError for a missing path and
    ImageFileError (naming the path) for a file Pillow cannot decode or convert.
    """
    path = os.fspath(path)
    if channels not in (1, 3):
        raise ValueError(f"{path}: channels must be 1 or 3, got {channels!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise ImageFileError(f"{path}: unreadable image ({type(e).__name__}: {e})") from None
    if img.mode == "F" or img.mode.startswith("I"):
        img = _to_8bit(img, path)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    try:
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
        target = "L" if channels == 1 else "RGB"
        return img if img.mode == target else img.convert(target)
    except ValueError as e:
        raise ImageFileError(f"{path}: cannot convert mode {img.mode!r} to RGB: {e}") from None


def to_array(img: Image.Image) -> np.ndarray:
    """Pillow image (mode L or RGB) -> float32 array (C, H, W) with values in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr / np.float32(127.5) - np.float32(1.0))


def load_image(
    path: str | os.PathLike, channels: int = 3, size: int | tuple[int, int] | None = None
) -> np.ndarray:
    """Read an image as float32 (C, H, W) in [-1, 1].

    ``size``: None keeps the file's size; an int resizes to ``size x size``; ``(h, w)``
    resizes to that shape (bicubic, aspect ratio not kept).
    """
    img = open_image(path, channels)
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        if h < 1 or w < 1:
            raise ValueError(f"{os.fspath(path)}: size must be positive, got {size!r}")
        img = img.resize((w, h), Image.BICUBIC)
    return to_array(img)


def make_grid(
    images: Any,
    nrow: int = 8,
    padding: int = 2,
    value_range: Sequence[float] = (-1.0, 1.0),
    pad_value: float = 0.0,
) -> np.ndarray:
    """Tile a batch into one picture; returns uint8 ``(H', W', C)``, ready for PNG/imshow.

    images: (N, C, H, W) or (C, H, W), C in {1, 3}, a Tensor, CuPy or NumPy array. Values are
    mapped from ``value_range`` to [0, 255] and clipped (NaN -> lo). ``nrow`` images per row;
    ``padding`` pixels between tiles and around the border, filled with ``pad_value``
    (0 = black, 1 = white). H' = rows*(H+padding)+padding, W' likewise with min(nrow, N) columns.
    """
    x = to_host(images)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[0] == 0 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"make_grid: expected (N, C, H, W) with N >= 1 and C in (1, 3), "
            f"got shape {tuple(x.shape)}"
        )
    if nrow < 1 or padding < 0:
        raise ValueError(f"make_grid: need nrow >= 1 and padding >= 0, got {nrow}, {padding}")
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"make_grid: value_range must be (lo, hi) with hi > lo, got {value_range}")
    x = np.nan_to_num(x.astype(np.float32), nan=lo)
    x = np.rint(np.clip((x - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)
    n, c, h, w = x.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    fill = np.uint8(round(float(np.clip(pad_value, 0.0, 1.0)) * 255))
    tiles = np.full((rows * cols, h + padding, w + padding, c), fill, dtype=np.uint8)
    tiles[:n, :h, :w] = x.transpose(0, 2, 3, 1)
    body = tiles.reshape(rows, cols, h + padding, w + padding, c).transpose(0, 2, 1, 3, 4)
    grid = np.full(
        (rows * (h + padding) + padding, cols * (w + padding) + padding, c), fill, dtype=np.uint8
    )
    grid[padding:, padding:] = body.reshape(rows * (h + padding), cols * (w + padding), c)
    return grid


def _pillow_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    Image.init()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(
            f"{path}: cannot tell an image format Pillow can write from {ext!r}; use .png"
        )
    return fmt


def atomic_write(path: str, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, rename it into place.

    A crash or an exception mid-write leaves any previous file at ``path`` untouched and
    removes the temporary file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory")
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
    )
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the usual new-file mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def save_image_grid(
    images: Any,
    path: str | os.PathLike,
    nrow: int = 8,
    padding: int = 2,
    value_range: Sequence[float] = (-1.0, 1.0),
    pad_value: float = 0.0,
) -> str:
    """Write ``make_grid(images, ...)`` to ``path`` (format from the extension, e.g. .png).

    The write is atomic: an existing file at ``path`` is replaced only by a complete image.
    Returns the path.
    """
    path = os.fspath(path)
    fmt = _pillow_format(path)
    grid = make_grid(images, nrow, padding, value_range, pad_value)
    img = Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid)
    atomic_write(path, lambda f: img.save(f, format=fmt))
    return path
