"""tinygan.checkpoint: bit-exact round trips, atomic saves, clear errors on bad files."""

import math
import os
import zipfile

import numpy as np
import pytest

import tinygan
from tinygan import checkpoint
from tinygan.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


class FakeTensor:
    """Stands in for a tinygan Tensor: an array in ``.data`` plus ``requires_grad``."""

    def __init__(self, data):
        self.data = data
        self.requires_grad = True


def _state():
    rng = np.random.default_rng(3)
    return {
        "step": 10,
        "lr": 2e-4,
        "name": "dcgan",
        "done": False,
        "none": None,
        "nan": float("nan"),
        "inf": -math.inf,
        "G": {
            "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "bn.running_var": rng.random(4),  # float64
            "bn.num_batches": np.array(7, dtype=np.int64),
            "mask": np.array([True, False, True]),
            "fortran": np.asfortranarray(rng.random((3, 2))),
        },
        "opt": {"state": {0: {"m": np.zeros(3, np.float32), "t": 5}, 1: {}}, "groups": [[0, 1]]},
        "rng": np.random.default_rng(2**63 + 5).bit_generator.state,  # 128-bit ints
        "nested": [1, [2.5, "x", (3, None)], ()],
        "tuple": (1, "a"),
        "np_scalar": np.float32(1.5),
        "np_int": np.int64(-3),
        "keys": {"1": "str key", 1: "int key"},
        "t": FakeTensor(np.arange(6, dtype=np.float16).reshape(2, 3)),
        "real": tinygan.tensor(np.linspace(0, 1, 5), requires_grad=True),
    }


def _assert_same(a, b, where="state"):
    if isinstance(a, (FakeTensor, tinygan.Tensor)):
        assert isinstance(b, np.ndarray), where
        a = a.data
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), where
        assert [type(k) for k in a] == [type(k) for k in b], where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == np.ascontiguousarray(b).tobytes() or np.array_equal(a, b), where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


def test_round_trip_is_exact(tmp_path):
    state = _state()
    path = tmp_path / "ck.npz"
    assert save_checkpoint(path, state) == str(path)
    loaded = load_checkpoint(path)
    _assert_same(state, loaded)
    assert isinstance(loaded["t"], np.ndarray) and loaded["t"].dtype == np.float16
    assert isinstance(loaded["np_scalar"], np.float32)
    assert loaded["rng"]["state"]["state"] == state["rng"]["state"]["state"]
    g = np.random.default_rng()
    g.bit_generator.state = loaded["rng"]
    assert g.integers(1 << 62) == np.random.default_rng(2**63 + 5).integers(1 << 62)


def test_bad_state_is_rejected_before_touching_disk(tmp_path):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"state\['a'\]\[1\].*set"):
        save_checkpoint(path, {"a": [1, {2}]})
    with pytest.raises(TypeError, match="keys must be str or int"):
        save_checkpoint(path, {(1, 2): 3})
    with pytest.raises(TypeError, match="objects"):
        save_checkpoint(path, {"a": np.array([None, 1])})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]


@pytest.mark.parametrize("target", ["savez", "replace"])
def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch, target):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, {"step": 1, "w": np.ones(3)})

    def boom_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")  # a partial write, then a crash
        raise KeyboardInterrupt("simulated crash mid-save")

    def boom_replace(src, dst):
        raise OSError("simulated crash before rename")

    if target == "savez":
        monkeypatch.setattr(checkpoint.np, "savez", boom_savez)
    else:
        monkeypatch.setattr(os, "replace", boom_replace)
    with pytest.raises((KeyboardInterrupt, OSError), match="simulated"):
        save_checkpoint(path, {"step": 2, "w": np.zeros(3)})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]  # no temporary file left behind
    loaded = load_checkpoint(path)
    assert loaded["step"] == 1 and np.array_equal(loaded["w"], np.ones(3))


def test_overwrite_replaces_whole_file(tmp_path):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, {"w": np.ones(1000)})
    save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path) == {"step": 2}


def test_truncated_file_raises_naming_path(tmp_path):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, {"w": np.arange(1000.0), "step": 3})
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 5, 0):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=str(path).replace("\\", "\\\\")):
            load_checkpoint(path)


def test_corrupted_bytes_raise(tmp_path):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, {"w": np.arange(1000.0)})
    data = bytearray(path.read_bytes())
    data[200:210] = b"\xff" * 10  # inside the first array's data: zip CRC must catch it
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="ck.npz"):
        load_checkpoint(path)


def test_foreign_files_raise(tmp_path):
    npz = tmp_path / "other.npz"
    np.savez(npz, x=np.ones(2))
    with pytest.raises(CheckpointError, match=r"other\.npz.*not a tinygan checkpoint"):
        load_checkpoint(npz)
    npy = tmp_path / "one.npy"
    np.save(npy, np.ones(2))
    with pytest.raises(CheckpointError, match=r"one\.npy.*single \.npy"):
        load_checkpoint(npy)
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match=r"obj\.npy"):
        load_checkpoint(pickled)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.txt"):
        load_checkpoint(text)
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("__structure__.npy", b"garbage")
    with pytest.raises(CheckpointError, match=r"z\.npz"):
        load_checkpoint(tmp_path / "z.npz")


def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="no_dir"):
        save_checkpoint(tmp_path / "no_dir" / "ck.npz", {"a": 1})


def _cupy_or_skip():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # CuPy raises its own error types when there is no driver
        pass
    pytest.skip("CuPy is installed but no GPU is usable")


@pytest.mark.gpu
def test_gpu_arrays_come_back_to_host_and_can_go_to_device(tmp_path):
    cupy = _cupy_or_skip()
    w = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    path = tmp_path / "gpu.npz"
    save_checkpoint(path, {"w": cupy.asarray(w), "t": tinygan.tensor(w, device="cuda")})
    host = load_checkpoint(path)
    assert isinstance(host["w"], np.ndarray) and np.array_equal(host["w"], w)
    assert np.array_equal(host["t"], w)
    dev = load_checkpoint(path, device="cuda")
    assert isinstance(dev["w"], cupy.ndarray) and np.array_equal(dev["w"].get(), w)
