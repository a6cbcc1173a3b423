"""The Dataset protocol, and a dataset over in-memory arrays.

A dataset has ``len(ds)`` items; ``ds[i]`` returns one item: a NumPy array (e.g. an image
``(C, H, W)`` float32 in [-1, 1]), a Python int (a label), or a tuple of those. Optional hooks
the :class:`~tinygan.data.DataLoader` uses when present:

- ``get_batch(indices) -> batch``: the items at ``indices`` already stacked (one array per
  field), for datasets held in memory; the loader then skips per-item Python work.
- ``set_epoch(epoch)``: called when an epoch starts, so random augmentation can be a pure
  function of (seed, epoch, index) and a resumed run sees the same crops and flips.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Dataset", "ArrayDataset", "item_rng"]


class Dataset:
    """Base class: subclasses implement ``__len__`` and ``__getitem__``."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError

    def _check_index(self, index: int) -> int:
        """Return ``index`` as a non-negative int (negative counts from the end) or raise."""
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {n} items")
        return i % n


def item_rng(seed: int, epoch: int, index: int, stream: int = 0) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, index, stream): reproducible augmentation."""
    return np.random.default_rng([seed, epoch, index, stream])


class ArrayDataset(Dataset):
    """Items are rows of equally long arrays: ``ds[i] = (a[i], b[i], ...)``.

    One array gives bare items (``ds[i] = a[i]``). Integer 1-d arrays (labels) give Python
    ints per item; ``get_batch`` returns the stacked rows directly.
    """

    def __init__(self, *arrays: np.ndarray) -> None:
        if not arrays:
            raise ValueError("ArrayDataset: need at least one array")
        arrays = tuple(np.asarray(a) for a in arrays)
        lengths = [len(a) for a in arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"ArrayDataset: arrays have different lengths {lengths}")
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    def _field(self, a: np.ndarray, i: int) -> Any:
        return a[i].item() if a.ndim == 1 and a.dtype.kind in "iub" else a[i]

    def __getitem__(self, index: int) -> Any:
        i = self._check_index(index)
        items = tuple(self._field(a, i) for a in self.arrays)
        return items[0] if len(items) == 1 else items

    def get_batch(self, indices: np.ndarray) -> Any:
        """Rows ``indices`` of every array (one fancy-indexing copy per field)."""
        batch = tuple(a[indices] for a in self.arrays)
        return batch[0] if len(batch) == 1 else batch
