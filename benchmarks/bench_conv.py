"""conv2d and conv_transpose2d at every DCGAN layer shape, tinygan vs PyTorch CPU.

Radford et al. 2016 at 64×64, nz=100, ngf=ndf=64, batch 64, float32, 4×4 kernels:
G's transposed convs 100→512 (1→4), 512→256 (4→8), 256→128 (8→16), 128→64 (16→32),
64→3 (32→64); D's convs 3→64 (64→32), 64→128, 128→256, 256→512 and 512→1 (4→1).

Both libraries run in this process with the same thread count, the same inputs and weights
(N(0, 0.02), DCGAN's init). Each case is warmed up, then timed ``--reps`` times, tinygan and
PyTorch alternating so that both see the same machine noise; we report median, min and max.
"forward" runs under no_grad; "fwd+bwd" is a forward and a backward of sum(y · g) with x and
the weight both requiring gradients (so dx and dW are both computed). The last columns give
the fraction of the float32 GEMM rate measured with NumPy in the same run: GEMM FLOPs of the
case (forward 2·N·OC·C·KH·KW·OH·OW, three times that with the backward) / time / rate.

    python benchmarks/bench_conv.py [--reps 7] [--threads N] [--profile] [--only D2 G3]

Writes benchmarks/results/<date>_cpu_conv_layers.md (table + machine) unless --no-save.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinygan as tg  # noqa: E402
from tinygan.functions import conv2d, conv_transpose2d  # noqa: E402

N = 64
# name, transposed, C_in, C_out, input size, stride, padding
LAYERS = [
    ("G1 convT 100→512, 1→4", True, 100, 512, 1, 1, 0),
    ("G2 convT 512→256, 4→8", True, 512, 256, 4, 2, 1),
    ("G3 convT 256→128, 8→16", True, 256, 128, 8, 2, 1),
    ("G4 convT 128→64, 16→32", True, 128, 64, 16, 2, 1),
    ("G5 convT 64→3, 32→64", True, 64, 3, 32, 2, 1),
    ("D1 conv 3→64, 64→32", False, 3, 64, 64, 2, 1),
    ("D2 conv 64→128, 32→16", False, 64, 128, 32, 2, 1),
    ("D3 conv 128→256, 16→8", False, 128, 256, 16, 2, 1),
    ("D4 conv 256→512, 8→4", False, 256, 512, 8, 2, 1),
    ("D5 conv 512→1, 4→1", False, 512, 1, 4, 1, 0),
]


def out_size(transposed: bool, size: int, stride: int, padding: int) -> int:
    if transposed:
        return (size - 1) * stride - 2 * padding + 4
    return (size + 2 * padding - 4) // stride + 1


def gemm_flops(layer: tuple) -> float:
    """Multiply-adds ×2 of the forward GEMM (the same count for dx and dW)."""
    _, transposed, cin, cout, size, stride, padding = layer
    if transposed:  # W^T (OC·16, C) @ x (C, H·W) per sample
        return 2.0 * N * cout * 16 * cin * size * size
    o = out_size(False, size, stride, padding)
    return 2.0 * N * cout * cin * 16 * o * o


def measure_gemm_rate() -> float:
    """float32 GEMM rate of NumPy's BLAS here, GFLOP/s (best of 5, 2048³)."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    best = min(_time(lambda: a @ a) for _ in range(5))
    return 2 * 2048**3 / best / 1e9


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_cases(layer: tuple, torch: object) -> dict[str, tuple[Callable, Callable]]:
    """{"forward": (tinygan fn, torch fn), "fwd+bwd": (...)} for one layer."""
    _, transposed, cin, cout, size, stride, padding = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, cin, size, size), dtype=np.float32)
    wshape = (cin, cout, 4, 4) if transposed else (cout, cin, 4, 4)
    w = (rng.standard_normal(wshape, dtype=np.float32) * 0.02).astype(np.float32)
    o = out_size(transposed, size, stride, padding)
    g = rng.standard_normal((N, cout, o, o), dtype=np.float32)
    ours = conv_transpose2d if transposed else conv2d
    xt, wt, gt = tg.tensor(x, requires_grad=True), tg.tensor(w, requires_grad=True), tg.tensor(g)

    def tg_forward() -> None:
        with tg.no_grad():
            ours(xt, wt, None, stride, padding)

    def tg_backward() -> None:
        xt.grad = wt.grad = None
        ours(xt, wt, None, stride, padding).backward(gt)

    if torch is None:
        return {"forward": (tg_forward, None), "fwd+bwd": (tg_backward, None)}
    F = torch.nn.functional
    ref = F.conv_transpose2d if transposed else F.conv2d
    xr = torch.tensor(x, requires_grad=True)
    wr, gr = torch.tensor(w, requires_grad=True), torch.tensor(g)

    def torch_forward() -> None:
        with torch.no_grad():
            ref(xr, wr, None, stride, padding)

    def torch_backward() -> None:
        xr.grad = wr.grad = None
        ref(xr, wr, None, stride, padding).backward(gr)

    return {"forward": (tg_forward, torch_forward), "fwd+bwd": (tg_backward, torch_backward)}


