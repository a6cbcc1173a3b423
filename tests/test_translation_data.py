"""The embedded translation domains (tinygan.data.translation) and the --data specs of the
image-to-image loops: shapes, disjointness, determinism, each degradation, folder layouts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tinygan.data import Digits
from tinygan.data.translation import (
    PairedDigits,
    UnpairedDigits,
    blur,
    dilate,
    edges,
    folder_dataset,
    held_out_split,
)
from tinygan.gans.cyclegan import CycleGAN
from tinygan.gans.pix2pix import Pix2Pix


@pytest.fixture(scope="module")
def unpaired_test():
    return UnpairedDigits("test", 32, 3, seed=0)


def test_dilate_by_hand():
    x = np.zeros((1, 1, 5, 5), np.float32)
    x[0, 0, 2, 2] = 1.0
    y = dilate(x, 1)
    assert y[0, 0, 1:4, 1:4].min() == 1.0 and y.sum() == 9.0
    corner = np.zeros((1, 1, 4, 4), np.float32)
    corner[0, 0, 0, 0] = 0.5
    assert dilate(corner, 1)[0, 0].tolist()[:2] == [[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0]]


def test_unpaired_domains_shapes_ranges_labels(unpaired_test):
    ds = unpaired_test
    assert ds.images_A.shape == (178, 3, 32, 32) and ds.images_B.shape == (177, 3, 32, 32)
    assert len(ds) == 178 and len(ds.labels_A) == 178 and len(ds.labels_B) == 177
    for images in (ds.images_A, ds.images_B):
        assert images.dtype == np.float32 and images.min() >= -1 and images.max() <= 1
    digits = Digits("test", 32)
    np.testing.assert_array_equal(ds.labels_A, digits.labels[0::2])
    np.testing.assert_array_equal(ds.labels_B, digits.labels[1::2])
    np.testing.assert_array_equal(ds.images_A[:, 0], digits.images[0::2, 0])  # plain grey
    assert np.all(ds.images_A[:, 0] == ds.images_A[:, 2])
    # B is coloured: per image the stroke colour differs between channels
    spread = (ds.images_B.max(axis=(2, 3)) - ds.images_B.min(axis=(2, 3))).std(axis=1)
    assert (spread > 0.05).mean() > 0.9
    a, b = ds[5]
    assert a.shape == b.shape == (3, 32, 32)


def test_unpaired_no_digit_in_both_domains(unpaired_test):
    """B's stroke masks are the dilated masks of the odd-position digits; no A digit's
    dilated mask equals any of them."""
    ds = unpaired_test
    digits = Digits("test", 32).images
    support_b = ds.images_B.max(axis=1) > -1 + 1e-6
    odd = dilate((digits[1::2] + 1) / 2, 1)[:, 0] > 1e-6
    np.testing.assert_array_equal(support_b, odd)
    support_a = dilate((ds.images_A[:, :1] + 1) / 2, 1)[:, 0] > 1e-6
    same = (support_a[:, None] == support_b[None]).all(axis=(2, 3))
    assert not same.any()


def test_unpaired_deterministic_and_seeded(unpaired_test):
    again = UnpairedDigits("test", 32, 3, seed=0)
    np.testing.assert_array_equal(again.images_B, unpaired_test.images_B)
    other = UnpairedDigits("test", 32, 3, seed=1)
    assert not np.array_equal(other.images_B, unpaired_test.images_B)
    partners = [np.array_equal(unpaired_test[i][1], again[i][1]) for i in range(10)]
    assert all(partners)
    again.set_epoch(1)
    assert not all(np.array_equal(unpaired_test[i][1], again[i][1]) for i in range(10))
    grey = UnpairedDigits("test", 32, 1, seed=0)
    assert grey.images_A.shape[1] == grey.images_B.shape[1] == 1


def test_paired_mask_blur_edges():
    mask = PairedDigits("test", 32, "mask")
    x, y = mask[0]
    assert x.shape == y.shape == (1, 32, 32)
    assert len(mask) == 355 and len(mask.labels) == 355
    changed = (mask.images_A != mask.images_B)[:, 0]
    grey = mask.images_A[:, 0] == 0.0
    assert np.all(~changed | grey)  # only the square changes, to grey
    for im in grey:
        rows, cols = np.flatnonzero(im.any(1)), np.flatnonzero(im.any(0))
        assert rows[-1] - rows[0] + 1 == 12 and cols[-1] - cols[0] + 1 == 12
        assert 4 <= rows[0] <= 32 - 4 - 12 and 4 <= cols[0] <= 32 - 4 - 12
    np.testing.assert_array_equal(PairedDigits("test", 32, "mask").images_A, mask.images_A)
    flipped = PairedDigits("test", 32, "mask", direction="BtoA")
    np.testing.assert_array_equal(flipped[3][0], mask[3][1])

    b = PairedDigits("test", 32, "blur")
    assert abs(b.images_A.mean() - b.images_B.mean()) < 0.02
    assert np.abs(np.diff(b.images_A, axis=-1)).mean() < np.abs(np.diff(b.images_B, axis=-1)).mean()
    e = PairedDigits("test", 32, "edges")
    assert set(np.unique(e.images_A)) <= {-1.0, 1.0}
    with pytest.raises(ValueError, match="unknown degradation"):
        PairedDigits("test", 32, "smudge")


def test_blur_and_edges_by_hand():
    x = np.zeros((1, 1, 9, 9), np.float32)
    x[0, 0, 4, 4] = 1.0
    y = blur(x, 1.0)
    assert y.sum() == pytest.approx(1.0, abs=1e-5) and y[0, 0, 4, 4] == y.max()
    np.testing.assert_allclose(y[0, 0], y[0, 0].T, atol=1e-7)
    step = -np.ones((1, 1, 8, 8), np.float32)
    step[..., 4:] = 1.0
    e = edges(step)
    assert (e[0, 0, :, 3:5] == 1).all() and (e[0, 0, :, :2] == -1).all()


def _png(path, size, colour):
    Image.new("RGB", size, colour).save(path)


def test_folder_layouts_and_errors(tmp_path):
    root = tmp_path / "unpaired"
    for split in ("trainA", "trainB", "testA"):
        (root / split).mkdir(parents=True)
        for i in range(3):
            _png(root / split / f"{i}.png", (40, 30), (10 * i, 100, 200))
    ds = folder_dataset("unpaired", str(root), "train", 32, 3, 0, who="cyclegan")
    a, b = ds[0]
    assert a.shape == b.shape == (3, 32, 32) and ds.A.load_size == 36
    assert held_out_split("unpaired", str(root)) == "train"  # no testB
    (root / "testB").mkdir()
    assert held_out_split("unpaired", str(root)) == "test"
    with pytest.raises(FileNotFoundError, match="cyclegan: --data .* trainA/trainB"):
        folder_dataset("unpaired", str(tmp_path), "train", 32, 3, 0, who="cyclegan")
    with pytest.raises(FileNotFoundError, match="not 'default' and not an existing folder"):
        folder_dataset("paired", str(tmp_path / "nope"), "train", 32, 3, 0, who="pix2pix")
    with pytest.raises(FileNotFoundError, match="pix2pix: --data .* train/"):
        folder_dataset("paired", str(root), "train", 32, 3, 0, who="pix2pix")
    with pytest.raises(ValueError, match="--load-size 30 is smaller than --image-size 32"):
        folder_dataset("unpaired", str(root), "train", 32, 3, 0, load_size=30, who="cyclegan")


def test_loops_build_their_data(tmp_path):
    ds, info = CycleGAN.build_dataset({"data": "default", "image_size": 32, "seed": 0})
    assert isinstance(ds, UnpairedDigits) and info.shape == (3, 32, 32)
    assert info.extra["layout"] == "unpaired" and info.num_classes == 10
    ds, info = Pix2Pix.build_dataset({"data": "default:blur", "image_size": 16})
    assert isinstance(ds, PairedDigits) and ds.degradation == "blur" and info.shape == (1, 16, 16)
    assert "A|B images in train/" in Pix2Pix.describe_data()
    assert "trainA/, trainB/" in CycleGAN.describe_data()
