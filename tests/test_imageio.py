"""tinygan.imageio: grids, atomic PNG writes, image loading and mode conversion."""

import os

import numpy as np
import pytest
from PIL import Image

from tinygan import imageio
from tinygan.imageio import ImageFileError, load_image, make_grid, save_image_grid


class FakeTensor:
    def __init__(self, data):
        self.data = data
        self.requires_grad = False


def test_make_grid_layout_and_values():
    x = np.stack([np.full((1, 4, 5), v, np.float32) for v in (-1.0, 0.0, 1.0)])
    g = make_grid(x, nrow=2, padding=1, pad_value=1.0)
    assert g.shape == (2 * 5 + 1, 2 * 6 + 1, 1) and g.dtype == np.uint8
    assert g[1, 1, 0] == 0 and g[1, 7, 0] == 128 and g[6, 1, 0] == 255
    assert g[0].min() == 255 and g[:, 0].min() == 255  # border
    assert g[6:10, 7:12].min() == 255  # missing 4th tile is padding
    np.testing.assert_array_equal(g[1:5, 1:6, 0], 0)
    one = make_grid(np.zeros((3, 2, 2)), padding=0, value_range=(0, 1))
    assert one.shape == (2, 2, 3)


def test_make_grid_clips_nan_and_accepts_tensors():
    x = np.array([[[[np.nan, 5.0], [-5.0, 0.5]]]], np.float32)
    g = make_grid(FakeTensor(x), padding=0, value_range=(0, 1))
    assert g[:, :, 0].tolist() == [[0, 255], [0, 128]]


@pytest.mark.parametrize(
    "shape", [(2, 2, 4, 4), (0, 1, 4, 4), (4, 4), (1, 1, 1, 4, 4)], ids=["C=2", "N=0", "2d", "5d"]
)
def test_make_grid_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        make_grid(np.zeros(shape))


def test_save_image_grid_writes_png_atomically(tmp_path, monkeypatch):
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3, 6, 7)).astype(np.float32)
    path = tmp_path / "grid.png"
    save_image_grid(x, path, nrow=3, padding=2)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        assert img.size == (3 * 9 + 2, 2 * 8 + 2)
        np.testing.assert_array_equal(np.asarray(img), make_grid(x, nrow=3))
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        save_image_grid(-x, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["grid.png"]
    with pytest.raises(ValueError, match=r"grid\.xyz"):
        save_image_grid(x, tmp_path / "grid.xyz")


def test_load_image_round_trip_and_resize(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png", channels=3)
    assert x.shape == (3, 6, 8) and x.dtype == np.float32
    np.testing.assert_allclose((x + 1) * 127.5, rgb.transpose(2, 0, 1), atol=1e-4)
    assert load_image(tmp_path / "a.png", channels=1).shape == (1, 6, 8)
    y = load_image(tmp_path / "a.png", channels=3, size=(4, 5))
    assert y.shape == (3, 4, 5) and y.min() >= -1 and y.max() <= 1
    assert load_image(tmp_path / "a.png", size=16).shape == (3, 16, 16)


@pytest.mark.parametrize(
    "mode,value,expect",
    [
        ("RGBA", (10, 20, 30, 0), 255),  # fully transparent -> white
        ("LA", (0, 255), 0),
        ("P", 0, 0),
        ("1", 1, 255),
        ("I;16", 65535, 255),
        ("CMYK", (0, 0, 0, 0), 255),
    ],
)
def test_modes_are_converted(tmp_path, mode, value, expect):
    path = tmp_path / ("m.tiff" if mode == "CMYK" else "m.png")
    Image.new(mode, (3, 2), value).save(path)
    for c in (1, 3):
        x = load_image(path, channels=c)
        assert x.shape == (c, 2, 3)
        np.testing.assert_allclose((x + 1) * 127.5, expect, atol=1)


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageFileError, match=r"bad\.png"):
        load_image(bad)
    good = tmp_path / "t.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(ImageFileError, match=r"cut\.png"):
        load_image(cut)
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        load_image(tmp_path / "missing.png")
    Image.new("F", (2, 2), 0.5).save(tmp_path / "f.tiff")
    with pytest.raises(ImageFileError, match=r"f\.tiff.*'F'"):
        load_image(tmp_path / "f.tiff")
    with pytest.raises(ValueError, match="channels"):
        imageio.open_image(good, channels=2)


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """The temporary file's 0600 (mkstemp) must not survive the rename."""
    import os

    path = tmp_path / "grid.png"
    save_image_grid(np.zeros((1, 1, 4, 4), np.float32), str(path))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
