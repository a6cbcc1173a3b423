"""The CycleGAN step case of ../shared/BENCHMARKS.md: tinygan vs PyTorch, same architecture.

Zhu et al. 2017 (appendix 7.2) at 128 x 128 x 3, batch 1: two ResNet-6 generators (ngf 64:
c7s1-64, d128, d256, 6 x R256, u128, u64, c7s1-3; reflection padding, instance norm) and two
70 x 70 PatchGANs (ndf 64, instance norm), N(0, 0.02) weights, float32, Adam(2e-4, (0.5,
0.999)). One step = what ``tinygan.gans.cyclegan.CycleGAN.train_step`` does: G, F forward on
both domains, the cycle and identity reconstructions, the LSGAN G losses through the frozen
D_X, D_Y, one Adam step on G and F; then the LSGAN D losses on real and (pooled) fake images
and one Adam step on D_X and D_Y. The tinygan side *is* that train_step (image pool and LR
schedule included: both cost microseconds); the PyTorch side is the same computation written
with torch.nn (no pool: with fewer than 50 images seen, the pool returns its input).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Setup = Callable[[], Callable[[], object]]

SIZE, NGF, NDF, BLOCKS, LAYERS = 128, 64, 64, 6, 3


def cyclegan_flops(size: int = SIZE, ngf: int = NGF, ndf: int = NDF, blocks: int = BLOCKS) -> float:
    """FLOPs (2 x multiply-adds) of one step's convolutions. G/F: 6 forwards (G(x), F(G(x)),
    F(y), G(F(y)), G(y), F(x)), each with a backward of input and weight gradients (x 3 in all);
    D: 2 forwards in the G step with input gradients only (x 2), 4 in the D step with both
    (x 3)."""

    def conv(cin: int, cout: int, k: int, out: int) -> int:
        return cin * cout * k * k * out * out

    s = size
    g = (
        conv(3, ngf, 7, s)
        + conv(ngf, 2 * ngf, 3, s // 2)
        + conv(2 * ngf, 4 * ngf, 3, s // 4)
        + 2 * blocks * conv(4 * ngf, 4 * ngf, 3, s // 4)
        + conv(4 * ngf, 2 * ngf, 3, s // 4)  # transposed: MACs counted per input pixel
        + conv(2 * ngf, ngf, 3, s // 2)
        + conv(ngf, 3, 7, s)
    )
    d = (
        conv(3, ndf, 4, s // 2)
        + conv(ndf, 2 * ndf, 4, s // 4)
        + conv(2 * ndf, 4 * ndf, 4, s // 8)
        + conv(4 * ndf, 8 * ndf, 4, s // 8 - 1)
        + conv(8 * ndf, 1, 4, s // 8 - 2)
    )
    return 2.0 * (6 * 3 * g + 2 * 2 * d + 4 * 3 * d)


# ---------------------------------------------------------------- tinygan
def _tinygan_step(size: int, batch: int) -> Callable[[], object]:
    import tinygan
    from tinygan.gans.cyclegan import CycleGAN
    from tinygan.gans.loop import DataInfo

    tinygan.manual_seed(0)
    info = DataInfo("image", (3, size, size), 0, "bench", {"in_channels": 3})
    config = {"ngf": NGF, "ndf": NDF, "n_blocks": BLOCKS, "n_layers": LAYERS, "steps": 10**6}
    loop = CycleGAN(config, info)
    rng = np.random.default_rng(0)
    x, y = (
        tinygan.tensor(rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32))
        for _ in range(2)
    )

    def step() -> None:
        loop.train_step((x, y))
        loop.end_step()

    return step


# ---------------------------------------------------------------- PyTorch
def torch_networks(torch: Any) -> dict[str, Any]:
    """G, F (ResNet-6) and D_X, D_Y (70 x 70 PatchGAN), N(0, 0.02) weights."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(),
                nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c),
            )  # fmt: skip

        def forward(self, x: Any) -> Any:
            return x + self.body(x)

    def generator() -> Any:
        n = NGF
        return nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, n, 7), nn.InstanceNorm2d(n), nn.ReLU(),
            nn.Conv2d(n, 2 * n, 3, 2, 1), nn.InstanceNorm2d(2 * n), nn.ReLU(),
            nn.Conv2d(2 * n, 4 * n, 3, 2, 1), nn.InstanceNorm2d(4 * n), nn.ReLU(),
            *[Block(4 * n) for _ in range(BLOCKS)],
            nn.ConvTranspose2d(4 * n, 2 * n, 3, 2, 1, 1), nn.InstanceNorm2d(2 * n), nn.ReLU(),
            nn.ConvTranspose2d(2 * n, n, 3, 2, 1, 1), nn.InstanceNorm2d(n), nn.ReLU(),
            nn.ReflectionPad2d(3), nn.Conv2d(n, 3, 7), nn.Tanh(),
        )  # fmt: skip

    def discriminator() -> Any:
        d, layers = NDF, []
        layers += [nn.Conv2d(3, d, 4, 2, 1), nn.LeakyReLU(0.2)]
        for i, stride in ((1, 2), (2, 2), (3, 1)):
            c_in, c_out = d * 2 ** (i - 1), d * 2**i
            layers += [nn.Conv2d(c_in, c_out, 4, stride, 1), nn.InstanceNorm2d(c_out)]
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Conv2d(8 * d, 1, 4, 1, 1))
        return nn.Sequential(*layers)

    nets = {"G": generator(), "F": generator(), "D_X": discriminator(), "D_Y": discriminator()}
    for net in nets.values():
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)
    return nets


