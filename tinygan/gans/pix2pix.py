"""pix2pix: Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional
Adversarial Networks", CVPR 2017.

A conditional GAN on (input x, target y) pairs. D sees pairs and tells real (x, y) from
generated (x, G(x)); G also pays an L1 distance to the target, which carries the low
frequencies while the GAN term asks for sharp, realistic detail (paper, section 3.1)::

    L_cGAN(G, D) = E[log D(x, y)] + E[log(1 - D(x, G(x)))]
    G* = arg min_G max_D  L_cGAN(G, D) + lambda E[|y - G(x)|_1],        lambda = 100

With logits l: loss_D = 1/2 [BCE(l(x, y), 1) + BCE(l(x, G(x)), 0)] (the paper halves D's
objective) and loss_G = BCE(l(x, G(x)), 1) + lambda_L1 mean|y - G(x)| (non-saturating).
``--lambda-gan 0`` drops the GAN term (and D): the paper's "L1" baseline of table 1.

- G: :class:`~tinygan.gans.translation.UNetGenerator` (skips, BN, dropout 0.5 in the first
  three decoder blocks as the only noise); its depth adapts to the image size (8 stride-2
  down-samplings at 256 px, 5 at 32 px; ``--depth``).
- D: :class:`~tinygan.gans.translation.PatchDiscriminator` with BN on the concatenated
  (x, y) channels; ``--n-layers 3`` gives 70 x 70 patches (at 32 px one patch covers the
  image; ``--n-layers 2`` gives 34 x 34).
- Adam(lr 2e-4, betas (0.5, 0.999)); weights ~ N(0, 0.02^2). The paper trains with batch 1
  (and some sets with 4) and keeps dropout on at test time; here batches default to 16 (a
  2-core CPU is much faster per image at 16) and translation runs in eval mode (dropout off,
  BN running statistics), so it is deterministic.

Data: ``--data default`` (embedded digits: masked digit -> digit, see
:mod:`tinygan.data.translation`; ``default:blur``, ``default:edges``) or a folder in the
pix2pix layout (``train/`` of A|B side-by-side images; ``--direction AtoB|BtoA``). On the
default, 1000 steps (a few minutes on a 2-core CPU) beat the L1-only baseline's Fréchet
distance: benchmarks/results/quality_pix2pix_*.md (scripts/translation_quality.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from tinygan import functions as F
from tinygan import nn, optim
from tinygan.autograd import Tensor, no_grad
from tinygan.gans.loop import DataInfo
from tinygan.gans.translation import (
    DIRECTIONS,
    PatchDiscriminator,
    TranslationLoop,
    UNetGenerator,
    unet_depth,
)

__all__ = ["Pix2Pix", "d_loss", "g_loss"]


def d_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """1/2 [BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)] on patch logits."""
    return (F.bce_with_logits(d_real, 1.0) + F.bce_with_logits(d_fake, 0.0)) * 0.5


def g_loss(
    d_fake: Tensor | None, fake: Tensor, target: Tensor, lambda_l1: float, lambda_gan: float = 1.0
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(total, L1 term mean|y - G(x)|, GAN term BCE(D(x, G(x)), 1) or None) with
    total = lambda_gan GAN + lambda_l1 L1."""
    l1 = F.l1(fake, target)
    total = l1 * lambda_l1
    gan = None
    if d_fake is not None and lambda_gan > 0:
        gan = F.bce_with_logits(d_fake, 1.0)
        total = total + gan * lambda_gan
    return total, l1, gan


