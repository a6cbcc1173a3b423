"""Run the benchmark cases side by side and write the table under benchmarks/results/.

    python -m benchmarks.run                       # every case, 2 threads
    python -m benchmarks.run dcgan_step --reps 5   # one group
    python -m benchmarks.run mlp_gan_step layers norms --peers

Groups: dcgan_step, mlp_gan_step, layers, norms, cyclegan_step. ``--peers`` adds the
from-scratch peers that are installed (see peers.py); a missing peer is reported, not crashed on.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

from benchmarks import cases as case_defs
from benchmarks.harness import (
    CaseResult,
    Unsupported,
    format_table,
    gemm_rate,
    machine_description,
    memory_bandwidth,
    set_threads,
    time_interleaved,
    torch_gemm_rate,
    write_results,
)
from benchmarks.workers import Worker

GROUPS = ("dcgan_step", "mlp_gan_step", "layers", "norms", "cyclegan_step")


def collect(group: str, peers: bool) -> dict[str, tuple[dict, float | None, float | None]]:
    """name -> (implementations, flops, bytes)."""
    if group == "dcgan_step":
        from benchmarks.models import dcgan_flops

        found = {"DCGAN step 64x64 batch 64": (case_defs.dcgan_step(64), dcgan_flops(64), None)}
    elif group == "mlp_gan_step":
        found = {"MLP GAN step 8 Gaussians batch 256": (case_defs.mlp_gan_step(256), None, None)}
    elif group == "layers":
        found = {k: (impls, flops, None) for k, (impls, flops) in case_defs.layer_cases(64).items()}
    elif group == "norms":
        found = {k: (impls, None, nbytes) for k, (impls, nbytes) in case_defs.norm_cases().items()}
    elif group == "cyclegan_step":
        from benchmarks.cyclegan_case import cyclegan_flops, cyclegan_step

        found = {"CycleGAN step 128x128 batch 1": (cyclegan_step(), cyclegan_flops(), None)}
    else:
        raise SystemExit(f"unknown group {group!r}; choose from {GROUPS}")
    if peers:
        from benchmarks import peers as peer_defs

        for name, (impls, _, _) in found.items():
            impls.update(peer_defs.implementations(group, name))
    return found


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    """This process's own resident high-water mark (VmHWM). Not getrusage's ru_maxrss: Linux
    carries that over exec from the process that spawned this one, so a child started by a
    parent that had run a model reported the parent's peak (DCGAN: 591 MB against 387 MB
    measured from a small parent; every earlier results file has that offset on both sides)."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kb / 1024


def memory_child(group: str, name: str, impl: str, threads: int) -> None:
    """In a fresh process: build the case, then report resident memory before and at the peak
    of two timed calls (the step's own transient memory is peak − base)."""
    set_threads(threads, impl)
    impls, _, _ = collect(group, peers=True)[name]
    run = impls[impl]()
    base = _rss_mb()
    run()
    run()
    peak = _peak_rss_mb()
    print(json.dumps({"base_mb": base, "peak_mb": peak}))


def measure_memory(
    group: str, name: str, impl: str, threads: int, env: dict | None = None
) -> float | None:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--memory-child",
        group,
        name,
        impl,
        "--threads",
        str(threads),
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=None if env is None else {**os.environ, **env}
    )
    if done.returncode != 0:  # the table leaves the cell empty; say why here
        print(f"memory of {impl} on {name!r} not measured:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return data["peak_mb"] - data["base_mb"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("groups", nargs="*", default=list(GROUPS), help=f"any of {GROUPS}")
    parser.add_argument(
        "--threads", type=int, default=2, help="BLAS/intra-op threads on every side"
    )
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions after warm-up")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--peers", action="store_true", help="also run the installed from-scratch peers"
    )
    parser.add_argument(
        "--memory", action="store_true", help="measure each side's step memory in a subprocess"
    )
    parser.add_argument("--only", default=None, help="substring filter on case names")
    parser.add_argument("--name", default=None, help="results file name (default: the groups)")
    parser.add_argument(
        "--torch-malloc",
        choices=("tinygan", "default"),
        default="tinygan",
        help="PyTorch worker's malloc: tinygan's policy, as on tinygan's side (default), or "
        "glibc's defaults, as a plain `import torch` has them (see workers.py)",
    )
    parser.add_argument(
        "--memory-child", nargs=3, metavar=("GROUP", "CASE", "IMPL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child, args.threads)
        return

    set_threads(args.threads, "tinygan")  # and the peers; PyTorch runs in a worker
    gemm, bandwidth = gemm_rate(args.threads), memory_bandwidth()
    torch_gemm = torch_gemm_rate(args.threads)
    print(
        f"float32 GEMM {gemm / 1e9:.0f} GFLOP/s (PyTorch's "
        f"{torch_gemm / 1e9 if torch_gemm else float('nan'):.0f}), "
        f"copy bandwidth {bandwidth / 1e9:.1f} GB/s",
        flush=True,
    )
    torch_env = {"TINYGAN_MALLOC": "default"} if args.torch_malloc == "default" else None
    results: list[CaseResult] = []
    for group in args.groups:
        for name, (impls, flops, nbytes) in collect(group, args.peers).items():
            if args.only and args.only not in name:
                continue
            result = CaseResult(name, flops, nbytes)
            runs, worker = {}, None
            for impl, setup in impls.items():
                try:
                    if impl == "torch":  # its own process and OpenMP runtime: see workers.py
                        worker = Worker(group, name, impl, args.threads, torch_env)
                        if worker.status != "ready":
                            result.timings[impl] = worker.status
                            continue
                        runs[impl] = worker
                        continue
                    run = setup()
                    run()  # the first warm-up call, where a peer may find it lacks an op
                    runs[impl] = run
                except Unsupported as exc:
                    result.timings[impl] = f"unsupported: {exc}"
                except ImportError as exc:
                    result.timings[impl] = f"not installed ({exc.name})"
            # every implementation takes turns in the same loop: same-run ratios
            try:
                warmup = max(args.warmup - 1, 0)
                result.timings.update(time_interleaved(runs, warmup, args.reps, 0.5))
            finally:
                if worker is not None:
                    worker.close()
            runs = run = None  # free the models before the memory subprocesses
            result.timings = {impl: result.timings[impl] for impl in impls}
            for impl in impls:
                if args.memory and not isinstance(result.timings[impl], str):
                    env = torch_env if impl == "torch" else None
                    peak = measure_memory(group, name, impl, args.threads, env)
                    if peak is not None:
                        result.peak_mb[impl] = peak
                t = result.timings[impl]
                shown = t if isinstance(t, str) else f"{t.median * 1e3:.2f} ms"
                print(f"{name:45s} {impl:10s} {shown}", flush=True)
            results.append(result)
    table = format_table(results, "torch", gemm, bandwidth)
    print(table)
    machine = machine_description(args.threads)
    machine["gemm_gflops"] = round(gemm / 1e9, 1)
    if torch_gemm:
        machine["torch_gemm_gflops"] = round(torch_gemm / 1e9, 1)
    machine["copy_bandwidth_gbs"] = round(bandwidth / 1e9, 2)
    machine["torch_malloc"] = args.torch_malloc
    path = write_results(args.name or "_".join(args.groups), "cpu", machine, table, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