def _torch_step(size: int, batch: int) -> Callable[[], object]:
    import itertools

    import torch

    torch.manual_seed(0)
    n = torch_networks(torch)
    G, F, D_X, D_Y = n["G"], n["F"], n["D_X"], n["D_Y"]
    opt_g = torch.optim.Adam(itertools.chain(G.parameters(), F.parameters()), 2e-4, (0.5, 0.999))
    opt_d = torch.optim.Adam(
        itertools.chain(D_X.parameters(), D_Y.parameters()), 2e-4, (0.5, 0.999)
    )
    rng = np.random.default_rng(0)
    x, y = (
        torch.tensor(rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32))
        for _ in range(2)
    )
    l1, mse = torch.nn.functional.l1_loss, torch.nn.functional.mse_loss

    def lsgan(out: Any, target: float) -> Any:
        return mse(out, torch.full_like(out, target))

    def step() -> None:
        for d in (D_X, D_Y):
            d.requires_grad_(False)
        fake_y, fake_x = G(x), F(y)
        loss_g = (
            lsgan(D_Y(fake_y), 1.0)
            + lsgan(D_X(fake_x), 1.0)
            + 10 * l1(F(fake_y), x)
            + 10 * l1(G(fake_x), y)
            + 5 * l1(G(y), y)
            + 5 * l1(F(x), x)
        )
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        for d in (D_X, D_Y):
            d.requires_grad_(True)
        loss_dx = 0.5 * (lsgan(D_X(x), 1.0) + lsgan(D_X(fake_x.detach()), 0.0))
        loss_dy = 0.5 * (lsgan(D_Y(y), 1.0) + lsgan(D_Y(fake_y.detach()), 0.0))
        opt_d.zero_grad()
        (loss_dx + loss_dy).backward()
        opt_d.step()

    return step


def cyclegan_step(size: int = SIZE, batch: int = 1) -> dict[str, Setup]:
    """``{"tinygan": setup, "torch": setup}`` for one CycleGAN training step."""
    return {
        "tinygan": lambda: _tinygan_step(size, batch),
        "torch": lambda: _torch_step(size, batch),
    }


__all__ = ["cyclegan_flops", "cyclegan_step", "torch_networks"]
