"""CycleGAN: the image pool, the LR schedule, the ResNet generator's shapes, each loss term
against a hand computation, the identity switch, and the CLI (train on the embedded default
and on an unpaired folder, translate, resume bit-identically).

BLAS runs on one thread here: these tiny networks make small GEMMs, which OpenBLAS's threads
slow down several times over when the 2-core machine is busy."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from PIL import Image
from threadpoolctl import threadpool_limits

import tinygan
from tinygan.checkpoint import load_checkpoint, save_checkpoint
from tinygan.cli import main
from tinygan.gans import read_log
from tinygan.gans.cyclegan import CycleGAN, lsgan_d, lsgan_g
from tinygan.gans.loop import DataInfo
from tinygan.gans.trainer import checkpoint_files
from tinygan.gans.translation import ImagePool, PatchDiscriminator, ResnetGenerator


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    with threadpool_limits(1):
        yield


TINY = ["--ngf", "4", "--ndf", "4", "--n-blocks", "1", "--batch-size", "2"]
INFO = DataInfo("image", (3, 32, 32), 10, "default", {"layout": "unpaired", "in_channels": 3})


def run(*args) -> int:
    return main([str(a) for a in args])


def strip(records):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in records]


def interrupt_after(train_step, steps: int):
    """train_step that sends this process a SIGINT (Ctrl-C) during step ``steps``."""

    def step(self, batch):
        out = train_step(self, batch)
        if self.step == steps - 1:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    return step


def tiny_loop(**config) -> CycleGAN:
    tinygan.manual_seed(0)
    base = {"data": "default", "image_size": 32, "ngf": 4, "ndf": 4, "n_blocks": 1, "seed": 0}
    return CycleGAN(base | config, INFO)


# ---------------------------------------------------------------------------- image pool
def batch(values) -> tinygan.Tensor:
    return tinygan.tensor(np.array(values, np.float32).reshape(-1, 1, 1, 1))


def test_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(size=4, seed=0)
    out = pool.query(batch([0, 1, 2]))
    np.testing.assert_array_equal(out.numpy().ravel(), [0, 1, 2])  # filling: returned as is
    out = pool.query(batch([3, 4]))  # 3 fills the pool; 4 may be swapped
    assert out.numpy().ravel()[0] == 3 and len(pool) == 4
    swapped, seen = 0, set(range(5))
    for k in range(2000):
        value = 100.0 + k
        got = float(pool.query(batch([value])).numpy().ravel()[0])
        if got != value:
            swapped += 1
            assert got in seen  # an image stored before, now replaced by the new one
        seen.add(value)
        assert value in [float(im.ravel()[0]) for im in pool.images] or got == value
    assert 0.45 < swapped / 2000 < 0.55
    assert not out.requires_grad


def test_pool_is_seeded_and_round_trips(tmp_path):
    a, b = ImagePool(3, seed=7), ImagePool(3, seed=7)
    xs = [batch([float(i), i + 0.5]) for i in range(6)]
    for x in xs[:3]:
        np.testing.assert_array_equal(a.query(x).numpy(), b.query(x).numpy())
    path = str(tmp_path / "pool.npz")
    save_checkpoint(path, {"pool": a.state_dict()})
    c = ImagePool(3, seed=0)
    c.load_state_dict(load_checkpoint(path)["pool"])
    for x in xs[3:]:
        np.testing.assert_array_equal(a.query(x).numpy(), c.query(x).numpy())
    assert [im.tolist() for im in a.images] == [im.tolist() for im in c.images]
    off = ImagePool(0)
    np.testing.assert_array_equal(off.query(xs[0]).numpy(), xs[0].numpy())
    assert len(off) == 0
    with pytest.raises(ValueError, match="pool of 3, not 0"):
        off.load_state_dict(a.state_dict())


# ---------------------------------------------------------------------------- schedule
def test_lr_constant_then_linear_to_zero():
    loop = tiny_loop(steps=10, lr=2e-4)
    seen = []
    for _ in range(10):
        seen.append(loop.learning_rates())
        loop.end_step()
    want = [2e-4] * 5 + [2e-4 * (10 - t) / 5 for t in range(5, 10)]
    for rates, w in zip(seen, want):
        assert rates["G"] == pytest.approx(w) and rates["D"] == pytest.approx(w)
    assert set(loop.schedulers) == set(loop.optimizers) == {"G", "D"}
    assert tiny_loop().schedulers == {}  # no step count: constant rate


# ---------------------------------------------------------------------------- networks
@pytest.mark.parametrize("size", [(33, 33), (17, 45), (5, 5), (32, 32), (31, 30)])
def test_resnet_generator_keeps_any_size(size):
    G = ResnetGenerator(3, 1, ngf=4, n_blocks=2)
    y = G(tinygan.randn(2, 3, *size))
    assert y.shape == (2, 1, *size)
    assert np.abs(y.numpy()).max() <= 1


def test_resnet_generator_too_small_and_patch_errors():
    G = ResnetGenerator(3, 3, ngf=4, n_blocks=1)
    with pytest.raises(ValueError, match=r"H, W >= 5, got \(1, 3, 4, 9\)"):
        G(tinygan.randn(1, 3, 4, 9))
    D = PatchDiscriminator(3, 4, 3, "instance")
    assert D(tinygan.randn(1, 3, 32, 32)).shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match="too small for n_layers 3"):
        D(tinygan.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="--image-size 16 is too small"):
        CycleGAN({"ngf": 4, "ndf": 4}, DataInfo("image", (3, 16, 16), extra={"in_channels": 3}))
    with pytest.raises(ValueError, match="same channels .A has 1, B has 3"):
        CycleGAN({}, DataInfo("image", (3, 32, 32), extra={"in_channels": 1}))
    assert CycleGAN({"lambda_identity": 0, "ngf": 2, "ndf": 2, "n_blocks": 0},
                    DataInfo("image", (3, 32, 32), extra={"in_channels": 1}))  # fmt: skip


# ---------------------------------------------------------------------------- losses
def test_lsgan_losses_by_hand():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(2, 1, 3, 3)), rng.normal(size=(2, 1, 3, 3))
    d = lsgan_d(tinygan.tensor(real), tinygan.tensor(fake)).item()
    assert d == pytest.approx(0.5 * (((real - 1) ** 2).mean() + (fake**2).mean()), rel=1e-6)
    assert lsgan_g(tinygan.tensor(fake)).item() == pytest.approx(((fake - 1) ** 2).mean())


@pytest.mark.parametrize("lambda_identity", [0.5, 0.0])
def test_generator_terms_by_hand_and_identity_switch(lambda_identity):
    loop = tiny_loop(lambda_identity=lambda_identity, lambda_cycle=10.0)
    rng = np.random.default_rng(1)
    x = tinygan.tensor(rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32))
    y = tinygan.tensor(rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32))
    terms = loop.generator_losses(x, y)
    n = {k: v for k, v in loop.networks.items()}
    with tinygan.no_grad():
        gx, fy = n["G"](x).numpy(), n["F"](y).numpy()
        want = {
            "G_adv": ((n["D_Y"](tinygan.tensor(gx)).numpy() - 1) ** 2).mean(),
            "F_adv": ((n["D_X"](tinygan.tensor(fy)).numpy() - 1) ** 2).mean(),
            "cycle_X": 10 * np.abs(n["F"](tinygan.tensor(gx)).numpy() - x.numpy()).mean(),
            "cycle_Y": 10 * np.abs(n["G"](tinygan.tensor(fy)).numpy() - y.numpy()).mean(),
        }
        if lambda_identity:
            want["idt_G"] = 5 * np.abs(n["G"](y).numpy() - y.numpy()).mean()
            want["idt_F"] = 5 * np.abs(n["F"](x).numpy() - x.numpy()).mean()
    assert set(terms) == set(want) | {"fake_x", "fake_y"}
    for k, w in want.items():
        assert terms[k].item() == pytest.approx(w, rel=1e-5), k
    out = loop.train_step((x, y))
    assert ("loss_idt_G" in out) == bool(lambda_identity)
    parts = [v for k, v in out.items() if k.startswith("loss_") and k[5:] in want]
    assert out["loss_G"] == pytest.approx(sum(parts), rel=1e-5)
    assert len(loop.pools["X"]) == len(loop.pools["Y"]) == 2


def test_training_lowers_the_cycle_loss():
    loop = tiny_loop(steps=100, lr=1e-3)
    ds, _ = CycleGAN.build_dataset({"data": "default", "image_size": 32})
    x, y = (tinygan.tensor(np.stack(v)) for v in zip(ds[0], ds[1]))
    losses = []
    for _ in range(12):
        out = loop.train_step((x, y))
        loop.end_step()
        losses.append(out["loss_cycle_X"] + out["loss_cycle_Y"])
    assert np.mean(losses[-3:]) < 0.75 * losses[0]


# ---------------------------------------------------------------------------- CLI
def test_cli_default_data_grid_translate_and_resume(tmp_path, capsys, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    common = [*TINY, "--checkpoint-every", 2, "--sample-every", 2, "--num-samples", 4,
              "--no-progress"]  # fmt: skip
    assert run("train", "cyclegan", *common, "--steps", 4, "--out", a) == 0
    records = read_log(a / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"loss_G", "loss_D_X", "loss_D_Y", "loss_cycle_X", "loss_idt_F", "lr_G"} <= set(
        records[0]
    )
    assert [r["lr_G"] for r in records] == pytest.approx([2e-4, 2e-4, 1e-4, 0.0])
    assert [s for s, _ in checkpoint_files(str(a))] == [4, 2]
    grid = Image.open(a / "samples" / "step_0000004.png")
    assert grid.size == (6 * 34 + 2, 4 * 34 + 2)  # per row: x | G(x) | F(G(x)) | y | F(y) | G(F(y))
    assert json.loads((a / "config.json").read_text())["data"] == "default"

    with monkeypatch.context() as m:  # Ctrl-C during step 2 of 4: save, stop, then resume
        m.setattr(CycleGAN, "train_step", interrupt_after(CycleGAN.train_step, 2))
        assert run("train", "cyclegan", *common, "--steps", 4, "--out", b) == 0
    assert [s for s, _ in checkpoint_files(str(b))] == [2]
    assert run("train", "cyclegan", "--resume", "--out", b, "--no-progress") == 0
    assert strip(read_log(b / "log.jsonl")) == strip(records)

    images = tmp_path / "in"
    (images / "sub").mkdir(parents=True)
    for name, size in (("a.png", (32, 32)), ("sub/b.jpg", (45, 33)), ("c.png", (7, 9))):
        Image.new("RGB", size, (200, 30, 30)).save(images / name)
    out = tmp_path / "translated"
    assert not out.exists()
    assert run("translate", "--checkpoint", a, "--input", images, "--out", out,
               "--direction", "BtoA") == 0  # fmt: skip
    assert Image.open(out / "a.png").size == (32, 32)
    assert Image.open(out / "sub" / "b.png").size == (45, 33)
    assert Image.open(out / "c.png").size == (7, 9)
    assert "3 images translated by cyclegan step 4" in capsys.readouterr().out
    assert run("eval", "--checkpoint", a, "--n", 20, "--out", tmp_path / "eval.json") == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["num_translated"] == 20 and result["frechet_distance"] > 0
    assert 0.8 < result["accuracy_real_target"] <= 1 and 0 <= result["accuracy"] <= 1
    assert "content_ratio" in result and "psnr_db" not in result  # unpaired: no targets
    assert run("translate", "--checkpoint", a, "--input", images / "a.png", "--out", out) == 0
    Image.new("RGB", (4, 20)).save(images / "tiny.png")
    assert run("translate", "--checkpoint", a, "--input", images, "--out", out) == 1
    err = capsys.readouterr().err
    assert "tiny.png (4 x 20 px)" in err and "H, W >= 5" in err
    assert not (out / "tiny.png").exists()


def test_cli_unpaired_folder_and_epochs(tmp_path):
    root = tmp_path / "horse2zebra"
    for split, colour in (("trainA", 40), ("trainB", 220), ("testA", 40), ("testB", 220)):
        (root / split).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (40 + i, 36), (colour, 10 * i, 255 - colour)).save(
                root / split / f"{i}.jpg"
            )
    out = tmp_path / "run"
    assert run("train", "cyclegan", "--data", root, *TINY, "--epochs", 2, "--out", out,
               "--sample-every", 2, "--num-samples", 2, "--no-progress") == 0  # fmt: skip
    records = read_log(out / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert [r["lr_G"] for r in records] == pytest.approx([2e-4, 2e-4, 1e-4, 0.0])
    state = load_checkpoint(str(checkpoint_files(str(out))[0][1]))
    assert state["data"]["shape"] == [3, 32, 32] and state["config"]["steps"] == 4
    assert len(state["loop"]["extra"]["pools"]["X"]["images"]) == 8
    assert (out / "samples" / "step_0000004.png").exists()
    assert run("eval", "--checkpoint", out, "--n", 4, "--out", tmp_path / "eval.json") == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["num_translated"] == 4 and "accuracy" not in result  # no labels in folders
    assert run("train", "cyclegan", "--data", tmp_path, "--steps", 1, "--out", tmp_path / "x") == 1


@pytest.mark.slow
def test_cyclegan_keeps_the_digits_slow(tmp_path):
    """400 steps of the default settings (a few minutes): the evaluation classifier reads
    G(test A) at >= 80% of its accuracy on real test B (the full 1200-step figures are in
    benchmarks/results/quality_cyclegan_*.md)."""
    from tinygan.cli import restore_loop
    from tinygan.data.translation import UnpairedDigits
    from tinygan.metrics import features_and_labels, load_classifier

    out = tmp_path / "run"
    assert run("train", "cyclegan", "--steps", 400, "--sample-every", 400, "--out", out,
               "--no-progress") == 0  # fmt: skip
    loop, _ = restore_loop(str(out))
    test, clf = UnpairedDigits("test", 32, 3, 0), load_classifier()
    _, translated = features_and_labels(loop.translate_images(test.images_A), clf)
    _, real = features_and_labels(test.images_B, clf)
    assert (translated == test.labels_A).mean() >= 0.8 * (real == test.labels_B).mean()