def run_case(ours: Callable, ref: Callable | None, reps: int, warmup: int) -> tuple:
    for _ in range(warmup):
        ours()
        if ref is not None:
            ref()
    t_ours, t_ref = [], []
    for _ in range(reps):  # alternate so both see the same noise
        t_ours.append(_time(ours))
        if ref is not None:
            t_ref.append(_time(ref))
    return t_ours, t_ref


def machine(threads: int, gemm_rate: float, torch: object) -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = "unknown"
    try:
        from threadpoolctl import threadpool_info

        blas = "; ".join(
            f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, "
            f"{i['num_threads']} threads)"
            for i in threadpool_info()
            if i["user_api"] == "blas" and "numpy" in i["filepath"]
        )
    except ImportError:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{config['name']} {config.get('version', '')}"
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; threads used: {threads}",
        f"- Python {platform.python_version()}, NumPy {np.__version__}, BLAS: {blas}",
        f"- NumPy float32 GEMM rate (2048³, best of 5): {gemm_rate:.0f} GFLOP/s",
    ]
    if torch is not None:
        lines.append(f"- PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--only", nargs="*", default=None, help="layer prefixes, e.g. D2 G3")
    parser.add_argument("--profile", action="store_true", help="cProfile tinygan's fwd+bwd")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        print("threadpoolctl not installed: NumPy's BLAS uses its default thread count")
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("PyTorch: not installed (tinygan times only)")

    gemm_rate = measure_gemm_rate()
    rows = []
    for layer in LAYERS:
        if args.only and not any(layer[0].startswith(p) for p in args.only):
            continue
        for kind, (ours, ref) in make_cases(layer, torch).items():
            t_ours, t_ref = run_case(ours, ref, args.reps, args.warmup)
            flops = gemm_flops(layer) * (3 if kind == "fwd+bwd" else 1)
            rows.append((layer[0], kind, t_ours, t_ref, flops))
            med = statistics.median(t_ours)
            ref_med = statistics.median(t_ref) if t_ref else float("nan")
            print(
                f"{layer[0]:26s} {kind:8s} tinygan {med * 1e3:7.1f} ms   "
                f"torch {ref_med * 1e3:7.1f} ms   ratio {med / ref_med:5.2f}",
                flush=True,
            )
            if args.profile and kind == "fwd+bwd":
                profile = cProfile.Profile()
                for _ in range(3):
                    profile.runcall(ours)
                pstats.Stats(profile).sort_stats("tottime").print_stats(8)

    table = format_table(rows, gemm_rate)
    header = machine(args.threads, gemm_rate, torch)
    print("\n".join(header) + "\n\n" + table)
    if not args.no_save:
        today = datetime.date.today().isoformat()
        path = Path(__file__).resolve().parent / "results" / f"{today}_cpu_conv_layers.md"
        path.parent.mkdir(exist_ok=True)
        text = (
            f"# DCGAN conv layers, tinygan vs PyTorch CPU ({today})\n\n"
            f"`python benchmarks/bench_conv.py --reps {args.reps} --threads {args.threads}`, "
            f"batch {N}, float32; median (min–max) of {args.reps} runs after {args.warmup} "
            "warm-up runs, tinygan and PyTorch alternating.\n\n"
            + "\n".join(header)
            + "\n\n"
            + table
            + "\n"
        )
        path.write_text(text)
        print(f"\nwrote {path}")


def format_table(rows: list, gemm_rate: float) -> str:
    def cell(times: list) -> str:
        if not times:
            return "n/a"
        ms = [t * 1e3 for t in times]
        return f"{statistics.median(ms):.1f} ({min(ms):.1f}–{max(ms):.1f})"

    lines = [
        "| layer | pass | tinygan ms | PyTorch ms | ratio | tinygan GFLOP/s | of GEMM rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, kind, t_ours, t_ref, flops in rows:
        ratio = statistics.median(t_ours) / statistics.median(t_ref) if t_ref else float("nan")
        rate = flops / statistics.median(t_ours) / 1e9
        lines.append(
            f"| {name} | {kind} | {cell(t_ours)} | {cell(t_ref)} | {ratio:.2f} | "
            f"{rate:.0f} | {rate / gemm_rate:.0%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
