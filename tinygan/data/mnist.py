"""MNIST and Fashion-MNIST from IDX files in a local directory (raw or .gz); no download.

IDX format (LeCun et al.): a big-endian header -- two zero bytes, a type byte (0x08 = uint8),
the number of dimensions D -- then D big-endian uint32 sizes, then the data. Images are
``idx3`` (N, 28, 28), labels ``idx1`` (N,). Files are validated (magic number, sizes, length)
and a missing, truncated or foreign file raises an error naming it.
"""

from __future__ import annotations

import gzip
import os
import threading
import zlib

import numpy as np
from PIL import Image

from tinygan.data.dataset import ArrayDataset

__all__ = ["read_idx", "MNIST", "FashionMNIST"]

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_LOCK = threading.Lock()


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read a uint8 IDX file (``.gz`` or raw) into an array, checking header and length."""
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such IDX file") from None
    except (EOFError, OSError, zlib.error) as e:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not a uint8 IDX file (bad magic number {data[:4].hex()})")
    d = data[3]
    if ndim is not None and d != ndim:
        raise ValueError(f"{path}: expected a {ndim}-d IDX file, the header says {d}-d")
    header = 4 + 4 * d
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes)")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", d, 4))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: {what}: header shape {shape} needs {expected} bytes, file has {len(data)}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _find(root: str, name: str) -> str:
    dotted = name.replace("-idx", ".idx")  # the name some unzip tools produce
    for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
        path = os.path.join(root, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{root}: no {name} or {name}.gz in this directory")


class MNIST(ArrayDataset):
    """MNIST digits from ``root``; items ``(image (C, S, S) float32 in [-1, 1], label)``.

    Args:
        root: directory with ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
            ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``.
        split: ``"train"`` (60000) or ``"test"`` (10000).
        image_size: output side; 28 keeps the originals, others resize bicubic.
        channels: 1, or 3 (grey repeated).

    Arrays are cached per process (keyed by path, size and modification time).
    """

    num_classes = 10

    def __init__(
        self, root: str | os.PathLike, split: str = "train", image_size: int = 28, channels: int = 1
    ) -> None:
        name = type(self).__name__
        root = os.fspath(root)
        if split not in _FILES:
            raise ValueError(f"{name}: split must be 'train' or 'test', got {split!r}")
        if channels not in (1, 3):
            raise ValueError(f"{name}: channels must be 1 or 3, got {channels!r}")
        if not isinstance(image_size, (int, np.integer)) or image_size < 1:
            raise ValueError(f"{name}: image_size must be a positive int, got {image_size!r}")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{name}: {root}: no such directory")
        paths = tuple(_find(root, f) for f in _FILES[split])
        key = (*paths, *(os.stat(p).st_mtime_ns for p in paths), int(image_size))
        with _LOCK:
            if key not in _CACHE:
                _CACHE[key] = self._load(*paths, int(image_size))
            images, labels = _CACHE[key]
        if channels == 3:
            images = np.repeat(images, 3, axis=1)
            images.setflags(write=False)
        self.images, self.labels = images, labels
        self.classes = list(range(self.num_classes))
        super().__init__(images, labels)

    @staticmethod
    def _load(image_path: str, label_path: str, size: int) -> tuple[np.ndarray, np.ndarray]:
        raw = read_idx(image_path, ndim=3)
        labels = read_idx(label_path, ndim=1).astype(np.int64)
        if len(raw) != len(labels):
            raise ValueError(
                f"{image_path}: {len(raw)} images but {label_path} has {len(labels)} labels"
            )
        if labels.size and labels.max() > 9:
            raise ValueError(f"{label_path}: labels must be 0..9, found {labels.max()}")
        if size != raw.shape[1] or size != raw.shape[2]:
            raw = np.stack(
                [np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in raw]
            )
        images = (raw.astype(np.float32) / np.float32(127.5) - np.float32(1.0))[:, None]
        images.setflags(write=False)
        labels.setflags(write=False)
        return images, labels


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): same IDX files and names as MNIST.

    Classes: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag,
    Ankle boot (``.class_names``).
    """

    class_names = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]  # fmt: skip
