"""GAN and DCGAN: losses, architectures, and measured sample quality.

The quality checks train real models: GAN on the ring of 8 Gaussians (CI-sized) and, behind
the ``slow`` marker, DCGAN on the embedded digits (the acceptance run of issue 5).
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import tinygan
from tinygan import nn
from tinygan.autograd import Tensor
from tinygan.data import DataLoader
from tinygan.gans import DataInfo, Trainer, build_dataset, registry
from tinygan.gans.dcgan import DCGAN, dcgan_geometry
from tinygan.gans.gan import GAN, adversarial_losses
from tinygan.metrics import toy_metrics
from tinygan.random import Generator


# ---------------------------------------------------------------------------- losses
def test_losses_are_the_papers_formulas():
    logits = Tensor(np.array([[-3.0], [0.0], [2.0]]))
    p = 1 / (1 + np.exp(-logits.numpy()))
    d_loss, g_ns = adversarial_losses("nonsaturating")
    _, g_mm = adversarial_losses("minimax")
    real = Tensor(np.array([[1.0], [4.0], [-1.0]]))
    p_real = 1 / (1 + np.exp(-real.numpy()))
    expected_d = -np.log(p_real).mean() - np.log(1 - p).mean()
    assert d_loss(real, logits).item() == pytest.approx(expected_d, rel=1e-6)
    assert g_ns(logits).item() == pytest.approx(-np.log(p).mean(), rel=1e-6)
    assert g_mm(logits).item() == pytest.approx(np.log(1 - p).mean(), rel=1e-6)
    with pytest.raises(ValueError, match="--g-loss"):
        adversarial_losses("wasserstein")


def test_minimax_loss_saturates_where_nonsaturating_does_not():
    """When D confidently rejects G(z) (logit -8), d loss / d logit is ~0 for the minimax loss
    and ~-1 for the non-saturating one: the contrast Goodfellow et al. (2014) draw."""
    grads = {}
    for name in ("minimax", "nonsaturating"):
        x = Tensor(np.array([[-8.0]]), requires_grad=True)
        adversarial_losses(name)[1](x).backward()
        grads[name] = x.grad.item()
    assert abs(grads["minimax"]) < 1e-3
    assert grads["nonsaturating"] == pytest.approx(-1.0, abs=1e-3)


# ---------------------------------------------------------------------------- architectures
def test_registry_lists_gan_and_dcgan():
    loops = registry.available()
    assert loops["gan"] is GAN and loops["dcgan"] is DCGAN
    with pytest.raises(ValueError, match="available: .*dcgan"):
        registry.get("nope")


@pytest.mark.parametrize("size, channels", [(28, 1), (32, 1), (64, 3)])
def test_dcgan_shapes_and_paper_details(size, channels):
    tinygan.manual_seed(0)
    info = DataInfo("image", (channels, size, size), 10, "test")
    loop = DCGAN({"ngf": 8, "ndf": 8}, info)
    G, D = loop.networks["G"], loop.networks["D"]
    x = loop.generate(loop.latent(3, Generator(0)))
    assert x.shape == (3, channels, size, size)
    assert np.abs(x.numpy()).max() <= 1.0
    assert loop.forward_d(x).shape == (3, 1)
    layers = list(G.modules())
    assert isinstance(layers[-1], nn.Tanh)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in layers) == dcgan_geometry(size)[1]
    d_layers = [m for m in D.modules() if not isinstance(m, nn.Sequential)]
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)
    assert d_layers[1].negative_slope == 0.2  # no BN after D's first layer
    w = np.concatenate([m.weight.numpy().ravel() for m in layers if isinstance(m, nn.Conv2d
                        | nn.ConvTranspose2d)])  # fmt: skip
    assert abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002
    opt = loop.optimizers["G"]
    assert opt.param_groups[0]["lr"] == 2e-4 and opt.param_groups[0]["betas"] == (0.5, 0.999)


def test_dcgan_rejects_sizes_it_cannot_build():
    assert dcgan_geometry(28) == (7, 2) and dcgan_geometry(64) == (4, 4)
    with pytest.raises(ValueError, match="--image-size 30"):
        dcgan_geometry(30)
    with pytest.raises(ValueError, match="needs image data"):
        DCGAN({}, DataInfo("points", (2,), 0, "ring"))


def test_instance_noise_and_lr_decay_schedules():
    info = DataInfo("points", (2,), 0, "ring")
    loop = GAN({"instance_noise": 0.5, "lr_decay": 0.5, "steps": 100, "optimizer": "adam",
                "lr": 1e-3}, info)  # fmt: skip
    assert loop.noise_std() == 0.5
    loop.step = 35
    assert loop.noise_std() == pytest.approx(0.25)
    loop.step = 70
    assert loop.noise_std() == 0.0
    lrs = []
    for _ in range(100):
        lrs.append(loop.learning_rates()["G"])
        loop.end_step()
    assert lrs[49] == 1e-3 and lrs[75] == pytest.approx(0.5e-3) and lrs[99] == pytest.approx(2e-5)
    assert GAN({}, info).noise_std() == 0.0 and GAN({}, info).schedulers == {}


def test_gan_on_flattened_images_and_sgd_by_default():
    tinygan.manual_seed(0)
    ds, info = build_dataset("digits", image_size=16)
    loop = GAN({"hidden": 32, "layers": 1}, info)
    assert type(loop.optimizers["D"]).__name__ == "SGD"
    assert loop.optimizers["D"].param_groups[0]["lr"] == 0.05
    assert GAN({"optimizer": "adam"}, info).optimizers["G"].param_groups[0]["lr"] == 2e-3
    assert loop.optimizers["D"].param_groups[0]["momentum"] == 0.5
    batch = tuple(Tensor(a) for a in ds.get_batch(np.arange(16)))
    out = loop.train_step(batch)
    assert set(out) == {"loss_D", "loss_G", "D(x)", "D(G(z))"}
    assert loop.sample(5).shape == (5, 1, 16, 16)


# ---------------------------------------------------------------------------- quality
# The settings of benchmarks/results/quality_gan_ring_*.md (there with the CLI command).
RING = {"seed": 0, "optimizer": "adam", "lr": 2e-3, "hidden": 64, "layers": 3, "nz": 16,
        "instance_noise": 0.5, "lr_decay": 0.5, "steps": 8000, "batch_size": 256}  # fmt: skip


def train_ring(tmp_path, **changes) -> dict:
    """GAN on the ring of 8 Gaussians through the Trainer; metrics of 2500 samples."""
    cfg = {**RING, **changes}
    tinygan.manual_seed(cfg["seed"])
    ds, info = build_dataset("ring", seed=cfg["seed"])
    loader = DataLoader(ds, batch_size=256, shuffle=True, drop_last=True, seed=cfg["seed"] + 2)
    loop = GAN(cfg, info)
    trainer = Trainer(loop, loader, str(tmp_path), cfg["steps"], config=cfg, sample_every=0,
                      checkpoint_every=0, seed=cfg["seed"], progress=False)  # fmt: skip
    with threadpool_limits(1):  # small GEMMs: one BLAS thread is several times faster here
        trainer.fit()
    return toy_metrics(loop.sample(2500, Generator(123)), ds)


def test_nonsaturating_gan_covers_the_ring(tmp_path):
    m = train_ring(tmp_path, g_loss="nonsaturating")
    assert m["modes_covered"] >= 7, m
    assert m["high_quality"] >= 0.70, m


@pytest.mark.slow
def test_dcgan_digits_quality(tmp_path):
    """Issue 5's acceptance: the default `tinygan train dcgan`, then `tinygan eval`."""
    from tinygan.cli import main

    out = tmp_path / "run"
    assert main(["train", "dcgan", "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    assert main(["eval", "--checkpoint", str(out), "--out", str(tmp_path / "e.json")]) == 0
    import json

    result = json.loads((tmp_path / "e.json").read_text())
    assert result["reduction"] >= 0.80, result
    assert result["classes_present"] == 10, result
