"""CycleGAN: Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks", ICCV 2017.

Two generators G: X -> Y and F: Y -> X and two discriminators D_Y (real y vs G(x)) and D_X
(real x vs F(y)) learn from unpaired images of X (domain A) and Y (domain B). The full
objective (paper, eq. 3, plus the identity term of section 5.2)::

    L = L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda L_cyc(G, F) + lambda_id lambda L_idt(G, F)
    L_cyc = E|F(G(x)) - x|_1 + E|G(F(y)) - y|_1                       lambda = 10
    L_idt = E|G(y) - y|_1 + E|F(x) - x|_1                             lambda_id = 0.5

with the least-squares GAN loss (Mao et al. 2017; paper section 4): G minimises
E[(D_Y(G(x)) - 1)^2], D_Y minimises 1/2 (E[(D_Y(y) - 1)^2] + E[D_Y(G(x))^2]) -- halved, as
in the paper -- and likewise F and D_X. D sees generated images through an
:class:`~tinygan.gans.translation.ImagePool` of the 50 latest (Shrivastava et al. 2017).

- G, F: :class:`~tinygan.gans.translation.ResnetGenerator` (reflection padding, instance
  norm, ``--n-blocks`` residual blocks: 6 at 128 px, 9 at 256 px in the paper).
- D_X, D_Y: 70 x 70 :class:`~tinygan.gans.translation.PatchDiscriminator` with instance norm.
- Adam(2e-4, betas (0.5, 0.999)) -- one optimizer over G and F ("G"), one over D_X and D_Y
  ("D"); Adam is per-parameter, so this equals one per network. The learning rate is
  constant for the first half of the steps, then decays linearly to zero (paper 100 + 100
  epochs; :class:`~tinygan.optim.LinearDecayLR`, one per optimizer, stepped each step).
- Weights ~ N(0, 0.02^2); batch 1 in the paper.

Data: ``--data default`` (embedded plain digits <-> coloured bold digits, see
:mod:`tinygan.data.translation`) or a folder in the CycleGAN layout (trainA, trainB, testA,
testB). Defaults here (ngf = ndf = 16, 3 residual blocks, batch 4, 32 px) are sized for a
2-core CPU: see benchmarks/results/quality_cyclegan_*.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from tinygan import functions as F
from tinygan import nn, optim
from tinygan.autograd import Tensor
from tinygan.gans.loop import DataInfo
from tinygan.gans.translation import (
    DIRECTIONS,
    ImagePool,
    PatchDiscriminator,
    ResnetGenerator,
    TranslationLoop,
)

__all__ = ["CycleGAN", "lsgan_d", "lsgan_g"]


def lsgan_d(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """1/2 [mean (D(real) - 1)^2 + mean D(fake)^2]."""
    return (F.mse(d_real, 1.0) + F.mse(d_fake, 0.0)) * 0.5


def lsgan_g(d_fake: Tensor) -> Tensor:
    """mean (D(G(x)) - 1)^2."""
    return F.mse(d_fake, 1.0)


class CycleGAN(TranslationLoop):
    """CycleGAN (Zhu et al. 2017): two ResNet generators, two PatchGANs, LSGAN + cycle L1."""

    name = "cyclegan"
    summary = "CycleGAN (Zhu et al. 2017): ResNet G, F; PatchGANs; LSGAN + cycle + identity"
    layout = "unpaired"
    defaults = {"data": "default", "lr": 2e-4, "batch_size": 4, "steps": 1200}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add(
            "--lambda-cycle",
            type=float,
            default=10.0,
            help="weight lambda of the cycle-consistency L1 terms (default 10)",
        )
        add(
            "--lambda-identity",
            type=float,
            default=0.5,
            help="identity loss weight as a fraction of lambda (default 0.5; 0: off)",
        )
        add(
            "--ngf", type=int, default=16, help="G's channels after its stem (default 16; paper 64)"
        )
        add(
            "--n-blocks",
            type=int,
            default=None,
            help="residual blocks of G and F (default 9 at >= 256 px, 6 at >= 128, else 3)",
        )
        add(
            "--pool-size",
            type=int,
            default=50,
            help="generated images kept for D per domain (default 50; 0: no pool)",
        )
        cls.add_shared_arguments(parser, ndf=16)

    def __init__(self, config: Mapping[str, Any], data: DataInfo, device: str = "cpu") -> None:
        super().__init__(config, data, device)
        c = self.config
        cx, cy, size = self.in_channels, data.shape[0], data.shape[1]
        self.lambda_cycle = float(c.get("lambda_cycle", 10.0))
        self.lambda_identity = float(c.get("lambda_identity", 0.5))
        if self.lambda_identity > 0 and cx != cy:
            raise ValueError(
                f"cyclegan: the identity loss needs domains with the same channels (A has {cx}, "
                f"B has {cy}); pass --lambda-identity 0 or --channels"
            )
        blocks = c.get("n_blocks")
        blocks = (
            int(blocks) if blocks is not None else 9 if size >= 256 else 6 if size >= 128 else 3
        )
        ngf, ndf, n_layers = int(c.get("ngf", 16)), int(c.get("ndf", 16)), int(c.get("n_layers", 3))
        nets = {
            "G": ResnetGenerator(cx, cy, ngf, blocks),
            "F": ResnetGenerator(cy, cx, ngf, blocks),
            "D_X": PatchDiscriminator(cx, ndf, n_layers, "instance"),
            "D_Y": PatchDiscriminator(cy, ndf, n_layers, "instance"),
        }
        if nets["D_X"].output_size(size) < 1:
            raise ValueError(
                f"cyclegan: --image-size {size} is too small for a PatchGAN with --n-layers "
                f"{n_layers} (needs >= {3 * 2**n_layers}); use fewer --n-layers"
            )
        self.networks = {k: nn.init.dcgan_init_(v).to(device) for k, v in nets.items()}
        lr, betas = float(c.get("lr", 2e-4)), tuple(c.get("betas", (0.5, 0.999)))
        self.optimizers = {
            k: optim.Adam(
                [p for n in names for p in self.networks[n].parameters()], lr=lr, betas=betas
            )
            for k, names in (("G", ("G", "F")), ("D", ("D_X", "D_Y")))
        }
        seed, pool = int(c.get("seed", 0)), int(c.get("pool_size", 50))
        self.pools = {"X": ImagePool(pool, seed + 11), "Y": ImagePool(pool, seed + 12)}
        if c.get("steps"):
            self.make_schedulers(int(c["steps"]))

    def make_schedulers(self, total: int) -> None:
        """LR constant for total // 2 steps, then linearly to 0 at ``total``."""
        self.schedulers = {
            k: optim.LinearDecayLR(o, max(1, total)) for k, o in self.optimizers.items()
        }

    def generator_losses(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """The G/F objective's terms on a batch (x of X, y of Y), and the fakes for D."""
        G, Fn, D_X, D_Y = (self.networks[k] for k in ("G", "F", "D_X", "D_Y"))
        fake_y, fake_x = G(x), Fn(y)
        lam, lam_id = self.lambda_cycle, self.lambda_identity
        terms = {
            "G_adv": lsgan_g(D_Y(fake_y)),
            "F_adv": lsgan_g(D_X(fake_x)),
            "cycle_X": F.l1(Fn(fake_y), x) * lam,
            "cycle_Y": F.l1(G(fake_x), y) * lam,
        }
        if lam_id > 0:
            terms["idt_G"] = F.l1(G(y), y) * (lam * lam_id)
            terms["idt_F"] = F.l1(Fn(x), x) * (lam * lam_id)
        terms["fake_y"], terms["fake_x"] = fake_y, fake_x
        return terms

    def train_step(self, batch: Any) -> dict[str, float]:
        x, y = batch[0], batch[1]
        if not self.schedulers and self.config.get("epochs") and self.reference is not None:
            per_epoch = len(self.reference) // int(self.config.get("batch_size", 1))
            self.make_schedulers(int(self.config["epochs"]) * per_epoch)
        with self.frozen("D_X", "D_Y"):
            terms = self.generator_losses(x, y)
            fake_y, fake_x = terms.pop("fake_y"), terms.pop("fake_x")
            first, *rest = terms.values()
            out = {"loss_G": self.optimize("G", sum(rest, start=first))}
        D_X, D_Y = self.networks["D_X"], self.networks["D_Y"]
        loss_dx = lsgan_d(D_X(x), D_X(self.pools["X"].query(fake_x)))
        loss_dy = lsgan_d(D_Y(y), D_Y(self.pools["Y"].query(fake_y)))
        self.optimize("D", loss_dx + loss_dy)
        out["loss_D_X"], out["loss_D_Y"] = float(loss_dx.item()), float(loss_dy.item())
        out.update({f"loss_{k}": float(v.item()) for k, v in terms.items()})
        return out

    # ------------------------------------------------------------ state
    def extra_state(self) -> dict[str, Any]:
        return {"pools": {k: p.state_dict() for k, p in self.pools.items()}}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        for k, p in self.pools.items():
            p.load_state_dict(state["pools"][k], self.device)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """As Loop's; the schedules then follow this run's ``steps`` (a resumed run may have
        been given a new --steps: the decay spans the second half of the new total)."""
        if state.get("schedulers") and not self.schedulers:  # an --epochs run: built lazily
            self.make_schedulers(int(state["schedulers"]["G"]["total"]))
        super().load_state_dict(state)
        total = int(self.config.get("steps") or 0)
        for scheduler in self.schedulers.values() if total else ():
            scheduler.total, scheduler.decay_start = total, total // 2
            scheduler.last_epoch -= 1
            scheduler.step()  # rewrite the rate of the current step under the new total

    # ------------------------------------------------------------ sampling
    def translator(self, direction: str | None) -> tuple[nn.Module, int]:
        if direction not in (None, *DIRECTIONS):
            raise ValueError(f"cyclegan: direction must be AtoB or BtoA, got {direction!r}")
        if direction == "BtoA":
            return self.networks["F"], self.data.shape[0]
        return self.networks["G"], self.in_channels

    def grid_columns(self, inputs: Mapping[str, Any]) -> list[Any]:
        """x | G(x) | F(G(x)) | y | F(y) | G(F(y))."""
        G, Fn = self.networks["G"], self.networks["F"]
        x, y = Tensor(inputs["x"]), Tensor(inputs["y"])
        gx, fy = G(x), Fn(y)
        return [x, gx, Fn(gx), y, fy, G(fy)]
