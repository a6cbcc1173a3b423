"""GAN: Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville & Bengio,
"Generative Adversarial Nets", NeurIPS 2014.

The value function of the two-player game::

    min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]

With D(x) = sigmoid(l(x)) on logits l, D ascends V by minimising

    loss_D = BCE(l(x), 1) + BCE(l(G(z)), 0)

and G minimises either the game's own term (``--g-loss minimax``, "saturating")

    loss_G = E_z[log(1 - D(G(z)))]      gradient -> 0 when D confidently rejects G(z)

or the non-saturating loss the paper recommends in practice (``--g-loss nonsaturating``)

    loss_G = -E_z[log D(G(z))] = BCE(l(G(z)), 1)

which has the same fixed point but strong gradients early in training. Algorithm 1 of the
paper takes k discriminator steps (``--d-steps``, each on a fresh batch) per generator step
and trains with SGD + momentum, the default here (lr 0.05, momentum 0.5, the paper's code's
initial momentum); Adam is available with ``--optimizer adam`` (lr 2e-3 unless --lr). Here
the G step reuses the noise of the last D step (as DCGAN's reference code does).

Networks: MLPs. G: z ~ N(0, I) -> ReLU layers -> data (identity output for 2-D points, tanh
and a reshape for images); D: data (flattened) -> LeakyReLU(0.2) layers [-> dropout, which
the paper uses in D] -> one logit.

Two optional stabilisers, both off by default:

- ``--instance-noise sigma``: D sees x + e and G(z) + e, e ~ N(0, sigma_t^2 I), with
  sigma_t = sigma * max(0, 1 - t / (0.7 T)) over T steps (instance noise: Sønderby et al.
  2017, "Amortised MAP Inference for Image Super-resolution"; Arjovsky & Bottou 2017,
  "Towards Principled Methods for Training GANs"). Blurring both distributions makes their
  supports overlap, so D's gradient reaches G's samples from every mode; on the ring of 8
  Gaussians it turns partial mode coverage into full coverage.
- ``--lr-decay F``: learning rates decay linearly to 0 from step F*T (the paper's own code
  decays its rate too); it stops the late mode-hopping of the game.

Measured on the ring of 8 Gaussians (``benchmarks/results/quality_gan_ring_*.md``): the
defaults (SGD) collapse to a single mode -- the lectures' mode-collapse picture -- while
``--optimizer adam --instance-noise 0.5 --lr-decay 0.5`` covers 7-8 of the 8 modes with
over 90% high-quality samples.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import numpy as np

import tinygan
from tinygan import functions as F
from tinygan import nn, optim
from tinygan.autograd import Tensor, no_grad
from tinygan.gans.loop import DataInfo, Loop
from tinygan.random import Generator

__all__ = ["GAN", "mlp", "adversarial_losses"]

G_LOSSES = ("nonsaturating", "minimax")
NOISE_ANNEAL = 0.7  # instance noise reaches 0 at this fraction of the training steps


def mlp(
    sizes: list[int], act: nn.Module, out: nn.Module | None = None, dropout: float = 0.0
) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``act`` (and dropout, if any) between them and ``out``
    (if any) at the end."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act)
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    if out is not None:
        layers.append(out)
    return nn.Sequential(*layers)


def adversarial_losses(g_loss: str) -> tuple[Any, Any]:
    """``(d_loss(real_logits, fake_logits), g_loss(fake_logits))`` of Goodfellow et al."""
    if g_loss not in G_LOSSES:
        raise ValueError(f"--g-loss must be one of {G_LOSSES}, got {g_loss!r}")

    def d_loss(real: Tensor, fake: Tensor) -> Tensor:
        return F.bce_with_logits(real, 1.0) + F.bce_with_logits(fake, 0.0)

    def g_nonsaturating(fake: Tensor) -> Tensor:
        return F.bce_with_logits(fake, 1.0)  # -log D(G(z))

    def g_minimax(fake: Tensor) -> Tensor:
        return -F.bce_with_logits(fake, 0.0)  # log(1 - D(G(z)))

    return d_loss, g_nonsaturating if g_loss == "nonsaturating" else g_minimax


class GAN(Loop):
    """The original GAN (Goodfellow et al. 2014) with MLP G and D."""

    name = "gan"
    summary = "GAN (Goodfellow et al. 2014): MLP G and D, minimax or non-saturating G loss"
    data_kinds = ("points", "image")
    defaults = {"data": "ring", "lr": None, "batch_size": 256, "steps": 8000}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--g-loss",
            choices=G_LOSSES,
            default="nonsaturating",
            help="generator loss: -log D(G(z)) (default) or log(1 - D(G(z)))",
        )
        parser.add_argument(
            "--d-steps",
            type=int,
            default=1,
            metavar="K",
            help="discriminator steps per generator step (default 1)",
        )
        parser.add_argument(
            "--optimizer",
            choices=("sgd", "adam"),
            default=cls._optimizer,
            help=f"optimizer of G and D (default {cls._optimizer}); without --lr, "
            + ", ".join(f"{k} uses lr {v}" for k, v in cls._lr.items()),
        )
        parser.add_argument(
            "--momentum", type=float, default=0.5, help="SGD momentum (default 0.5)"
        )
        parser.add_argument(
            "--betas",
            type=float,
            nargs=2,
            default=cls._betas,
            metavar=("B1", "B2"),
            help=f"Adam betas (default {cls._betas})",
        )
        parser.add_argument(
            "--nz", type=int, default=cls._nz, help=f"latent dimension (default {cls._nz})"
        )
        parser.add_argument(
            "--lr-decay",
            type=float,
            default=None,
            metavar="F",
            help="decay the learning rates linearly to 0 from fraction F of the training "
            "steps on (e.g. 0.5; default: constant)",
        )
        parser.add_argument(
            "--instance-noise",
            type=float,
            default=0.0,
            metavar="SIGMA",
            help="std of Gaussian noise added to D's inputs, annealed linearly to 0 at 70%% "
            "of training (default 0: none)",
        )
        cls.add_network_arguments(parser)

    _optimizer, _betas, _nz = "sgd", (0.5, 0.999), 16
    _lr = {"sgd": 0.05, "adam": 2e-3}  # the learning rate when --lr is not given

    @classmethod
    def add_network_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--hidden",
            type=int,
            default=64,
            help="units per hidden layer of G and D (default 64)",
        )
        parser.add_argument(
            "--layers", type=int, default=3, help="hidden layers of G and of D (default 3)"
        )
        parser.add_argument(
            "--dropout",
            type=float,
            default=0.0,
            help="dropout after each hidden layer of D, as in the paper (default 0: none)",
        )

    def __init__(self, config: Mapping[str, Any], data: DataInfo, device: str = "cpu") -> None:
        super().__init__(config, data, device)
        c = self.config
        self.nz, self.d_steps = int(c.get("nz", self._nz)), int(c.get("d_steps", 1))
        if self.d_steps < 1:
            raise ValueError(f"{self.name}: --d-steps must be >= 1, got {self.d_steps}")
        self.d_loss, self.g_loss = adversarial_losses(c.get("g_loss", "nonsaturating"))
        G, D = self.build_networks()
        self.networks = {"G": G.to(device), "D": D.to(device)}
        self.optimizers = {k: self.make_optimizer(net) for k, net in self.networks.items()}
        if c.get("lr_decay") is not None:
            total = max(1, int(c.get("steps") or 1))
            start = int(float(c["lr_decay"]) * total)
            self.schedulers = {
                k: optim.LinearDecayLR(o, total, min(start, total - 1))
                for k, o in self.optimizers.items()
            }

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c, dim = self.config, int(np.prod(self.data.shape))
        hidden, layers = int(c.get("hidden", 64)), int(c.get("layers", 3))
        out = nn.Tanh() if self.data.kind == "image" else None
        G = mlp([self.nz] + [hidden] * layers + [dim], nn.ReLU(), out)
        D = mlp(
            [dim] + [hidden] * layers + [1], nn.LeakyReLU(0.2), None, float(c.get("dropout", 0))
        )
        return G, D

    def make_optimizer(self, net: nn.Module) -> optim.Optimizer:
        c = self.config
        name = c.get("optimizer", self._optimizer)
        lr = float(c.get("lr") or self.defaults.get("lr") or self._lr[name])
        if name == "adam":
            return optim.Adam(net.parameters(), lr=lr, betas=tuple(c.get("betas", self._betas)))
        return optim.SGD(net.parameters(), lr=lr, momentum=float(c.get("momentum", 0.5)))

    def batches_per_step(self) -> int:
        return self.d_steps

    # ------------------------------------------------------------ sampling
    def latent(self, n: int, generator: Generator | None = None) -> dict[str, Any]:
        return {"z": (generator or self.rng).normal((n, self.nz), device=self.device)}

    def generate(self, inputs: Mapping[str, Any]) -> Tensor:
        return self.forward_g(self.sampler("G"), Tensor(inputs["z"]))

    def forward_g(self, G: nn.Module, z: Tensor) -> Tensor:
        x = G(z)
        return x.reshape(z.shape[0], *self.data.shape) if self.data.kind == "image" else x

    def forward_d(self, x: Tensor) -> Tensor:
        return self.networks["D"](x.reshape(x.shape[0], -1))

    def noise_std(self) -> float:
        """sigma_t = sigma * max(0, 1 - t / (0.7 T)) for ``--instance-noise sigma``."""
        sigma, total = float(self.config.get("instance_noise") or 0), self.config.get("steps")
        return sigma * max(0.0, 1.0 - self.step / (NOISE_ANNEAL * max(1, int(total or 1))))

    def discriminate(self, x: Tensor) -> Tensor:
        """D's logits for ``x`` (N, 1), through the instance noise when it is on."""
        sigma = self.noise_std()
        if sigma > 0:
            x = x + Tensor(self.rng.normal(x.shape, x.dtype, self.device) * np.float32(sigma))
        return self.forward_d(x)

    # ------------------------------------------------------------ training
    def train_step(self, batch: Any) -> dict[str, float]:
        G = self.networks["G"]
        for i in range(self.d_steps):
            x = self.real(batch if i == 0 else self.next_batch())
            z = Tensor(self.latent(x.shape[0])["z"])
            last = i == self.d_steps - 1
            with tinygan.set_grad_enabled(last):  # only the last fake batch feeds G's step
                fake = self.forward_g(G, z)
            d_real, d_fake = self.discriminate(x), self.discriminate(fake.detach())
            loss_d = self.optimize("D", self.d_loss(d_real, d_fake))
        with self.frozen("D"):
            loss_g = self.optimize("G", self.g_loss(self.discriminate(fake)))
        with no_grad():
            p_real, p_fake = F.sigmoid(d_real).mean().item(), F.sigmoid(d_fake).mean().item()
        return {"loss_D": loss_d, "loss_G": loss_g, "D(x)": p_real, "D(G(z))": p_fake}
