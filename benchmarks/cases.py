"""The standard cases of ../shared/BENCHMARKS.md, each with a tinygan and a PyTorch setup.

A setup builds models and inputs (untimed) and returns the callable to time.
Peers' setups are added by ``peers.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks import models
from benchmarks.harness import Unsupported

Setup = Callable[[], Callable[[], object]]


# ---------------------------------------------------------------- GAN steps
def _tinygan_gan_step(
    build: Callable,
    nz_shape: tuple,
    real_shape: tuple,
    lr: float,
    betas: tuple,
    device: str = "cpu",
) -> Callable:
    import tinygan as tg
    import tinygan.functions as F
    from tinygan import nn, optim

    tg.manual_seed(0)
    G, D = build(nn)
    if len(real_shape) == 4:
        nn.init.dcgan_init_(G)
        nn.init.dcgan_init_(D)
    G.to(device)
    D.to(device)
    opt_g = optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = optim.Adam(D.parameters(), lr=lr, betas=betas)
    real = tg.randn(*real_shape, device=device)

    def step() -> None:
        fake = G(tg.randn(*nz_shape, device=device))
        loss_d = F.bce_with_logits(D(real), 1.0) + F.bce_with_logits(D(fake.detach()), 0.0)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.bce_with_logits(D(fake), 1.0)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    return step


def _torch_gan_step(
    build: Callable,
    nz_shape: tuple,
    real_shape: tuple,
    lr: float,
    betas: tuple,
    device: str = "cpu",
) -> Callable:
    import torch

    torch.manual_seed(0)
    G, D = (net.to(device) for net in build(torch))
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    real = torch.randn(*real_shape, device=device)
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def step() -> None:
        fake = G(torch.randn(*nz_shape, device=device))
        out_real, out_fake = D(real), D(fake.detach())
        loss_d = bce(out_real, torch.ones_like(out_real)) + bce(
            out_fake, torch.zeros_like(out_fake)
        )
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        out = D(fake)
        loss_g = bce(out, torch.ones_like(out))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    return step


def dcgan_step(batch: int = 64, device: str = "cpu") -> dict[str, Setup]:
    args = ((batch, models.NZ, 1, 1), (batch, models.NC, 64, 64), 2e-4, (0.5, 0.999), device)
    return {
        "tinygan": lambda: _tinygan_gan_step(models.tinygan_dcgan, *args),
        "torch": lambda: _torch_gan_step(models.torch_dcgan, *args),
    }


def mlp_gan_step(batch: int = 256) -> dict[str, Setup]:
    args = ((batch, models.MLP_NZ), (batch, 2), 1e-3, (0.5, 0.999))
    return {
        "tinygan": lambda: _tinygan_gan_step(models.mlp_gan, *args),
        "torch": lambda: _torch_gan_step(lambda torch: models.mlp_gan(torch.nn), *args),
    }


# ---------------------------------------------------------------- single layers
def layer_cases(batch: int = 64) -> dict[str, tuple[dict[str, Setup], float]]:
    """Each DCGAN conv/conv-transpose layer, forward and forward+backward, with its FLOPs."""
    cases: dict[str, tuple[dict[str, Setup], float]] = {}
    for i, ((cin, cout, stride, pad), size) in enumerate(
        zip(models.DCGAN_G_LAYERS, models.DCGAN_G_SIZES)
    ):
        out = size * 2 if stride == 2 else 4
        flops = 2 * cin * cout * 16 * size * size * batch  # MACs per input pixel
        for backward in (False, True):
            name = f"G{i + 1} convT {cin}->{cout} {size}->{out}" + (
                " fwd+bwd" if backward else " fwd"
            )
            cases[name] = (
                _layer_impls(True, batch, cin, cout, size, stride, pad, backward),
                flops * (3 if backward else 1),
            )
    for i, ((cin, cout, stride, pad), size) in enumerate(
        zip(models.DCGAN_D_LAYERS, models.DCGAN_D_SIZES)
    ):
        out = size // 2 if stride == 2 else 1
        flops = 2 * cin * cout * 16 * out * out * batch
        for backward in (False, True):
            name = f"D{i + 1} conv {cin}->{cout} {size}->{out}" + (
                " fwd+bwd" if backward else " fwd"
            )
            cases[name] = (
                _layer_impls(False, batch, cin, cout, size, stride, pad, backward),
                flops * (3 if backward else 1),
            )
    return cases


def _layer_impls(
    transposed: bool,
    batch: int,
    cin: int,
    cout: int,
    size: int,
    stride: int,
    pad: int,
    backward: bool,
) -> dict[str, Setup]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, cin, size, size), dtype=np.float32)
    w_shape = (cin, cout, 4, 4) if transposed else (cout, cin, 4, 4)
    w = (0.02 * rng.standard_normal(w_shape)).astype(np.float32)

    def tinygan_setup() -> Callable:
        import tinygan as tg
        import tinygan.functions as F

        op = F.conv_transpose2d if transposed else F.conv2d
        xt, wt = tg.tensor(x, requires_grad=backward), tg.tensor(w, requires_grad=backward)

        def run() -> None:
            y = op(xt, wt, None, stride=stride, padding=pad)
            if backward:
                y.backward(tg.ones_like(y))
                xt.grad = wt.grad = None

        return run

    def torch_setup() -> Callable:
        import torch

        op = torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d
        xt = torch.tensor(x, requires_grad=backward)
        wt = torch.tensor(w, requires_grad=backward)

        def run() -> None:
            y = op(xt, wt, None, stride=stride, padding=pad)
            if backward:
                y.backward(torch.ones_like(y))
                xt.grad = wt.grad = None

        return run

    return {"tinygan": tinygan_setup, "torch": torch_setup}


# ---------------------------------------------------------------- norms
NORM_SHAPES = {
    "BN fwd+bwd (64,128,16,16) DCGAN": ("batch", (64, 128, 16, 16)),
    "BN fwd+bwd (64,64,32,32) DCGAN": ("batch", (64, 64, 32, 32)),
    "IN fwd+bwd (1,64,128,128) CycleGAN": ("instance", (1, 64, 128, 128)),
    "IN fwd+bwd (1,256,32,32) CycleGAN": ("instance", (1, 256, 32, 32)),
}


def norm_cases() -> dict[str, tuple[dict[str, Setup], float]]:
    cases = {}
    for name, (kind, shape) in NORM_SHAPES.items():
        # bytes: read x, write y (forward); read x, dy, write dx (backward), float32
        cases[name] = (_norm_impls(kind, shape), 5 * 4 * float(np.prod(shape)))
    return cases


def _norm_impls(kind: str, shape: tuple) -> dict[str, Setup]:
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    c = shape[1]

    def tinygan_setup() -> Callable:
        import tinygan as tg
        import tinygan.functions as F

        xt = tg.tensor(x, requires_grad=True)
        weight, bias = tg.ones(c, requires_grad=True), tg.zeros(c, requires_grad=True)
        mean, var = tg.zeros(c), tg.ones(c)

        def run() -> None:
            if kind == "batch":
                y = F.batch_norm(xt, mean, var, weight, bias, training=True)
            else:
                y = F.instance_norm(xt, weight=weight, bias=bias)
            y.backward(tg.ones_like(y))
            xt.grad = weight.grad = bias.grad = None

        return run

    def torch_setup() -> Callable:
        import torch

        xt = torch.tensor(x, requires_grad=True)
        weight = torch.ones(c, requires_grad=True)
        bias = torch.zeros(c, requires_grad=True)
        mean, var = torch.zeros(c), torch.ones(c)

        def run() -> None:
            if kind == "batch":
                y = torch.nn.functional.batch_norm(xt, mean, var, weight, bias, training=True)
            else:
                y = torch.nn.functional.instance_norm(xt, weight=weight, bias=bias)
            y.backward(torch.ones_like(y))
            xt.grad = weight.grad = bias.grad = None

        return run

    return {"tinygan": tinygan_setup, "torch": torch_setup}


__all__ = ["Unsupported", "dcgan_step", "layer_cases", "mlp_gan_step", "norm_cases"]
