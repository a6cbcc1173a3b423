"""The Trainer and the Loop interface: logging, grids, checkpoints, resume, NaN stop.

Besides GAN and DCGAN, a test loop (``Gadget``) uses every kind of part LOOPS.md asks for --
k critic steps on fresh batches, a gradient penalty (double backward), a control variable
updated each step (BEGAN's k_t), an image-pool-like buffer, an LR schedule and an EMA
generator -- and must resume bit-identically like the others.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import tinygan
from tinygan import nn, optim
from tinygan.autograd import Tensor
from tinygan.checkpoint import load_checkpoint
from tinygan.data import DataLoader
from tinygan.gans import NonFiniteError, Trainer, build_dataset, read_log
from tinygan.gans.dcgan import DCGAN
from tinygan.gans.gan import GAN
from tinygan.gans.loop import Loop
from tinygan.gans.trainer import checkpoint_files, load_run


class Gadget(Loop):
    """A WGAN-GP-like critic with BEGAN-like k_t, a pool, a schedule and an EMA generator."""

    data_kinds = ("points",)

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
        self.networks = {"G": G, "D": D}
        self.optimizers = {"G": optim.Adam(G.parameters(), 1e-3, (0.0, 0.9)),
                           "D": optim.Adam(D.parameters(), 1e-3, (0.0, 0.9))}  # fmt: skip
        self.schedulers = {"G": optim.LinearDecayLR(self.optimizers["G"], total=20, decay_start=0)}
        self.averages = {"G": optim.EMA(G, decay=0.9)}
        self.k_t = 0.0
        self.pool = np.zeros((0, 2), np.float32)

    def latent(self, n, generator=None):
        return {"z": (generator or self.rng).normal((n, 4))}

    def generate(self, inputs):
        return self.sampler("G")(Tensor(inputs["z"]))

    def batches_per_step(self):
        return 2

    def train_step(self, batch):
        G, D = self.networks["G"], self.networks["D"]
        for i in range(2):  # two critic steps, the second on a fresh batch
            x = self.real(batch if i == 0 else self.next_batch())
            fake = G(Tensor(self.latent(x.shape[0])["z"])).detach()
            eps = Tensor(self.rng.uniform((x.shape[0], 1)))
            mix = (eps * x + (1 - eps) * fake).detach()
            mix.requires_grad = True
            (g,) = tinygan.grad(D(mix).sum(), [mix], create_graph=True)
            penalty = ((g * g).sum(axis=1).sqrt() - 1) ** 2
            loss_d = D(fake).mean() - D(x).mean() + 10 * penalty.mean() + self.k_t * 0.0
            self.optimize("D", loss_d)
        with self.frozen("D"):
            loss_g = self.optimize("G", -D(G(Tensor(self.latent(x.shape[0])["z"]))).mean())
        self.k_t = float(np.clip(self.k_t + 0.01 * (0.5 * loss_d - loss_g), 0, 1))
        self.pool = np.concatenate([self.pool, fake.numpy()[:2]])[-6:]
        return {"loss_D": loss_d, "loss_G": loss_g, "k_t": self.k_t}

    def extra_state(self):
        return {"k_t": self.k_t, "pool": self.pool}

    def load_extra_state(self, state):
        self.k_t, self.pool = float(state["k_t"]), np.asarray(state["pool"])


GAN_CFG = {"seed": 3, "hidden": 16, "layers": 2, "nz": 4, "optimizer": "adam", "lr": 1e-3,
           "instance_noise": 0.3, "lr_decay": 0.25}  # fmt: skip
DC_CFG = {"seed": 1, "ngf": 4, "ndf": 4, "nz": 8, "lr": 2e-4}


def make(kind, out, steps, **kw):
    """A Trainer for loop ``kind`` on tiny data, built from scratch with a fixed seed."""
    if kind == "dcgan":
        cfg, (cls, spec, size, bs) = dict(DC_CFG), (DCGAN, "digits", 16, 8)
    else:
        cfg, (cls, spec, size, bs) = dict(GAN_CFG), (GAN, "ring", 32, 32)
        cls = Gadget if kind == "gadget" else cls
    cfg.update(kw.pop("cfg", {}), steps=steps)
    tinygan.manual_seed(cfg["seed"])
    ds, info = build_dataset(spec, image_size=size, seed=cfg["seed"])
    loader = DataLoader(ds, batch_size=bs, shuffle=True, drop_last=True, seed=cfg["seed"] + 2)
    loop = cls(cfg, info)
    opts = dict(sample_every=3, checkpoint_every=3, num_samples=16, seed=cfg["seed"])
    opts.update(kw)
    return Trainer(loop, loader, str(out), steps, config=cfg, progress=False, **opts)


def losses(path):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in read_log(path)]


def interrupt_at(trainer, step):
    """Make ``train_step`` raise (like a killed process) when it reaches ``step``."""
    original = trainer.loop.train_step

    def train_step(batch):
        if trainer.loop.step + 1 == step:
            raise KeyboardInterrupt("simulated kill")
        return original(batch)

    trainer.loop.train_step = train_step


@pytest.mark.parametrize("kind", ["gan", "gadget", "dcgan"])
def test_resume_after_interrupt_gives_identical_losses(tmp_path, kind):
    steps = 8
    straight = make(kind, tmp_path / "a", steps)
    straight.fit()
    broken = make(kind, tmp_path / "b", steps)
    interrupt_at(broken, 8)  # dies during step 8: checkpoints at 3 and 6 exist, log has 7 lines
    with pytest.raises(KeyboardInterrupt):
        broken.fit()
    assert len(read_log(tmp_path / "b" / "log.jsonl")) == 7
    resumed = make(kind, tmp_path / "b", steps)
    resumed.fit(resume=True)
    assert losses(tmp_path / "a" / "log.jsonl") == losses(tmp_path / "b" / "log.jsonl")
    a = load_checkpoint(straight.last_checkpoint)["loop"]["networks"]
    b = load_checkpoint(resumed.last_checkpoint)["loop"]["networks"]
    for net in a:
        for key in a[net]:
            np.testing.assert_array_equal(a[net][key], b[net][key], err_msg=f"{net}.{key}")


def test_run_directory_contents(tmp_path):
    t = make("gan", tmp_path, 7, keep=2)
    result = t.fit()
    assert result.step == 7 and not result.interrupted
    records = read_log(tmp_path / "log.jsonl")
    assert [r["step"] for r in records] == list(range(1, 8))
    for key in ("loss_D", "loss_G", "D(x)", "D(G(z))", "grad_norm_D", "grad_norm_G",
                "lr_D", "lr_G", "epoch", "time_s"):  # fmt: skip
        assert all(isinstance(r[key], float) for r in records), key
    assert all(0 < r["D(x)"] < 1 and r["grad_norm_G"] > 0 for r in records)
    assert sorted(os.listdir(tmp_path / "samples")) == [f"step_{s:07d}.png" for s in (3, 6, 7)]
    assert [s for s, _ in checkpoint_files(str(tmp_path))] == [7, 6]  # the last two kept
    assert (tmp_path / "losses.png").stat().st_size > 1000
    assert json.loads((tmp_path / "config.json").read_text())["hidden"] == 16
    state = load_run(str(tmp_path))
    assert state["step"] == 7 and state["model"] == "gan"


def test_fixed_latent_grid_is_fixed(tmp_path):
    t = make("gan", tmp_path, 3)
    z0 = t.fixed["z"].copy()
    t.fit()
    np.testing.assert_array_equal(t.fixed["z"], z0)
    np.testing.assert_array_equal(load_run(str(tmp_path))["fixed"]["z"], z0)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    t = make("gan", tmp_path, 10)
    original = t.loop.train_step

    def poisoned(batch):
        if t.loop.step + 1 == 5:  # step 5: G's output layer turns NaN
            t.loop.networks["G"][-1].weight.data_update_(lambda w: w.fill(np.nan))
        return original(batch)

    t.loop.train_step = poisoned
    with pytest.raises(NonFiniteError, match=r"step 5: .*NaN.*step_0000003\.npz"):
        t.fit()
    assert [s for s, _ in checkpoint_files(str(tmp_path))] == [3]
    state = load_run(str(tmp_path))
    assert state["step"] == 3
    for arr in state["loop"]["networks"]["G"].values():
        assert np.isfinite(arr).all()
    last = read_log(tmp_path / "log.jsonl")[-1]
    assert last["step"] == 5 and last["loss_G"] is None  # logged as valid JSON
    assert (tmp_path / "losses.png").exists()
    resumed = make("gan", tmp_path, 6)  # the kept checkpoint resumes
    assert resumed.fit(resume=True).step == 6


def test_nonfinite_weights_are_never_checkpointed(tmp_path):
    t = make("gan", tmp_path, 10)
    original = t.loop.end_step

    def end_step():  # after step 6's losses were computed, D's weights blow up
        original()
        if t.loop.step + 1 == 6:
            t.loop.networks["D"][0].bias.data_update_(lambda b: b.fill(np.inf))

    t.loop.end_step = end_step
    with pytest.raises(NonFiniteError, match="weight is NaN or infinite"):
        t.fit()
    assert [s for s, _ in checkpoint_files(str(tmp_path))] == [3]


def test_stop_request_saves_checkpoint(tmp_path):
    t = make("gan", tmp_path, 10, checkpoint_every=0)
    original = t.loop.train_step

    def train_step(batch):
        if t.loop.step + 1 == 4:
            t._stop = True  # what the Ctrl-C handler does
        return original(batch)

    t.loop.train_step = train_step
    result = t.fit()
    assert result.interrupted and result.step == 4
    assert [s for s, _ in checkpoint_files(str(tmp_path))] == [4]


def test_refuses_to_overwrite_a_run_and_needs_a_checkpoint_to_resume(tmp_path):
    make("gan", tmp_path / "r", 3).fit()
    with pytest.raises(FileExistsError, match="already holds"):
        make("gan", tmp_path / "r", 3).fit()
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        make("gan", tmp_path / "empty", 3).fit(resume=True)


def test_k_discriminator_steps_draw_fresh_batches(tmp_path):
    t = make("gan", tmp_path, 2, cfg={"d_steps": 3})
    t.fit()
    assert t.loader.position + t.loader.epoch * len(t.loader) == 6
    assert read_log(tmp_path / "log.jsonl")[-1]["epoch"] == round(6 / len(t.loader), 4)


def test_gadget_parts_are_saved(tmp_path):
    t = make("gadget", tmp_path, 4)
    t.fit()
    loop = load_run(str(tmp_path))["loop"]
    assert 0 <= loop["extra"]["k_t"] <= 1 and loop["extra"]["pool"].shape == (6, 2)
    assert loop["schedulers"]["G"]["last_epoch"] == 4
    assert loop["averages"]["G"]["num_updates"] == 4
    lr = read_log(tmp_path / "log.jsonl")
    assert lr[0]["lr_G"] > lr[-1]["lr_G"]  # the schedule acted


def test_state_dict_mismatch_is_reported(tmp_path):
    t = make("gan", tmp_path, 3)
    state = t.loop.state_dict()
    del state["optimizers"]["D"]
    with pytest.raises(ValueError, match="optimizers"):
        t.loop.load_state_dict(state)
