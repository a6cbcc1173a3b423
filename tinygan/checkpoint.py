"""Checkpoints: a nested state (dicts, lists, numbers, arrays, Tensors) in one ``.npz`` file.

Format. A NumPy ``.npz`` archive (a zip of ``.npy`` files) holding

- ``a0, a1, ...``: every array of the state, bit for bit, in its own dtype;
- ``__structure__``: UTF-8 JSON (stored as a uint8 array) describing the nesting, with arrays
  replaced by references to their entries.

JSON encoding of a value: None, bool, int (any size), float (incl. NaN/inf) and str are
themselves; a list is a JSON list; a tuple is ``{"tuple": [...]}``; a dict is
``{"dict": [[key, value], ...]}`` (so int keys stay ints and key order is kept); an array is
``{"array": "a7"}``; a NumPy scalar is ``{"scalar": "a7"}`` (a 0-d entry). Loading uses
``allow_pickle=False`` and ``json.loads``: a checkpoint can never execute code.

Writes are atomic (temporary file in the same directory, fsync, ``os.replace``, fsync of the
directory), so a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

from tinygan.imageio import atomic_write, to_host

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint"]

_STRUCTURE = "__structure__"
_FORMAT = "tinygan-checkpoint"
_VERSION = 1


class CheckpointError(ValueError):
    """A file is not a readable tinygan checkpoint (corrupt, truncated or another format)."""


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or hasattr(x, "__cuda_array_interface__")


def _is_tensor(x: Any) -> bool:
    """A tinygan Tensor (or Parameter): an object with ``.data`` array and ``.requires_grad``."""
    return hasattr(x, "requires_grad") and _is_array(getattr(x, "data", None))


def _encode(x: Any, where: str, arrays: dict[str, np.ndarray]) -> Any:
    """Turn ``x`` into JSON-able data, moving arrays into ``arrays``; ``where`` names the spot."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, np.generic):
        if x.dtype.hasobject:
            raise TypeError(f"save_checkpoint: {where}: object scalars cannot be saved")
        name = f"a{len(arrays)}"
        arrays[name] = np.asarray(x)
        return {"scalar": name}
    if _is_array(x) or _is_tensor(x):
        arr = to_host(x)
        if arr.dtype.hasobject:
            raise TypeError(f"save_checkpoint: {where}: arrays of Python objects cannot be saved")
        name = f"a{len(arrays)}"
        arrays[name] = arr
        return {"array": name}
    if isinstance(x, list):
        return [_encode(v, f"{where}[{i}]", arrays) for i, v in enumerate(x)]
    if isinstance(x, tuple):
        return {"tuple": [_encode(v, f"{where}[{i}]", arrays) for i, v in enumerate(x)]}
    if isinstance(x, dict):
        items = []
        for k, v in x.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(
                    f"save_checkpoint: {where}: dict keys must be str or int, got {k!r}"
                )
            items.append([k, _encode(v, f"{where}[{k!r}]", arrays)])
        return {"dict": items}
    raise TypeError(f"save_checkpoint: {where}: cannot save a value of type {type(x).__name__}")


def save_checkpoint(path: str | os.PathLike, state: dict) -> str:
    """Write ``state`` to ``path`` atomically (the previous file survives any failure).

    ``state``: nested dicts (str or int keys), lists, tuples, None, bool, int, float, str,
    NumPy arrays and scalars, tinygan Tensors (saved as arrays; GPU arrays are copied to the
    host). The whole state is validated before anything touches the disk. Returns the path.
    """
    path = os.fspath(path)
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint: {path}: state must be a dict, got {type(state)}")
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(state, "state", arrays)
    doc = {"format": _FORMAT, "version": _VERSION, "state": tree}
    text = json.dumps(doc, allow_nan=True, separators=(",", ":"))
    arrays[_STRUCTURE] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def _decode(x: Any, arrays: Any, device: str | None, path: str) -> Any:
    if isinstance(x, list):
        return [_decode(v, arrays, device, path) for v in x]
    if not isinstance(x, dict):
        return x
    if "dict" in x:
        return {k: _decode(v, arrays, device, path) for k, v in x["dict"]}
    if "tuple" in x:
        return tuple(_decode(v, arrays, device, path) for v in x["tuple"])
    if "scalar" in x:
        return _read(arrays, x["scalar"], path)[()]
    if "array" in x:
        arr = _read(arrays, x["array"], path)
        if device is not None and device != "cpu":
            from tinygan.backend import to_device

            arr = to_device(arr, device)
        return arr
    raise CheckpointError(f"{path}: corrupt checkpoint structure (unknown node {list(x)})")


def _read(arrays: Any, name: str, path: str) -> np.ndarray:
    try:
        arr = arrays[name]
        if not isinstance(arr, np.ndarray):  # a zip member that is not a .npy file
            raise ValueError("not an .npy entry")
        return arr
    except KeyError:
        raise CheckpointError(
            f"{path}: corrupt checkpoint (array entry {name!r} missing)"
        ) from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"{path}: corrupt array entry {name!r} ({e})") from None


def load_checkpoint(path: str | os.PathLike, device: str | None = None) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; never executes code.

    Arrays come back as NumPy arrays with their saved dtypes (bit-exact), or on ``device``
    (e.g. ``"cuda"``) when given. Raises FileNotFoundError for a missing file and
    CheckpointError (naming the file) for a corrupt, truncated or foreign one.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        arrays = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise CheckpointError(
            f"{path}: not a readable tinygan checkpoint (corrupt or truncated: {e})"
        ) from None
    if not hasattr(arrays, "files"):
        raise CheckpointError(f"{path}: not a tinygan checkpoint (a single .npy array)")
    with arrays:
        if _STRUCTURE not in arrays.files:
            raise CheckpointError(f"{path}: not a tinygan checkpoint (no {_STRUCTURE} entry)")
        raw = _read(arrays, _STRUCTURE, path)
        try:
            doc = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: corrupt checkpoint structure ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT or "state" not in doc:
            raise CheckpointError(f"{path}: not a tinygan checkpoint (bad header)")
        if doc.get("version") != _VERSION:
            raise CheckpointError(f"{path}: unsupported checkpoint version {doc.get('version')}")
        try:
            return _decode(doc["state"], arrays, device, path)
        except (TypeError, KeyError, ValueError) as e:
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"{path}: corrupt checkpoint structure ({e})") from None
