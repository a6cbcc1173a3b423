"""GPU benchmarks (issue 6): the DCGAN step at batch 128 against PyTorch + cuDNN in the same
math mode, and every hand-written kernel's bandwidth as a fraction of a measured
device-to-device copy. Needs CuPy, PyTorch with CUDA and a GPU.

    python -m benchmarks.gpu            # strict FP32 on both sides (TF32 off)
    python -m benchmarks.gpu --tf32     # TF32 tensor-core GEMMs on both sides

Timings synchronise the device before reading the clock. Results go to
benchmarks/results/<date>_<gpu>_gpu.md like the CPU runs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import numpy as np

from benchmarks import cases
from benchmarks.harness import CaseResult, Timing, time_callable, write_results
from benchmarks.models import dcgan_flops


def _synchronised(fn: Callable[[], object], sync: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        fn()
        sync()

    return run


def copy_bandwidth(cp: object, mb: int = 1024) -> float:
    """Device-to-device copy rate, bytes read + written per second."""
    src = cp.ones(mb * 2**20 // 4, dtype=cp.float32)
    dst = cp.empty_like(src)
    sync = cp.cuda.Device().synchronize
    t = time_callable(_synchronised(lambda: cp.copyto(dst, src), sync), warmup=3, reps=20)
    return 2 * src.nbytes / t.median


def kernel_cases(cp: object) -> dict[str, tuple[Callable[[], object], float]]:
    """name -> (launch, the minimal bytes it must move: each input read once, each output
    written once), on DCGAN (batch 128) and CycleGAN activation shapes."""
    from tinygan.backend import cuda_kernels as k

    rng = np.random.default_rng(0)

    def arr(*shape: int) -> object:
        return cp.asarray(rng.standard_normal(shape, dtype=np.float32))

    f = 4  # bytes per float32
    x = arr(128, 64, 32, 32)
    cols = k.im2col_gpu(x, 4, 4, 2, 1)
    bn_x = arr(128, 128, 16, 16)
    mean, var, invstd = k.batch_norm_stats_gpu(bn_x)
    in_x = arr(1, 64, 128, 128)
    _, in_mean, in_invstd = k.instance_norm_forward_gpu(in_x)
    pad_x = arr(1, 64, 128, 128)
    padded = k.reflection_pad2d_gpu(pad_x, 3)
    up_x = arr(128, 128, 16, 16)
    upped = k.upsample_nearest2d_gpu(up_x, 2)
    act_x = arr(128, 256, 8, 8)
    act_y = k.bias_act_gpu(act_x, None, "leaky_relu", 0.2)
    return {
        "im2col D2 (128,64,32,32) k4 s2 p1": (
            lambda: k.im2col_gpu(x, 4, 4, 2, 1),
            f * (x.size + cols.size),
        ),
        "col2im D2 adjoint": (
            lambda: k.col2im_gpu(cols, (32, 32), 2, 1),
            f * (x.size + cols.size),
        ),
        "batch_norm stats+forward (128,128,16,16)": (
            lambda: k.batch_norm_forward_gpu(bn_x, *k.batch_norm_stats_gpu(bn_x)[::2]),
            f * 3 * bn_x.size,
        ),
        "batch_norm backward": (
            lambda: k.batch_norm_backward_gpu(bn_x, bn_x, mean, invstd),
            f * 3 * bn_x.size,
        ),
        "instance_norm forward (1,64,128,128)": (
            lambda: k.instance_norm_forward_gpu(in_x),
            f * 2 * in_x.size,
        ),
        "instance_norm backward": (
            lambda: k.instance_norm_backward_gpu(in_x, in_x, in_mean, in_invstd),
            f * 3 * in_x.size,
        ),
        "reflection_pad forward (1,64,128,128) pad 3": (
            lambda: k.reflection_pad2d_gpu(pad_x, 3),
            f * (pad_x.size + padded.size),
        ),
        "reflection_pad backward": (
            lambda: k.reflection_pad2d_backward_gpu(padded, 3),
            f * (pad_x.size + padded.size),
        ),
        "upsample_nearest x2 forward (128,128,16,16)": (
            lambda: k.upsample_nearest2d_gpu(up_x, 2),
            f * (up_x.size + upped.size),
        ),
        "upsample_nearest x2 backward": (
            lambda: k.upsample_nearest2d_backward_gpu(upped, 2),
            f * (up_x.size + upped.size),
        ),
        "leaky_relu forward (128,256,8,8)": (
            lambda: k.bias_act_gpu(act_x, None, "leaky_relu", 0.2),
            f * 2 * act_x.size,
        ),
        "leaky_relu backward": (
            lambda: k.bias_act_backward_gpu(act_x, act_y, "leaky_relu", 0.2),
            f * 3 * act_x.size,
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tf32", action="store_true", help="TF32 GEMMs on both sides")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args(argv)
    os.environ["CUPY_TF32"] = "1" if args.tf32 else "0"  # read when CuPy loads cuBLAS
    import cupy as cp
    import torch

    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    sync_cp, sync_torch = cp.cuda.Device().synchronize, torch.cuda.synchronize
    bandwidth = copy_bandwidth(cp)
    print(f"device-to-device copy: {bandwidth / 1e9:.0f} GB/s", flush=True)

    results: list[CaseResult] = []
    step = CaseResult(f"DCGAN step 64x64 batch {args.batch}", dcgan_flops(args.batch))
    impls = cases.dcgan_step(args.batch, device="cuda")
    for impl, sync in (("tinygan", sync_cp), ("torch", sync_torch)):
        step.timings[impl] = time_callable(_synchronised(impls[impl](), sync), 3, args.reps)
        print(f"{step.case}: {impl} {step.timings[impl].median * 1e3:.1f} ms", flush=True)
    results.append(step)

    lines = ["| kernel | median ms | GB/s | fraction of copy |", "|---|---|---|---|"]
    for name, (launch, nbytes) in kernel_cases(cp).items():
        t: Timing = time_callable(_synchronised(launch, sync_cp), 5, args.reps, min_time=0.2)
        rate = nbytes / t.median
        lines.append(
            f"| {name} | {t.median * 1e3:.3f} | {rate / 1e9:.0f} | {rate / bandwidth:.0%} |"
        )
        print(lines[-1], flush=True)

    ratio = step.timings["tinygan"].median / step.timings["torch"].median
    table = (
        f"math mode: {'TF32' if args.tf32 else 'strict FP32'} on both sides\n\n"
        f"| case | tinygan ms | torch ms | ratio |\n|---|---|---|---|\n"
        f"| {step.case} | {step.timings['tinygan'].median * 1e3:.1f} | "
        f"{step.timings['torch'].median * 1e3:.1f} | {ratio:.2f} |\n\n"
        f"device-to-device copy: {bandwidth / 1e9:.0f} GB/s\n\n" + "\n".join(lines)
    )
    machine = {
        "gpu": cp.cuda.runtime.getDeviceProperties(0)["name"].decode(),
        "cupy": cp.__version__,
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "math_mode": "TF32" if args.tf32 else "FP32",
    }
    device = machine["gpu"].replace(" ", "-").lower()
    path = write_results("gpu" + ("_tf32" if args.tf32 else ""), device, machine, table, results)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
