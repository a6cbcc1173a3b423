"""tinygan.data: datasets (digits, IDX, image folders, toy 2-D) and the resumable DataLoader."""

import gzip
import json
import threading
import warnings

import numpy as np
import pytest
from PIL import Image

import tinygan
from tinygan.checkpoint import load_checkpoint, save_checkpoint
from tinygan.data import (
    MNIST,
    ArrayDataset,
    DataLoader,
    Digits,
    FashionMNIST,
    Grid25Gaussians,
    ImageFolder,
    PairedImageFolder,
    Ring8Gaussians,
    TwoMoons,
    UnpairedImageFolder,
    read_idx,
)
from tinygan.data import digits as digits_module

# ----------------------------------------------------------------------------- helpers


def _png(path, size=(12, 10), seed=0, mode="RGB"):
    """A random image file; returns its pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    px = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(px).save(path)
    return px


def _loader_ids(loader, n_batches):
    """The first ``n_batches`` batches (as lists) of an index dataset, across epochs."""
    out = []
    while len(out) < n_batches:
        for batch in loader:
            out.append(batch.tolist())
            if len(out) == n_batches:
                break
    return out


# ----------------------------------------------------------------------------- digits


def test_digits_shapes_ranges_and_split():
    train, test = Digits("train"), Digits("test")
    assert train.images.shape == (1442, 1, 32, 32) and test.images.shape == (355, 1, 32, 32)
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    assert train.images.min() == -1.0 and train.images.max() == 1.0
    counts = np.bincount(test.labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 36  # stratified ~20%
    assert len(train) + len(test) == len(Digits("all")) == 1797
    x, y = train[5]
    assert x.shape == (1, 32, 32) and isinstance(y, int) and 0 <= y <= 9
    all_x = Digits("all").images.reshape(1797, -1)
    joined = np.concatenate([train.images, test.images]).reshape(1797, -1)
    assert len(np.unique(joined, axis=0)) == len(np.unique(all_x, axis=0))  # disjoint cover


def test_digits_sizes_channels_and_cache():
    for size in (8, 28, 64):
        assert Digits("test", image_size=size).images.shape == (355, 1, size, size)
    rgb = Digits("test", channels=3)
    assert rgb.images.shape == (355, 3, 32, 32)
    assert np.array_equal(rgb.images[:, 0], rgb.images[:, 2])
    assert digits_module._load(32) is digits_module._load(32)  # computed once per process
    with pytest.raises(ValueError):
        rgb.images[0, 0, 0, 0] = 5.0  # the cache cannot be corrupted through a dataset
    for bad in ({"split": "val"}, {"image_size": 4}, {"channels": 2}):
        with pytest.raises(ValueError, match="Digits"):
            Digits(**bad)


# ----------------------------------------------------------------------------- MNIST IDX


def _idx(path, array, gz=False):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return data


def test_mnist_reads_raw_and_gz(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    imgs[0, 0, 0], imgs[0, 0, 1] = 0, 255
    labels = np.arange(7) % 10
    _idx(tmp_path / "train-images-idx3-ubyte.gz", imgs, gz=True)
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, gz=True)
    _idx(tmp_path / "t10k-images-idx3-ubyte", imgs[:3])
    _idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:3])
    ds = MNIST(tmp_path)
    assert ds.images.shape == (7, 1, 28, 28) and ds.labels.tolist() == labels.tolist()
    assert ds.images[0, 0, 0, 0] == -1.0 and ds.images[0, 0, 0, 1] == 1.0
    np.testing.assert_allclose((ds.images[:, 0] + 1) * 127.5, imgs, atol=1e-4)
    assert len(MNIST(tmp_path, "test")) == 3
    assert MNIST(tmp_path, "test", image_size=32, channels=3).images.shape == (3, 3, 32, 32)
    assert FashionMNIST(tmp_path)[1][1] == 1


def test_mnist_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        MNIST(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        MNIST(tmp_path)
    imgs = np.zeros((4, 28, 28), np.uint8)
    raw = _idx(tmp_path / "train-images-idx3-ubyte", imgs)
    _idx(tmp_path / "train-labels-idx1-ubyte", np.arange(3))
    with pytest.raises(ValueError, match=r"4 images but .*has 3 labels"):
        MNIST(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: truncated"):
        read_idx(tmp_path / "train-images-idx3-ubyte")
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw)[:-30])
    with pytest.raises(ValueError, match=r"x\.gz: corrupt or truncated gzip"):
        read_idx(tmp_path / "x.gz")
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x03" + raw[4:])
    with pytest.raises(ValueError, match=r"bad: not a uint8 IDX file"):
        read_idx(tmp_path / "bad")
    _idx(tmp_path / "three_d", imgs)
    with pytest.raises(ValueError, match=r"three_d: expected a 1-d IDX file"):
        read_idx(tmp_path / "three_d", ndim=1)


# ----------------------------------------------------------------------------- image folders


@pytest.fixture
def tree(tmp_path):
    """cat/ (2 png + nested jpg), dog/ (grey png, RGBA png), a garbage file, a hidden file."""
    root = tmp_path / "pets"
    _png(root / "cat" / "a.png", seed=1)
    _png(root / "cat" / "b.png", seed=2)
    (root / "cat" / "deep").mkdir()
    Image.fromarray(np.full((20, 16, 3), 200, np.uint8)).save(root / "cat" / "deep" / "c.jpg")
    _png(root / "dog" / "d.png", seed=3, mode="L")
    Image.new("RGBA", (10, 14), (0, 0, 255, 128)).save(root / "dog" / "e.png")
    (root / "dog" / "garbage.png").write_bytes(b"not a png at all")
    (root / "dog" / ".hidden.png").write_bytes(b"ignored")
    (root / "dog" / "notes.txt").write_text("ignored")
    return root


def test_image_folder_items_and_labels(tree):
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable .*garbage\.png") as rec:
        ds = ImageFolder(tree, image_size=8, channels=3, labels="subfolder")
    assert len(rec) == 1
    assert len(ds) == 5 and ds.classes == ["cat", "dog"] and ds.skipped[0].endswith("garbage.png")
    assert ds.targets == [0, 0, 0, 1, 1]
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 8, 8) and x.dtype == np.float32
        assert -1 <= x.min() and x.max() <= 1 and y == ds.targets[i]
    with pytest.warns(UserWarning, match="skipped 1"):
        grey = ImageFolder(tree, image_size=6, channels=1, strict=False)
    assert grey[0].shape == (1, 6, 6)


def test_image_folder_centre_crop_is_exact(tmp_path):
    px = _png(tmp_path / "img" / "x.png", size=(12, 8))  # w=12, h=8: already the short side
    ds = ImageFolder(tmp_path / "img", image_size=8, load_size=8)
    expect = px[:, 2:10].transpose(2, 0, 1) / 127.5 - 1
    np.testing.assert_allclose(ds[0], expect, atol=1e-6)
    flipped = ImageFolder(tmp_path / "img", image_size=8, crop="random", flip=True, seed=4)
    seen = {flipped.set_epoch(e) or flipped[0].tobytes() for e in range(40)}
    assert len(seen) > 4  # crops x flips vary with the epoch
    flipped.set_epoch(3)
    a = flipped[0]
    flipped.set_epoch(3)
    assert np.array_equal(a, flipped[0])  # pure function of (seed, epoch, index)


def test_image_folder_errors(tree, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        ImageFolder(tmp_path / "missing_dir", 8)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"empty: no image files"):
        ImageFolder(tmp_path / "empty", 8)
    with pytest.raises(ValueError, match=r"garbage\.png"), warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageFolder(tree, 8, strict=True)
    _png(tree / "loose.png")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"loose\.png is not"):
        ImageFolder(tree, 8, labels="subfolder")
    with pytest.raises(ValueError, match="load_size"):
        ImageFolder(tree, 8, load_size=4)
    with pytest.raises(ValueError, match="crop"):
        ImageFolder(tree, 8, crop="middle")


def test_truncated_images_skip_with_one_warning(tmp_path):
    root = tmp_path / "imgs"
    for i in range(3):
        _png(root / f"{i}.png", size=(32, 32), seed=i)
    good = (root / "0.png").read_bytes()
    (root / "1.png").write_bytes(good[: len(good) // 2])  # header intact, data cut
    (root / "3.png").write_bytes(good[:10])
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable") as rec:
        ds = ImageFolder(root, 8, verify=True)
    assert len(rec) == 1 and len(ds) == 2 and len(ds.skipped) == 2
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable") as rec:
        lazy = ImageFolder(root, 8)  # header check only: 1.png passes for now
    assert len(rec) == 1 and len(lazy) == 3
    with pytest.warns(UserWarning, match=r"1\.png.*next readable") as rec:
        x = lazy[1]
    assert len(rec) == 1 and np.array_equal(x, lazy[2])  # replaced by the next file
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        lazy[1]
    assert sum(p.endswith("1.png") for p in lazy.skipped) == 1
    with pytest.warns(UserWarning):
        strict_later = ImageFolder(root, 8)
    strict_later.files.strict = True
    with pytest.raises(ValueError, match=r"1\.png"):
        strict_later[1]


def test_unpaired_folder(tmp_path):
    for i in range(3):
        _png(tmp_path / "trainA" / f"{i}.png", size=(10, 10), seed=i)
    for i in range(5):
        _png(tmp_path / "trainB" / f"{i}.png", size=(12, 10), seed=10 + i)
    ds = UnpairedImageFolder(tmp_path, image_size=8, load_size=10)
    assert len(ds) == 5
    a, b = ds[4]
    assert a.shape == b.shape == (3, 8, 8)
    ds.set_epoch(1)
    again = [np.concatenate(ds[i]).tobytes() for i in range(5)]
    ds.set_epoch(1)
    assert again == [np.concatenate(ds[i]).tobytes() for i in range(5)]
    aligned = UnpairedImageFolder(tmp_path, image_size=8, load_size=8, crop="center", flip=False,
                                  unaligned=False)  # fmt: skip
    a0, b3 = aligned[3]
    assert np.array_equal(a0, aligned.A[0]) and np.array_equal(b3, aligned.B[3])
    with pytest.raises(FileNotFoundError, match=r"testA: no such directory.*trainA"):
        UnpairedImageFolder(tmp_path, split="test")


def test_paired_folder_applies_same_crop_and_flip(tmp_path):
    yy, xx = np.mgrid[0:16, 0:16]
    a = np.stack([xx * 12, yy * 12, (xx + yy) * 6], -1).astype(np.uint8)  # smooth
    ab = np.concatenate([a, 255 - a], axis=1)  # B = inverted A, same geometry
    (tmp_path / "train").mkdir()
    Image.fromarray(ab).save(tmp_path / "train" / "0.png")
    ds = PairedImageFolder(tmp_path, image_size=12, load_size=14, seed=1)
    saw_flip = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        x, y = ds[0]
        assert x.shape == y.shape == (3, 12, 12)
        np.testing.assert_allclose(x, -y, atol=2.5 / 127.5)
        saw_flip.add(bool(x[0, 0, 0] > x[0, 0, -1]))
    assert saw_flip == {True, False}
    ds.set_epoch(0)
    rev = PairedImageFolder(tmp_path, image_size=12, load_size=14, seed=1, direction="BtoA")
    assert np.array_equal(rev[0][0], ds[0][1]) and np.array_equal(rev[0][1], ds[0][0])
    with pytest.raises(FileNotFoundError, match="val"):
        PairedImageFolder(tmp_path, split="val")


# ----------------------------------------------------------------------------- toy 2-D


def test_toy_distributions():
    ring = Ring8Gaussians(size=4000, seed=0)
    assert ring.modes.shape == (8, 2) and ring.std == 0.02
    np.testing.assert_allclose(np.linalg.norm(ring.modes, axis=1), 2.0)
    d = np.linalg.norm(ring.points[:, None] - ring.modes[None], axis=2)
    assert d.min(axis=1).max() < 6 * 0.02 * 1.5
    assert np.array_equal(d.argmin(axis=1), ring.labels)
    assert np.bincount(ring.labels).min() > 400
    grid = Grid25Gaussians(size=100)
    assert grid.modes.shape == (25, 2) and set(grid.modes[:, 0]) == {-4, -2, 0, 2, 4}
    assert ring.get_batch(np.array([3, 1])).shape == (2, 2) and ring[0].dtype == np.float32
    s1 = ring.sample(10, np.random.default_rng(5))
    assert np.array_equal(s1, ring.sample(10, 5)) and s1.shape == (10, 2)
    assert np.array_equal(ring.sample(10, tinygan.Generator(5)), s1)
    moons = TwoMoons(size=500, seed=1)
    assert moons.modes is None and set(moons.labels.tolist()) == {0, 1}
    x = moons.points
    assert -1.5 < x[:, 0].min() and x[:, 0].max() < 2.5


# ----------------------------------------------------------------------------- DataLoader


def test_loader_batches_and_tensors():
    ds = ArrayDataset(np.arange(10, dtype=np.float64).reshape(10, 1), np.arange(10) % 3)
    loader = DataLoader(ds, batch_size=4)
    assert len(loader) == 3 and len(DataLoader(ds, 4, drop_last=True)) == 2
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 1), (4, 1), (2, 1)]
    x, y = batches[0]
    assert isinstance(x, tinygan.Tensor) and x.dtype == np.float32 and x.device == "cpu"
    assert y.dtype == np.int64 and y.numpy().tolist() == [0, 1, 2, 0]
    assert [b[0].shape[0] for b in DataLoader(ds, 4, drop_last=True)] == [4, 4]


def test_loader_collates_item_datasets(tree):
    with pytest.warns(UserWarning):
        ds = ImageFolder(tree, image_size=8, labels="subfolder")
    x, y = next(iter(DataLoader(ds, batch_size=4, device=None)))
    assert x.shape == (4, 3, 8, 8) and x.dtype == np.float32
    assert y.dtype == np.int64 and y.tolist() == [0, 0, 0, 1]


def test_loader_uses_get_batch():
    class Fast(ArrayDataset):
        def __getitem__(self, i):
            raise AssertionError("per-item path used")

    out = list(DataLoader(Fast(np.arange(6)), batch_size=4, device=None))
    assert [b.tolist() for b in out] == [[0, 1, 2, 3], [4, 5]]


def test_shuffle_is_seeded_permutation_per_epoch():
    ds = ArrayDataset(np.arange(10))
    loader = DataLoader(ds, batch_size=5, shuffle=True, seed=3, device=None)
    e0, e1 = (sum(_loader_ids(loader, 2), []) for _ in range(2))
    assert sorted(e0) == sorted(e1) == list(range(10)) and e0 != e1
    again = DataLoader(ds, batch_size=5, shuffle=True, seed=3, device=None)
    assert sum(_loader_ids(again, 4), []) == e0 + e1
    gen = DataLoader(ds, 5, shuffle=True, generator=tinygan.Generator(3), device=None)
    assert sorted(sum(_loader_ids(gen, 2), [])) == list(range(10))


@pytest.mark.parametrize("prefetch", [0, 2])
def test_resume_mid_epoch_gives_identical_batches(prefetch, tmp_path):
    ds = ArrayDataset(np.arange(23))
    make = lambda: DataLoader(ds, 4, shuffle=True, seed=11, device=None, prefetch=prefetch)  # noqa: E731
    full = _loader_ids(make(), 20)  # 6 batches/epoch: covers 3+ epochs
    first = make()
    seen = []
    for epoch in range(2):
        for batch in first:
            seen.append(batch.tolist())
            if epoch == 1 and len(seen) == 9:
                break
    state = json.loads(json.dumps(first.state_dict()))  # must survive JSON
    assert state["epoch"] == 1 and state["position"] == 3
    ck = save_checkpoint(tmp_path / "ck.npz", {"loader": first.state_dict()})
    assert load_checkpoint(ck)["loader"] == state  # and a checkpoint
    resumed = make()
    resumed.load_state_dict(state)
    assert seen + _loader_ids(resumed, 11) == full


def test_state_after_last_batch_points_at_next_epoch():
    loader = DataLoader(ArrayDataset(np.arange(6)), 3, shuffle=True, seed=0, device=None)
    it = iter(loader)
    next(it)
    assert (loader.epoch, loader.position) == (0, 1)
    next(it)
    assert (loader.epoch, loader.position) == (1, 0)
    resumed = DataLoader(ArrayDataset(np.arange(6)), 3, shuffle=True, seed=0, device=None)
    resumed.load_state_dict(loader.state_dict())
    assert _loader_ids(resumed, 2) == _loader_ids(loader, 2)


def test_resume_reproduces_random_crops(tmp_path):
    for i in range(5):
        _png(tmp_path / f"{i}.png", size=(12, 12), seed=i)
    make = lambda: DataLoader(  # noqa: E731
        ImageFolder(tmp_path, 8, crop="random", flip=True, seed=2), 2, shuffle=True, seed=1,
        device=None, prefetch=1,
    )  # fmt: skip
    full = [b.copy() for _, b in zip(range(7), _iter_forever(make()), strict=False)]
    first = make()
    head = [b.copy() for _, b in zip(range(4), _iter_forever(first), strict=False)]
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    tail = [b.copy() for _, b in zip(range(3), _iter_forever(resumed), strict=False)]
    assert all(np.array_equal(a, b) for a, b in zip(full, head + tail, strict=True))


def test_worker_threads_do_not_change_batches(tmp_path):
    for i in range(7):
        _png(tmp_path / f"{i}.png", size=(12, 12), seed=i)
    ds = ImageFolder(tmp_path, 8, crop="random", flip=True, seed=2)
    runs = [
        [b.copy() for b in DataLoader(ds, 3, shuffle=True, seed=1, device=None, **kw)]
        for kw in ({}, {"num_workers": 3}, {"num_workers": 2, "prefetch": 2})
    ]
    for run in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0], run, strict=True))


def _iter_forever(loader):
    while True:
        yield from loader


def test_load_state_dict_validates_and_retires_iterators():
    loader = DataLoader(ArrayDataset(np.arange(8)), 2, shuffle=True, seed=0, device=None)
    state = loader.state_dict()
    other = DataLoader(ArrayDataset(np.arange(9)), 2, shuffle=True, device=None)
    with pytest.raises(ValueError, match="num_items is 8 in the state but 9"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="position 7"):
        loader.load_state_dict({**state, "position": 7})
    with pytest.raises(ValueError, match="missing keys"):
        loader.load_state_dict({"epoch": 0})
    it = iter(loader)
    next(it)
    it2 = iter(loader)
    with pytest.raises(RuntimeError, match="retired"):
        next(it)
    assert next(it2).shape == (2,)


def test_loader_argument_errors():
    ds = ArrayDataset(np.arange(3))
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ds, 0)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        DataLoader(ds, 4, drop_last=True)
    with pytest.raises(ValueError, match="generator or seed"):
        DataLoader(ds, 1, generator=np.random.default_rng(), seed=1)


def test_prefetch_thread_stops_and_forwards_errors():
    before = threading.active_count()
    loader = DataLoader(ArrayDataset(np.arange(100)), 2, device=None, prefetch=3)
    for _ in loader:
        break
    assert threading.active_count() == before

    class Broken(ArrayDataset):
        def get_batch(self, indices):
            if indices[0] >= 4:
                raise KeyError("broken item")
            return super().get_batch(indices)

    got = []
    with pytest.raises(KeyError, match="broken item"):
        for b in DataLoader(Broken(np.arange(10)), 2, device=None, prefetch=2):
            got.append(b.tolist())
    assert got == [[0, 1], [2, 3]] and threading.active_count() == before


@pytest.mark.gpu
def test_loader_puts_batches_on_the_gpu():
    cupy = pytest.importorskip("cupy")
    try:
        gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # CuPy raises its own error types when there is no driver
        gpus = 0
    if gpus == 0:
        pytest.skip("CuPy is installed but no GPU is usable")
    ds = Digits("test", image_size=16)
    x, y = next(iter(DataLoader(ds, 8, device="cuda")))
    assert x.device == "cuda" and y.device == "cuda" and x.dtype == np.float32
    assert np.array_equal(x.numpy(), ds.images[:8]) and y.numpy().tolist() == ds.labels[:8].tolist()
