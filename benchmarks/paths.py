"""Each CPU fast path against the path it replaced, in one process, interleaved rounds.

    python -m benchmarks.paths            # 2 threads, writes results/<date>_cpu_paths.md

Every case runs a layer's forward + backward twice: "on" with the fast path, "off" with its
switch turned off (the general im2col or NumPy-pass path that runs without it). The paths:
Winograd (functions/winograd.py), the narrow-layer unfold (conv_narrow.py), the dense layer
for a kernel covering the whole map (conv._covers), the Numba-fused norms (norm_kernels.py)
and activations (activation_kernels.py), the im2col products' layout rule
(conv._transposed_is_faster; "off" transposes every product with fewer rows than columns),
their per-sample form (conv._per_sample; "off" runs every product over the whole batch), the
compiled im2col/col2im (im2col_kernels.py; "off": NumPy's strided copy and adds), Adam's
one-pass update (optim/adam_kernels.py; "off": adam.py's array passes), the per-sample
products one core each (backend/batched_matmul.py; "off": one np.matmul), a norm layer
with the activation after it as one op (nn.Sequential; "off": the two layers one by one) and
the Winograd layers' per-core chains (winograd.py; "off": each step over the whole batch).
This is where benchmarks/NOTES.md's per-path figures come from; a rewrite that cannot be
switched off is measured between two checkouts by ``benchmarks.ab``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator

import numpy as np

from benchmarks.harness import (
    CaseResult,
    machine_description,
    set_threads,
    time_interleaved,
    write_results,
)


@contextlib.contextmanager
def _switched_off(path: str) -> Iterator[None]:
    from tinygan.backend import batched_matmul
    from tinygan.functions import (
        activation_kernels,
        conv,
        conv_narrow,
        im2col_kernels,
        norm_kernels,
        winograd,
    )
    from tinygan.nn import container
    from tinygan.optim import adam_kernels

    module, name, off = {
        "winograd": (winograd, "ENABLED", False),
        "narrow": (conv_narrow, "ENABLED", False),
        "dense": (conv, "_covers", lambda *args: False),
        "fused norm": (norm_kernels, "usable", lambda x: False),
        "fused activation": (activation_kernels, "usable", lambda *args: False),
        # off: every im2col product with fewer rows than columns transposed, as before
        "product layout": (conv, "_TRANSPOSED_MIN_K", 0),
        # off: every im2col product over the whole batch (batch-last operands), as before
        "per sample": (conv, "_PER_SAMPLE_MAX_ROWS", -1),
        # off: im2col/col2im as NumPy's strided copy and strided adds, as before
        "compiled im2col": (im2col_kernels, "usable", lambda a: False),
        "fused adam": (adam_kernels, "usable", lambda *arrays: False),
        # off: the per-sample products as one np.matmul, OpenBLAS's threads on each product
        "one core per product": (batched_matmul, "ENABLED", False),
        # off: nn.Sequential runs the norm layer and the activation after it one by one
        "norm + activation": (container, "FUSE_NORM_ACTIVATION", False),
        # off: the Winograd layers' planes of the whole batch, each step on all threads
        "per-core chains": (winograd, "CHAINS", False),
    }[path]
    saved = getattr(module, name)
    setattr(module, name, off)
    try:
        yield
    finally:
        setattr(module, name, saved)


def _conv_step(x_shape: tuple, w_shape: tuple, transpose: bool = False, **geometry) -> Callable:
    import tinygan as tg
    import tinygan.functions as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = tg.tensor((0.05 * rng.standard_normal(w_shape)).astype(np.float32), requires_grad=True)
    op = F.conv_transpose2d if transpose else F.conv2d

    def step() -> None:
        xt = tg.tensor(x, requires_grad=True)
        op(xt, w, **geometry).sum().backward()

    return step


def _norm_step(kind: str, shape: tuple) -> Callable:
    import tinygan as tg
    import tinygan.functions as F

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    w, b = (tg.tensor(np.full(shape[1], v, np.float32), requires_grad=True) for v in (1, 0))

    def step() -> None:
        xt = tg.tensor(x, requires_grad=True)
        if kind == "batch":
            y = F.batch_norm(xt, None, None, w, b, training=True)
        else:
            y = F.instance_norm(xt, None, None, w, b)
        (y * y).sum().backward()

    return step


def _activation_step(act: str, shape: tuple) -> Callable:
    import tinygan as tg
    import tinygan.functions as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    g = tg.tensor(rng.standard_normal(shape).astype(np.float32))

    def step() -> None:
        xt = tg.tensor(x, requires_grad=True)
        (F.leaky_relu(xt, 0.2) if act == "leaky_relu" else F.relu(xt)).backward(g)

    return step


def _norm_activation_step(kind: str, slope: float, shape: tuple) -> Callable:
    import tinygan as tg
    from tinygan import nn

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    g = tg.tensor(rng.standard_normal(shape).astype(np.float32))
    norm = nn.BatchNorm2d(shape[1]) if kind == "batch" else nn.InstanceNorm2d(shape[1])
    layers = nn.Sequential(norm, nn.ReLU() if slope == 0 else nn.LeakyReLU(slope))

    def step() -> None:
        layers(tg.tensor(x, requires_grad=True)).backward(g)

    return step


def _dcgan_d1() -> Callable:  # conv 3->64, 64x64 -> 32x32: short im2col columns
    return _conv_step((64, 3, 64, 64), (64, 3, 4, 4), stride=2, padding=1)


def _dcgan_g5() -> Callable:  # convT 64->3, 32x32 -> 64x64: its forward is a col2im
    return _conv_step((64, 64, 32, 32), (64, 3, 4, 4), True, stride=2, padding=1)


def _adam_step(shapes: list) -> Callable:
    import tinygan as tg
    from tinygan import nn, optim

    rng = np.random.default_rng(0)
    params = [nn.Parameter(rng.standard_normal(shape).astype(np.float32)) for shape in shapes]
    for p in params:
        p.grad = tg.tensor(rng.standard_normal(p.shape).astype(np.float32))
    opt = optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
    return opt.step


def _dcgan_parameter_shapes() -> list:
    from benchmarks import models
    from tinygan import nn

    return [p.shape for net in models.tinygan_dcgan(nn) for p in net.parameters()]


CASES = {
    "DCGAN D2 conv 64->128 32->16 fwd+bwd": (
        "winograd",
        lambda: _conv_step((64, 64, 32, 32), (128, 64, 4, 4), stride=2, padding=1),
    ),
    "DCGAN D2 conv 64->128 32->16 fwd+bwd (chains)": (
        "per-core chains",
        lambda: _conv_step((64, 64, 32, 32), (128, 64, 4, 4), stride=2, padding=1),
    ),
    "DCGAN G4 convT 128->64 16->32 fwd+bwd (chains)": (
        "per-core chains",
        lambda: _conv_step((64, 128, 16, 16), (128, 64, 4, 4), True, stride=2, padding=1),
    ),
    "DCGAN G3 convT 256->128 8->16 fwd+bwd": (
        "winograd",
        lambda: _conv_step((64, 256, 8, 8), (256, 128, 4, 4), True, stride=2, padding=1),
    ),
    "CycleGAN residual conv 256->256 3x3 32px fwd+bwd": (
        "winograd",
        lambda: _conv_step((1, 256, 34, 34), (256, 256, 3, 3)),
    ),
    "CycleGAN output conv 64->3 7x7 128px fwd+bwd": (
        "narrow",
        lambda: _conv_step((1, 64, 134, 134), (3, 64, 7, 7)),
    ),
    "DCGAN D1 conv 3->64 64->32 fwd+bwd": ("per sample", _dcgan_d1),
    "DCGAN G5 convT 64->3 32->64 fwd+bwd": ("per sample", _dcgan_g5),
    "DCGAN D1 conv 3->64 64->32 fwd+bwd (im2col)": ("compiled im2col", _dcgan_d1),
    "DCGAN G5 convT 64->3 32->64 fwd+bwd (col2im)": ("compiled im2col", _dcgan_g5),
    "DCGAN D1 conv 3->64 64->32 fwd+bwd (products)": ("one core per product", _dcgan_d1),
    "DCGAN G5 convT 64->3 32->64 fwd+bwd (products)": ("one core per product", _dcgan_g5),
    "Adam step, DCGAN G and D parameters": (
        "fused adam",
        lambda: _adam_step(_dcgan_parameter_shapes()),
    ),
    "DCGAN D5 conv 512->1 4->1 fwd+bwd": (
        "dense",
        lambda: _conv_step((64, 512, 4, 4), (1, 512, 4, 4)),
    ),
    "CycleGAN PatchGAN conv 256->512 4x4 16->15 fwd+bwd": (
        "product layout",
        lambda: _conv_step((1, 256, 16, 16), (512, 256, 4, 4), padding=1),
    ),
    "BN (64,64,32,32) fwd+bwd": ("fused norm", lambda: _norm_step("batch", (64, 64, 32, 32))),
    "BN (64,128,16,16) fwd+bwd": ("fused norm", lambda: _norm_step("batch", (64, 128, 16, 16))),
    "BN (64,512,4,4) fwd+bwd": ("fused norm", lambda: _norm_step("batch", (64, 512, 4, 4))),
    "IN (1,64,128,128) fwd+bwd": ("fused norm", lambda: _norm_step("instance", (1, 64, 128, 128))),
    "IN (1,256,32,32) fwd+bwd": ("fused norm", lambda: _norm_step("instance", (1, 256, 32, 32))),
    "BN + leaky_relu (64,128,16,16) fwd+bwd": (
        "norm + activation",
        lambda: _norm_activation_step("batch", 0.2, (64, 128, 16, 16)),
    ),
    "BN + relu (64,64,32,32) fwd+bwd": (
        "norm + activation",
        lambda: _norm_activation_step("batch", 0.0, (64, 64, 32, 32)),
    ),
    "IN + relu (1,256,32,32) fwd+bwd": (
        "norm + activation",
        lambda: _norm_activation_step("instance", 0.0, (1, 256, 32, 32)),
    ),
    "leaky_relu (64,64,32,32) fwd+bwd": (
        "fused activation",
        lambda: _activation_step("leaky_relu", (64, 64, 32, 32)),
    ),
    "relu (1,256,32,32) fwd+bwd": (
        "fused activation",
        lambda: _activation_step("relu", (1, 256, 32, 32)),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--name", default="paths", help="results file name")
    args = parser.parse_args()
    set_threads(args.threads, "tinygan")
    rows = [
        "| case | path | on ms (median) | off ms (median) | on / off |",
        "|---|---|---|---|---|",
    ]
    raw = []
    for case, (path, build) in CASES.items():
        on = build()

        def off(on: Callable = on, path: str = path) -> None:
            with _switched_off(path):
                on()

        timings = time_interleaved({"on": on, "off": off}, warmup=2, reps=args.reps)
        raw.append(CaseResult(case, timings=dict(timings)))
        t_on, t_off = timings["on"].median * 1e3, timings["off"].median * 1e3
        rows.append(f"| {case} | {path} | {t_on:.2f} | {t_off:.2f} | {t_on / t_off:.2f} |")
        print(rows[-1], flush=True)
    path = write_results(args.name, "cpu", machine_description(args.threads), "\n".join(rows), raw)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
