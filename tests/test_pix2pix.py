"""pix2pix: the U-Net's depth and shapes (and its clear error), the PatchGAN's 70 x 70
receptive field, the losses against a hand computation, the L1-only baseline, and the CLI
(embedded default and a paired folder, grids, translate, Ctrl-C resume).

BLAS runs on one thread here (see tests/test_cyclegan.py)."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from PIL import Image
from threadpoolctl import threadpool_limits

import tinygan
from tinygan.cli import main
from tinygan.gans import read_log
from tinygan.gans.loop import DataInfo
from tinygan.gans.pix2pix import Pix2Pix, d_loss, g_loss
from tinygan.gans.trainer import checkpoint_files
from tinygan.gans.translation import PatchDiscriminator, UNetGenerator, patch_receptive_field
from tinygan.gans.translation import unet_depth as depth_for


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    with threadpool_limits(1):
        yield


TINY = ["--ngf", "4", "--ndf", "4", "--batch-size", "4", "--no-progress"]


def run(*args) -> int:
    return main([str(a) for a in args])


def strip(records):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in records]


# ---------------------------------------------------------------------------- networks
def test_unet_depth_adapts_and_errors():
    assert [depth_for(s) for s in (32, 48, 64, 256, 512, 24)] == [5, 4, 6, 8, 8, 3]
    assert depth_for(64, 3) == 3
    with pytest.raises(ValueError, match=r"--image-size 30 is not divisible by 2\^depth = 32"):
        depth_for(30, 5)
    with pytest.raises(ValueError, match="--image-size 33 is odd"):
        depth_for(33)
    with pytest.raises(ValueError, match="--depth must be >= 1"):
        depth_for(32, 0)


@pytest.mark.parametrize("shape,depth", [((32, 32), 5), ((48, 48), 4), ((16, 40), 3)])
def test_unet_shapes(shape, depth):
    G = UNetGenerator(3, 1, depth, ngf=4)
    assert len(G.down) == len(G.up) == depth
    y = G(tinygan.randn(2, 3, *shape))
    assert y.shape == (2, 1, *shape) and np.abs(y.numpy()).max() <= 1
    with pytest.raises(ValueError, match=r"\(1, 3, 36, 36\) needs H and W divisible by 2\^depth"):
        UNetGenerator(3, 1, 4, ngf=4)(tinygan.randn(1, 3, 36, 36))


def test_unet_dropout_in_first_decoder_blocks_and_eval_is_deterministic():
    G = UNetGenerator(1, 1, 5, ngf=4)
    names = [type(m).__name__ for m in G.up.modules()]
    assert names.count("Dropout") == 3
    assert [any(type(m).__name__ == "Dropout" for m in b.modules()) for b in G.up] == [
        True, True, True, False, False,
    ]  # fmt: skip
    x = tinygan.randn(2, 1, 32, 32)
    G.eval()
    np.testing.assert_array_equal(G(x).numpy(), G(x).numpy())


def test_patchgan_receptive_field_is_70():
    assert [patch_receptive_field(n) for n in (1, 2, 3, 4, 5)] == [16, 34, 70, 142, 286]
    tinygan.manual_seed(0)
    D = PatchDiscriminator(1, ndf=2, n_layers=3, norm="batch").eval()
    x = tinygan.randn(1, 1, 120, 120, requires_grad=True)
    out = D(x)
    assert out.shape == (1, 1, 13, 13)
    out[0, 0, 6, 6].backward()
    seen = np.flatnonzero(np.abs(x.grad.numpy()[0, 0]).sum(0))
    assert seen[-1] - seen[0] + 1 == 70


# ---------------------------------------------------------------------------- losses
def test_losses_by_hand():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(2, 1, 2, 2)), rng.normal(size=(2, 1, 2, 2))

    def softplus(v):
        return np.log1p(np.exp(v))

    want_d = 0.5 * (softplus(-real).mean() + softplus(fake).mean())
    assert d_loss(tinygan.tensor(real), tinygan.tensor(fake)).item() == pytest.approx(want_d)
    out, target = rng.uniform(-1, 1, (2, 1, 4, 4)), rng.uniform(-1, 1, (2, 1, 4, 4))
    total, l1, gan = g_loss(tinygan.tensor(fake), tinygan.tensor(out), tinygan.tensor(target), 100)
    assert l1.item() == pytest.approx(np.abs(out - target).mean())
    assert gan.item() == pytest.approx(softplus(-fake).mean())
    assert total.item() == pytest.approx(softplus(-fake).mean() + 100 * np.abs(out - target).mean())
    total, l1, gan = g_loss(None, tinygan.tensor(out), tinygan.tensor(target), 7.0, 0.0)
    assert gan is None and total.item() == pytest.approx(7 * np.abs(out - target).mean())


def _loop(**config) -> Pix2Pix:
    tinygan.manual_seed(0)
    base = {"data": "default", "image_size": 32, "ngf": 4, "ndf": 4, "seed": 0} | config
    _, info = Pix2Pix.build_dataset(base)
    return Pix2Pix(base, info)


def test_train_step_logs_terms_and_l1_only_baseline_has_no_d():
    loop = _loop()
    ds, _ = Pix2Pix.build_dataset({"data": "default", "image_size": 32})
    x, y = (tinygan.tensor(np.stack(v)) for v in zip(*[ds[i] for i in range(4)]))
    out = loop.train_step((x, y))
    assert set(out) == {"loss_D", "loss_G", "loss_G_L1", "loss_G_GAN", "D(x,y)", "D(x,G(x))"}
    assert out["loss_G"] == pytest.approx(out["loss_G_GAN"] + 100 * out["loss_G_L1"], rel=1e-5)
    base = _loop(lambda_gan=0.0, lr=2e-3)
    assert set(base.networks) == set(base.optimizers) == {"G"}
    losses = [base.train_step((x, y))["loss_G_L1"] for _ in range(20)]
    assert losses[-1] < 0.7 * losses[0]
    with pytest.raises(ValueError, match="translates AtoB .* no BtoA generator"):
        base.translator("BtoA")
    with pytest.raises(ValueError, match="too small for a PatchGAN with --n-layers 3"):
        Pix2Pix({}, DataInfo("image", (1, 16, 16), extra={"in_channels": 1}))


# ---------------------------------------------------------------------------- CLI
def test_cli_default_data_grid_resume_translate(tmp_path, capsys, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    common = [*TINY, "--checkpoint-every", 2, "--sample-every", 2, "--num-samples", 6]
    assert run("train", "pix2pix", *common, "--steps", 4, "--out", a) == 0
    records = read_log(a / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"loss_D", "loss_G", "loss_G_L1", "loss_G_GAN", "grad_norm_G", "lr_D"} <= set(records[0])
    grid = Image.open(a / "samples" / "step_0000004.png")
    assert grid.size == (3 * 2 * 34 + 2, 3 * 34 + 2)  # 2 triplets per row: input|output|target
    assert [s for s, _ in checkpoint_files(str(a))] == [4, 2]

    def interrupted(self, batch, original=Pix2Pix.train_step):
        out = original(self, batch)
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    with monkeypatch.context() as m:
        m.setattr(Pix2Pix, "train_step", interrupted)
        assert run("train", "pix2pix", *common, "--steps", 4, "--out", b) == 0
    assert run("train", "pix2pix", "--resume", "--out", b, "--no-progress") == 0
    assert strip(read_log(b / "log.jsonl")) == strip(records)  # dropout noise included

    images = tmp_path / "in"
    images.mkdir()
    for name, size in (("a.png", (32, 32)), ("b.png", (64, 32))):
        Image.new("L", size, 128).save(images / name)
    out = tmp_path / "out"
    assert run("translate", "--checkpoint", a, "--input", images, "--out", out) == 0
    assert sorted(os.listdir(out)) == ["a.png", "b.png"]
    assert Image.open(out / "b.png").size == (64, 32)
    Image.new("L", (40, 32)).save(images / "c.png")
    assert run("translate", "--checkpoint", a, "--input", images, "--out", tmp_path / "o2") == 1
    err = capsys.readouterr().err
    assert "c.png (40 x 32 px)" in err and "divisible by 2^depth = 32" in err
    assert not (tmp_path / "o2").exists()
    assert run("translate", "--checkpoint", a, "--input", images, "--direction", "BtoA",
               "--out", out) == 1  # fmt: skip
    assert "no BtoA generator" in capsys.readouterr().err
    assert run("eval", "--checkpoint", a, "--n", 30, "--out", tmp_path / "eval.json") == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["num_translated"] == 30 and result["l1"] > 0 and result["psnr_db"] > 0
    assert result["accuracy_real_target"] > 0.9  # the real digits


def test_cli_paired_folder_btoa(tmp_path, capsys):
    root = tmp_path / "facades"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for i in range(5):
            ab = np.zeros((40, 80, 3), np.uint8)
            ab[:, :40] = 30 * i  # A: flat grey
            ab[:, 40:, 0] = 200  # B: red
            Image.fromarray(ab).save(root / split / f"{i}.jpg")
    out = tmp_path / "run"
    assert run("train", "pix2pix", "--data", root, "--direction", "BtoA", *TINY, "--steps", 2,
               "--sample-every", 2, "--num-samples", 3, "--out", out) == 0  # fmt: skip
    assert (out / "samples" / "step_0000002.png").exists()
    records = read_log(out / "log.jsonl")
    assert len(records) == 2 and records[-1]["loss_G_L1"] > 0
    assert run("train", "pix2pix", "--data", root, "--image-size", 36, "--depth", 3, *TINY,
               "--steps", 1, "--out", tmp_path / "bad") == 1  # fmt: skip
    assert "--image-size 36 is not divisible by 2^depth = 8" in capsys.readouterr().err


@pytest.mark.slow
def test_pix2pix_restores_masked_digits_slow(tmp_path):
    """300 steps of the default settings: on the held-out pairs the output is closer to the
    target than the masked input is (PSNR up by >= 3 dB) and the classifier reads it better."""
    from tinygan.cli import restore_loop
    from tinygan.data.translation import PairedDigits
    from tinygan.metrics import features_and_labels, load_classifier

    out = tmp_path / "run"
    assert run("train", "pix2pix", "--steps", 300, "--sample-every", 300, "--out", out,
               "--no-progress") == 0  # fmt: skip
    loop, _ = restore_loop(str(out))
    test, clf = PairedDigits("test", 32, "mask"), load_classifier()
    restored = loop.translate_images(test.images_A)

    def psnr(a):
        mse = (((a - test.images_B) / 2) ** 2).reshape(len(a), -1).mean(1)
        return float((10 * np.log10(1 / np.maximum(mse, 1e-12))).mean())

    assert psnr(restored) >= psnr(test.images_A) + 3
    accuracy = [(features_and_labels(x, clf)[1] == test.labels).mean()
                for x in (restored, test.images_A)]  # fmt: skip
    assert accuracy[0] > accuracy[1]