class Pix2Pix(TranslationLoop):
    """pix2pix (Isola et al. 2017): U-Net G, PatchGAN D on (x, y), cGAN + 100 L1."""

    name = "pix2pix"
    summary = "pix2pix (Isola et al. 2017): U-Net G, PatchGAN D on pairs, cGAN + 100 L1"
    layout = "paired"
    defaults = {"data": "default", "lr": 2e-4, "batch_size": 16, "steps": 1000}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--lambda-l1", type=float, default=100.0, help="weight of the L1 term (default 100)")
        add(
            "--lambda-gan",
            type=float,
            default=1.0,
            help="weight of the cGAN term (default 1; 0: the L1-only baseline, no D)",
        )
        add(
            "--direction",
            choices=DIRECTIONS,
            default="AtoB",
            help="AtoB: A is the input, B the target (default); BtoA the reverse",
        )
        add(
            "--ngf",
            type=int,
            default=32,
            help="G's channels at full resolution (default 32; paper 64)",
        )
        add(
            "--depth",
            type=int,
            default=None,
            help="U-Net down-samplings (default: as many as divide --image-size, at most 8)",
        )
        add("--dropout", type=float, default=0.5, help="dropout in G's decoder (default 0.5)")
        cls.add_shared_arguments(parser, ndf=32)

    def __init__(self, config: Mapping[str, Any], data: DataInfo, device: str = "cpu") -> None:
        super().__init__(config, data, device)
        c = self.config
        channels, size = data.shape[0], data.shape[1]
        self.lambda_l1 = float(c.get("lambda_l1", 100.0))
        self.lambda_gan = float(c.get("lambda_gan", 1.0))
        self.direction = str(c.get("direction", "AtoB"))
        depth = unet_depth(size, c.get("depth"), self.name)
        G = UNetGenerator(self.in_channels, channels, depth, int(c.get("ngf", 32)),
                          float(c.get("dropout", 0.5)))  # fmt: skip
        self.networks = {"G": nn.init.dcgan_init_(G).to(device)}
        if self.lambda_gan > 0:
            D = PatchDiscriminator(self.in_channels + channels, int(c.get("ndf", 32)),
                                   int(c.get("n_layers", 3)), "batch")  # fmt: skip
            if D.output_size(size) < 1:
                raise ValueError(
                    f"pix2pix: --image-size {size} is too small for a PatchGAN with --n-layers "
                    f"{D.n_layers} (needs >= {3 * 2**D.n_layers}); use fewer --n-layers"
                )
            self.networks["D"] = nn.init.dcgan_init_(D).to(device)
        lr, betas = float(c.get("lr", 2e-4)), tuple(c.get("betas", (0.5, 0.999)))
        self.optimizers = {
            k: optim.Adam(net.parameters(), lr=lr, betas=betas) for k, net in self.networks.items()
        }

    def pair(self, x: Tensor, y: Tensor) -> Tensor:
        """D's input: x and y concatenated along the channels."""
        return F.concat([x, y], axis=1)

    def train_step(self, batch: Any) -> dict[str, float]:
        x, y = batch[0], batch[1]
        fake = self.networks["G"](x)
        out: dict[str, float] = {}
        d_fake = None
        if "D" in self.networks:
            D = self.networks["D"]
            d_real, d_fake_detached = D(self.pair(x, y)), D(self.pair(x, fake.detach()))
            out["loss_D"] = self.optimize("D", d_loss(d_real, d_fake_detached))
            with no_grad():
                out["D(x,y)"] = F.sigmoid(d_real).mean().item()
                out["D(x,G(x))"] = F.sigmoid(d_fake_detached).mean().item()
        with self.frozen(*(["D"] if "D" in self.networks else [])):
            if "D" in self.networks:
                d_fake = self.networks["D"](self.pair(x, fake))
            total, l1, gan = g_loss(d_fake, fake, y, self.lambda_l1, self.lambda_gan)
            out["loss_G"] = self.optimize("G", total)
        out["loss_G_L1"] = float(l1.item())
        if gan is not None:
            out["loss_G_GAN"] = float(gan.item())
        return out

    # ------------------------------------------------------------ sampling
    def translator(self, direction: str | None) -> tuple[nn.Module, int]:
        if direction not in (None, self.direction):
            raise ValueError(
                f"pix2pix: this model translates {self.direction} (trained with --direction "
                f"{self.direction}); it has no {direction} generator"
            )
        return self.networks["G"], self.in_channels

    def grid_columns(self, inputs: Mapping[str, Any]) -> list[Any]:
        """input | output | target."""
        return [inputs["x"], self.generate(inputs), inputs["y"]]
