"""DCGAN: Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", ICLR 2016.

The GAN game and losses of :mod:`tinygan.gans.gan` (non-saturating G loss by default) with
the paper's architecture guidelines (section 3) and training details (section 4):

- G: z (nz = 100) -> ConvTranspose(nz, c0, b) to a b x b map, then stride-2 ConvTranspose
  (kernel 4, padding 1) layers that double the size and halve the channels; BatchNorm +
  ReLU after every layer but the last, which is followed by Tanh.
- D: the mirror image with stride-2 Conv (kernel 4, padding 1) and LeakyReLU(0.2); BatchNorm
  on every layer except the first; a last b x b Conv gives one logit. No pooling, no
  fully connected hidden layers.
- Weights ~ N(0, 0.02^2) (BN gammas ~ N(1, 0.02^2)); Adam(lr 2e-4, beta1 0.5); batch 128 in
  the paper (64 here: faster on a CPU, as good on the small digits).

Image sizes are ``b * 2^n`` with base ``b`` 4 or 7: 28 = 7*4, 32 = 4*8, 64 = 4*16 (and 16,
56, 128...). Channels (``ngf``/``ndf`` at the largest map) double at each halving of the size:
for 64x64, G is 8·ngf x 4 -> 4·ngf x 8 -> 2·ngf x 16 -> ngf x 32 -> C x 64, as in the paper
(which has ngf = 128 for LSUN). The defaults here -- ngf = ndf = 16, batch 64, 1500 steps on
the 32 x 32 digits -- are sized for a 2-core CPU: recognisable digits within a few minutes
(measured in benchmarks/results/quality_dcgan_digits_*.md).
"""

from __future__ import annotations

import argparse

from tinygan import nn
from tinygan.autograd import Tensor
from tinygan.gans.gan import GAN

__all__ = ["DCGAN", "dcgan_geometry", "dcgan_generator", "dcgan_discriminator"]


def dcgan_geometry(image_size: int) -> tuple[int, int]:
    """``(base, n)`` with ``image_size == base * 2**n``, base 4 or 7, n >= 1."""
    for base in (4, 7):
        n, size = 0, image_size
        while size % 2 == 0 and size > base:
            size, n = size // 2, n + 1
        if size == base and n >= 1:
            return base, n
    raise ValueError(
        f"dcgan: --image-size {image_size} is not 4 * 2^n or 7 * 2^n (e.g. 28, 32, 64)"
    )


def dcgan_generator(nz: int, ngf: int, channels: int, image_size: int) -> nn.Sequential:
    """z (N, nz, 1, 1) -> images (N, channels, image_size, image_size) in [-1, 1]."""
    base, n = dcgan_geometry(image_size)
    widths = [ngf * 2 ** (n - 1 - i) for i in range(n)]  # e.g. 4 ngf, 2 ngf, ngf
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(nz, widths[0], base, 1, 0, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(),
    ]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
    layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def dcgan_discriminator(ndf: int, channels: int, image_size: int) -> nn.Sequential:
    """images (N, channels, S, S) -> logits (N, 1, 1, 1)."""
    base, n = dcgan_geometry(image_size)
    widths = [ndf * 2**i for i in range(n)]  # e.g. ndf, 2 ndf, 4 ndf
    layers: list[nn.Module] = [
        nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2),
    ]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]
    layers.append(nn.Conv2d(widths[-1], 1, base, 1, 0, bias=False))
    return nn.Sequential(*layers)


class DCGAN(GAN):
    """DCGAN (Radford et al. 2016): convolutional G and D, Adam(2e-4, beta1 0.5)."""

    name = "dcgan"
    summary = "DCGAN (Radford et al. 2016): transposed-conv G, strided-conv D, BN, Adam 2e-4"
    data_kinds = ("image",)
    defaults = {"data": "digits", "lr": None, "batch_size": 64, "steps": 1500}
    _optimizer, _betas, _nz = "adam", (0.5, 0.999), 100
    _lr = {"sgd": 0.01, "adam": 2e-4}

    @classmethod
    def add_network_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--ngf",
            type=int,
            default=16,
            help="G's channels at its largest feature map (default 16)",
        )
        parser.add_argument(
            "--ndf",
            type=int,
            default=16,
            help="D's channels at its largest feature map (default 16)",
        )

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c, (channels, size, _) = self.config, self.data.shape
        G = dcgan_generator(self.nz, int(c.get("ngf", 16)), channels, size)
        D = dcgan_discriminator(int(c.get("ndf", 16)), channels, size)
        return nn.init.dcgan_init_(G), nn.init.dcgan_init_(D)

    def forward_g(self, G: nn.Module, z: Tensor) -> Tensor:
        return G(z.reshape(z.shape[0], self.nz, 1, 1))

    def forward_d(self, x: Tensor) -> Tensor:
        return self.networks["D"](x).reshape(x.shape[0], 1)
