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
    """Multiply-adds × 2 of one DCGAN step's convolutions: G forward once for D's step and
    reused for G's, D forward on real and fake, D forward again on fake for G; each backward
    costs about twice its forward (input and weight gradients)."""

    def conv_flops(cin, cout, out_hw):  # 4×4 kernels
        return 2 * cin * cout * 16 * out_hw * out_hw * batch

    g = sum(
        conv_flops(cin, cout, s * 2 if st == 2 else 4)
        for (cin, cout, st, _), s in zip(DCGAN_G_LAYERS, DCGAN_G_SIZES)
    )
    d = sum(
        conv_flops(cin, cout, s // 2 if st == 2 else 1)
        for (cin, cout, st, _), s in zip(DCGAN_D_LAYERS, DCGAN_D_SIZES)
    )
    # G: 1 forward + 1 backward (×2); D: 3 forwards + 3 backwards (real, fake for D; fake for G)
    return g * (1 + 2) + d * 3 * (1 + 2)


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
