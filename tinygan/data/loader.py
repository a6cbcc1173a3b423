"""DataLoader: batches of a Dataset as tinygan Tensors, shuffled reproducibly and resumable.

Shuffling draws one permutation per epoch from a NumPy generator (or a ``tinygan.Generator``).
The loader remembers the generator's state at the start of the current epoch and how many
batches of the epoch it has handed out; ``state_dict()`` records exactly that, so a run
restored with ``load_state_dict()`` re-draws the same permutation, skips the batches already
seen, and from there yields the very batches the uninterrupted run would have.

Each ``iter(loader)`` continues from the current position (after a full epoch, that is the
start of the next one). Starting a new iterator, or loading a state, retires the old iterator.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

import tinygan
from tinygan.imageio import to_host

__all__ = ["DataLoader", "collate"]


def collate(items: list) -> Any:
    """Stack a list of items field by field: arrays -> (B, ...), ints/floats -> (B,).

    Tuples stay tuples and dicts stay dicts; each field is stacked by one ``np.stack``.
    """
    first = items[0]
    if isinstance(first, tuple):
        return tuple(collate([it[j] for it in items]) for j in range(len(first)))
    if isinstance(first, dict):
        return {k: collate([it[k] for it in items]) for k in first}
    try:
        return np.stack(items) if isinstance(first, np.ndarray) else np.asarray(items)
    except ValueError as e:
        shapes = sorted({str(np.shape(it)) for it in items})
        raise ValueError(f"collate: items of one field differ in shape {shapes}: {e}") from None


def _cast(a: np.ndarray) -> np.ndarray:
    """Floats -> float32, integers -> int64, bools stay; C-contiguous."""
    if a.dtype.kind == "f" and a.dtype != np.float32:
        a = a.astype(np.float32)
    elif a.dtype.kind in "iu" and a.dtype != np.int64:
        a = a.astype(np.int64)
    return np.ascontiguousarray(a)


class _Prefetcher:
    """Runs an iterator of batches in a background thread, at most ``size`` batches ahead."""

    def __init__(self, batches: Iterator, size: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(batches,), daemon=True)
        self._thread.start()

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def _run(self, batches: Iterator) -> None:
        try:
            for batch in batches:
                if not self._put(("batch", batch)):
                    return
            self._put(("end", None))
        except BaseException as e:  # handed to the consumer, re-raised there
            self._put(("error", e))

    def __iter__(self) -> Iterator:
        while True:
            kind, value = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class DataLoader:
    """Iterate over ``dataset`` in batches.

    Args:
        dataset: a Dataset (``len`` and ``[i]``; ``get_batch`` and ``set_epoch`` used if there).
        batch_size: items per batch; the last batch may be smaller unless ``drop_last``.
        shuffle: a new random order every epoch.
        drop_last: drop the last incomplete batch.
        generator: ``np.random.Generator`` or ``tinygan.Generator`` used only by this loader
            for shuffling (its state is reset to the epoch start on resume, so do not share it).
        seed: seed for a new NumPy generator when ``generator`` is None (None: fresh entropy,
            still recorded by ``state_dict``).
        device: ``"cpu"``/``"cuda"``: batches are ``tinygan.tensor``s there (floats float32,
            integers int64); None: NumPy arrays with the same dtypes.
        prefetch: if > 0, a background thread prepares up to this many batches ahead
            (Pillow decoding releases the GIL, so image folders load while the model trains).
        num_workers: if > 0, items of a batch are fetched by this many threads (for datasets
            without ``get_batch``, e.g. image folders). Threads, not processes: items must be
            pure functions of (index, epoch), which keeps batches identical for any setting.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: Any = None,
        seed: int | None = None,
        device: str | None = "cpu",
        prefetch: int = 0,
        num_workers: int = 0,
    ) -> None:
        name = type(dataset).__name__
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be an int >= 0, got {prefetch!r}")
        if not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
        if generator is not None and seed is not None:
            raise ValueError("DataLoader: pass generator or seed, not both")
        n = len(dataset)
        if n == 0:
            raise ValueError(f"DataLoader: dataset {name} is empty")
        if drop_last and n < batch_size:
            raise ValueError(
                f"DataLoader: dataset {name} has {n} items, fewer than batch_size {batch_size} "
                "with drop_last=True, so there would be no batches"
            )
        if generator is None:
            generator = np.random.default_rng(seed)
        if not (hasattr(generator, "bit_generator") or hasattr(generator, "load_state_dict")):
            raise TypeError(
                f"DataLoader: generator must be a numpy or tinygan Generator, got {generator!r}"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = generator
        self.device = device
        self.prefetch = int(prefetch)
        self.num_workers = int(num_workers)
        self._epoch = 0
        self._position = 0
        self._epoch_state = self._gen_state() if self.shuffle else None
        self._token: object | None = None

    # -- generator state ------------------------------------------------------------------
    def _gen_state(self) -> dict:
        g = self.generator
        state = g.bit_generator.state if hasattr(g, "bit_generator") else g.state_dict()
        return copy.deepcopy(state)

    def _set_gen_state(self, state: dict) -> None:
        g = self.generator
        if hasattr(g, "bit_generator"):
            g.bit_generator.state = copy.deepcopy(state)
        else:
            g.load_state_dict(copy.deepcopy(state))

    # -- progress -------------------------------------------------------------------------
    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def epoch(self) -> int:
        """The epoch the next batch belongs to (0-based)."""
        return self._epoch

    @property
    def position(self) -> int:
        """Batches of the current epoch already handed out."""
        return self._position

    def state_dict(self) -> dict:
        """JSON-serialisable progress: epoch, position in it, generator state at its start."""
        return {
            "epoch": self._epoch,
            "position": self._position,
            "generator": copy.deepcopy(self._epoch_state),
            "num_items": len(self.dataset),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume from :meth:`state_dict`; checks that it fits this loader before changing it."""
        mine = self.state_dict()
        missing = sorted(set(mine) - set(state))
        if missing:
            raise ValueError(f"DataLoader.load_state_dict: missing keys {missing}")
        for key in ("num_items", "batch_size", "shuffle", "drop_last"):
            if state[key] != mine[key]:
                raise ValueError(
                    f"DataLoader.load_state_dict: {key} is {state[key]!r} in the state but "
                    f"{mine[key]!r} in this loader"
                )
        epoch, position = state["epoch"], state["position"]
        if not (isinstance(epoch, int) and epoch >= 0 and isinstance(position, int)):
            raise ValueError(f"DataLoader.load_state_dict: bad epoch/position {epoch}/{position}")
        if not 0 <= position < len(self):
            raise ValueError(
                f"DataLoader.load_state_dict: position {position} outside 0..{len(self) - 1}"
            )
        if self.shuffle:
            try:
                self._set_gen_state(state["generator"])
            except (TypeError, ValueError, KeyError) as e:
                raise ValueError(f"DataLoader.load_state_dict: bad generator state: {e}") from None
        self._epoch, self._position = epoch, position
        self._epoch_state = copy.deepcopy(state["generator"]) if self.shuffle else None
        self._token = None  # retire any running iterator

    # -- iteration ------------------------------------------------------------------------
    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        self._set_gen_state(self._epoch_state)
        return to_host(self.generator.permutation(n)).astype(np.int64)

    def _fetch(self, indices: np.ndarray, pool: ThreadPoolExecutor | None) -> Any:
        if hasattr(self.dataset, "get_batch"):
            return self.dataset.get_batch(indices)
        if pool is not None:
            return collate(list(pool.map(self.dataset.__getitem__, indices.tolist())))
        return collate([self.dataset[int(i)] for i in indices])

    def _convert(self, batch: Any) -> Any:
        if isinstance(batch, tuple):
            return tuple(self._convert(b) for b in batch)
        if isinstance(batch, dict):
            return {k: self._convert(v) for k, v in batch.items()}
        a = _cast(np.asarray(batch))
        return a if self.device is None else tinygan.tensor(a, device=self.device)

    def __iter__(self) -> Iterator:
        token = object()
        self._token = token
        return self._iterate(token)

    def _iterate(self, token: object) -> Iterator:
        bs, total, start = self.batch_size, len(self), self._position
        order = self._order()
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self._epoch)
        use_pool = self.num_workers and not hasattr(self.dataset, "get_batch")
        pool = ThreadPoolExecutor(self.num_workers) if use_pool else None
        batches = (self._fetch(order[k * bs : (k + 1) * bs], pool) for k in range(start, total))
        source = _Prefetcher(batches, self.prefetch) if self.prefetch else None
        try:
            for k, batch in zip(range(start, total), source or batches, strict=True):
                if self._token is not token:
                    raise RuntimeError(
                        "DataLoader: this iterator was retired by a newer iter() or "
                        "load_state_dict(); iterate over the loader again"
                    )
                self._position = k + 1
                if self._position == total:  # epoch done: the state now points at the next one
                    self._epoch, self._position = self._epoch + 1, 0
                    self._epoch_state = self._gen_state() if self.shuffle else None
                yield self._convert(batch)
        finally:
            if source is not None:
                source.close()
            if pool is not None:
                pool.shutdown(cancel_futures=True)
