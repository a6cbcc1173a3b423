"""tinygan's thread-runtime defaults against the alternatives, each in fresh processes.

    python -m benchmarks.runtime          # writes results/<date>_cpu_runtime.md

Two settings are made before any work runs and cannot change inside a process (see
tinygan/__init__.py and winograd_kernels._start_threads):

- Numba's pool: OpenMP with the passive wait policy (default), Numba's work queue, or
  OpenMP with its own spinning default;
- OpenBLAS's spin after a product: 2^18 cycles (default) or OpenBLAS's own 2^28;
- on AMD Zen 4, OpenBLAS's kernels: AVX2 (Haswell, default) or the AVX-512 (SkylakeX)
  ones OpenBLAS picks itself there.

So each configuration runs in its own process (tinygan only, no PyTorch loaded), and the
configurations take turns, round after round, so that they see the same load drift. The
cases are the CPU step benchmarks: DCGAN (batch 64), CycleGAN (128 px, batch 1), MLP GAN.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.harness import CaseResult, Timing, machine_description, write_results
from tinygan import _openblas

CONFIGS = {
    "default (OpenMP passive, OpenBLAS 2^18)": {},
    "Numba work queue": {"NUMBA_THREADING_LAYER": "workqueue"},
    "OpenMP spinning (its default policy)": {
        "NUMBA_THREADING_LAYER": "omp",
        "OMP_WAIT_POLICY": "active",
    },
    "OpenBLAS spin 2^28 (its default)": {"OPENBLAS_THREAD_TIMEOUT": "28"},
}
if _openblas.is_zen4(_openblas.read_cpuinfo()):
    CONFIGS["OpenBLAS AVX-512 kernels (its own choice on Zen 4)"] = {
        "OPENBLAS_CORETYPE": "SkylakeX"
    }
CASES = {"DCGAN step": ("dcgan", 5), "CycleGAN step": ("cyclegan", 4), "MLP GAN step": ("mlp", 200)}


def child(case: str, reps: int, threads: int) -> None:
    """In a fresh process: warm up, time ``reps`` steps, print the times as JSON."""
    import numba

    from benchmarks.harness import set_threads

    set_threads(threads, "tinygan")
    if case == "cyclegan":
        from benchmarks.cyclegan_case import _tinygan_step

        step = _tinygan_step(128, 1)
    else:
        from benchmarks import cases

        build = cases.dcgan_step(64) if case == "dcgan" else cases.mlp_gan_step(256)
        step = build["tinygan"]()
    for _ in range(2):
        step()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"times": times, "layer": numba.threading_layer()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="processes per configuration")
    parser.add_argument("--name", default="runtime", help="results file name")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.threads)
        return
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "NUMBA_THREADING_LAYER",
            "OMP_WAIT_POLICY",
            "OPENBLAS_THREAD_TIMEOUT",
            "OPENBLAS_CORETYPE",
        )
    }
    rows = [
        "| case | configuration | median ms | min ms | vs default (median) |",
        "|---|---|---|---|---|",
    ]
    raw = []
    for case, (name, reps) in CASES.items():
        times: dict[str, list[float]] = {config: [] for config in CONFIGS}
        for r in range(args.rounds):
            order = list(CONFIGS)[r % len(CONFIGS) :] + list(CONFIGS)[: r % len(CONFIGS)]
            for config in order:
                cmd = [sys.executable, "-m", "benchmarks.runtime", "--child", name, str(reps)]
                cmd += ["--threads", str(args.threads)]
                done = subprocess.run(
                    cmd, env={**clean, **CONFIGS[config]}, capture_output=True, text=True
                )
                if done.returncode != 0:
                    raise SystemExit(f"{case} / {config} failed:\n{done.stderr[-2000:]}")
                times[config] += json.loads(done.stdout.strip().splitlines()[-1])["times"]
        result = CaseResult(case)
        for config, ts in times.items():
            result.timings[config] = Timing(statistics.median(ts), min(ts), max(ts), len(ts))
        base = result.timings[next(iter(CONFIGS))].median
        for config, t in result.timings.items():
            rows.append(
                f"| {case} | {config} | {t.median * 1e3:.2f} | {t.low * 1e3:.2f} "
                f"| {t.median / base:.2f} |"
            )
            print(rows[-1], flush=True)
    path = write_results(args.name, "cpu", machine_description(args.threads), "\n".join(rows), raw)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
