"""The benchmark networks, built the same way in tinygan and in PyTorch.

DCGAN (Radford et al. 2016) at 64×64×3, nz = 100, ngf = ndf = 64, bias-free convolutions,
BN in G and in D after its first layer, N(0, 0.02) weights — the architecture of the
paper's reference code. The MLP GAN is the 8-Gaussian toy setting (two hidden layers of 128).
"""

from __future__ import annotations

from typing import Any

NZ, NGF, NDF, NC = 100, 64, 64, 3
DCGAN_G_LAYERS = [
    (NZ, NGF * 8, 1, 0),
    (NGF * 8, NGF * 4, 2, 1),
    (NGF * 4, NGF * 2, 2, 1),
    (NGF * 2, NGF, 2, 1),
    (NGF, NC, 2, 1),
]
DCGAN_D_LAYERS = [
    (NC, NDF, 2, 1),
    (NDF, NDF * 2, 2, 1),
    (NDF * 2, NDF * 4, 2, 1),
    (NDF * 4, NDF * 8, 2, 1),
    (NDF * 8, 1, 1, 0),
]
DCGAN_G_SIZES = [1, 4, 8, 16, 32]  # input spatial size of each G layer
DCGAN_D_SIZES = [64, 32, 16, 8, 4]


def dcgan_flops(batch: int) -> float:
    """2 × multiply-adds of one DCGAN step's convolutions (4×4 kernels). A convolution does
    C_in·C_out·16 MACs per *output* pixel, a transposed convolution per *input* pixel. Per
    step: G forward + backward (input and weight gradients, ≈ 2× forward); D forward and
    backward three times (real and fake for D's update, fake again for G's). ≈ 160 GFLOP at
    batch 64, as BENCHMARKS.md says."""
    g = sum(cin * cout * 16 * s * s for (cin, cout, _, _), s in zip(DCGAN_G_LAYERS, DCGAN_G_SIZES))
    d_out = [s // 2 if st == 2 else 1 for (_, _, st, _), s in zip(DCGAN_D_LAYERS, DCGAN_D_SIZES)]
    d = sum(cin * cout * 16 * o * o for (cin, cout, _, _), o in zip(DCGAN_D_LAYERS, d_out))
    return 2 * batch * (3 * g + 3 * 3 * d)


def tinygan_dcgan(nn: Any) -> tuple[Any, Any]:
    g_layers: list = []
    for i, (cin, cout, stride, pad) in enumerate(DCGAN_G_LAYERS):
        g_layers.append(nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False))
        g_layers += [nn.BatchNorm2d(cout), nn.ReLU()] if i < 4 else [nn.Tanh()]
    d_layers: list = []
    for i, (cin, cout, stride, pad) in enumerate(DCGAN_D_LAYERS):
        d_layers.append(nn.Conv2d(cin, cout, 4, stride, pad, bias=False))
        if 0 < i < 4:
            d_layers.append(nn.BatchNorm2d(cout))
        if i < 4:
            d_layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*g_layers), nn.Sequential(*d_layers)


def torch_dcgan(torch: Any) -> tuple[Any, Any]:
    nn = torch.nn
    g_layers: list = []
    for i, (cin, cout, stride, pad) in enumerate(DCGAN_G_LAYERS):
        g_layers.append(nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False))
        g_layers += [nn.BatchNorm2d(cout), nn.ReLU(True)] if i < 4 else [nn.Tanh()]
    d_layers: list = []
    for i, (cin, cout, stride, pad) in enumerate(DCGAN_D_LAYERS):
        d_layers.append(nn.Conv2d(cin, cout, 4, stride, pad, bias=False))
        if 0 < i < 4:
            d_layers.append(nn.BatchNorm2d(cout))
        if i < 4:
            d_layers.append(nn.LeakyReLU(0.2, True))
    g, d = nn.Sequential(*g_layers), nn.Sequential(*d_layers)
    for m in list(g.modules()) + list(d.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return g, d


MLP_NZ, MLP_HIDDEN = 16, 128


def mlp_layers(nn: Any, sizes: list[int]) -> Any:
    layers: list = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mlp_gan(nn: Any) -> tuple[Any, Any]:
    return mlp_layers(nn, [MLP_NZ, MLP_HIDDEN, MLP_HIDDEN, 2]), mlp_layers(
        nn, [2, MLP_HIDDEN, MLP_HIDDEN, 1]
    )
