"""Benchmark protocol (../shared/BENCHMARKS.md): warm up, time repetitions, report median/min/max
side by side with references measured in the same run, plus the roofline of this machine.

A *case* maps implementation names ("tinygan", "torch", peers) to zero-argument setup
functions; each setup builds its inputs and returns the callable to time (so building models
is not timed). A setup raising ``Unsupported`` marks a peer that lacks an op.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


class Unsupported(Exception):
    """Raised by a setup when an implementation lacks what the case needs."""


# A short call is preceded, in each of its turns, by one untimed call of the same
# implementation. The turn before belonged to another implementation, whose threads may still
# be spinning: PyTorch's OpenMP threads spin about 4 ms after each call here (seen in
# /proc/<pid>/task/*/stat), which took a core from the MLP step timed next (tinygan 4.5-5 ms
# against 2.9 ms alone) while leaving PyTorch's own pool hot for its next turn. After the
# untimed call each side is timed in the state of its own training loop: its previous step
# just done. Calls of 0.1 s and more are not worth the doubled time: a few ms of leftover
# spin is within their noise.
SETTLE_BELOW = 0.1


class SelfTimed:
    """A callable that times itself and returns the seconds its work took (a worker process
    running one call with its own clock); ``time_interleaved`` records that, not the wall
    time around the call."""

    def __call__(self) -> float:
        raise NotImplementedError


@dataclass
class Timing:
    median: float
    low: float
    high: float
    reps: int

    def as_dict(self) -> dict:
        return {"median_s": self.median, "min_s": self.low, "max_s": self.high, "reps": self.reps}


@dataclass
class CaseResult:
    case: str
    flops: float | None = None
    bytes_moved: float | None = None
    timings: dict[str, Timing | str] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)


def time_callable(
    fn: Callable[[], object], warmup: int = 2, reps: int = 5, min_time: float = 0.0
) -> Timing:
    """Median/min/max wall time of ``fn`` after ``warmup`` calls; at least ``reps`` calls and,
    for very short calls, enough calls to fill ``min_time`` seconds."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing(statistics.median(times), min(times), max(times), len(times))


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    warmup: int = 2,
    reps: int = 5,
    min_time: float = 0.0,
    settle_below: float = SETTLE_BELOW,
) -> dict[str, Timing]:
    """``time_callable`` for several implementations at once, taking turns: every round times
    each callable once, in a rotating order. On a shared machine the load drifts over seconds;
    interleaving exposes every side to the same drift, so their ratio is far steadier than
    when one side's repetitions all run before the other's.

    An implementation whose call took less than ``settle_below`` seconds in the warm-up
    starts each turn with one untimed call (see ``SETTLE_BELOW``); so that there is a
    warm-up call to judge by, at least one warm-up round runs even with ``warmup=0``."""
    names = list(fns)
    took_in_warmup: dict[str, float] = {}
    for _ in range(max(warmup, 1)):
        for name in names:
            took_in_warmup[name] = _timed_call(fns[name])
    settles = {name: took_in_warmup[name] < settle_below for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    start = time.perf_counter()
    rounds = 0
    while rounds < reps or time.perf_counter() - start < min_time * len(names):
        for name in names[rounds % len(names) :] + names[: rounds % len(names)]:
            if settles[name]:
                fns[name]()
            times[name].append(_timed_call(fns[name]))
        rounds += 1
    return {
        name: Timing(statistics.median(ts), min(ts), max(ts), len(ts)) for name, ts in times.items()
    }


def _timed_call(fn: Callable[[], object]) -> float:
    """Seconds one call took: the wall time, or what a ``SelfTimed`` callable reports."""
    t0 = time.perf_counter()
    took = fn()
    elapsed = time.perf_counter() - t0
    return took if isinstance(fn, SelfTimed) else elapsed


def set_threads(n: int, impl: str | None = None) -> None:
    """Same thread count on every side: NumPy's BLAS (threadpoolctl), and tinygan's Numba pool
    and PyTorch's pool unless ``impl`` names another implementation (a worker process sets up
    only its own library: see workers.py)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    if impl in (None, "tinygan"):
        from tinygan.functions import winograd_kernels

        winograd_kernels.set_num_threads(n)
    if impl in (None, "torch"):
        try:
            import torch

            torch.set_num_threads(n)
        except ImportError:
            pass


# The machine's rates below are its best of several calls (the minimum time): a rate is a
# capability, and one disturbed call in a median of five once halved the GEMM rate.


def gemm_rate(threads: int, n: int = 2048, reps: int = 7) -> float:
    """Measured float32 GEMM rate of NumPy's BLAS on this machine, in FLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    t = time_callable(lambda: a @ b, warmup=1, reps=reps)
    return 2 * n**3 / t.low


def torch_gemm_rate(threads: int, n: int = 2048, reps: int = 7) -> float | None:
    """The same 2048³ float32 product through PyTorch's BLAS (None without PyTorch)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = time_callable(lambda: torch.mm(a, b), warmup=1, reps=reps)
    return 2 * n**3 / t.low


def memory_bandwidth(mb: int = 256, reps: int = 7) -> float:
    """Measured copy bandwidth (bytes read + written per second) for a large float32 array."""
    src = np.ones(mb * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    t = time_callable(lambda: np.copyto(dst, src), warmup=1, reps=reps)
    return 2 * src.nbytes / t.low


def machine_description(threads: int) -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from threadpoolctl import threadpool_info

    blas = [
        f"{i['internal_api']} {i['version']} ({i.get('architecture')})" for i in threadpool_info()
    ]
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads_used": threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = "not installed"
    return info


def format_table(results: list[CaseResult], reference: str, gemm: float, bandwidth: float) -> str:
    """Markdown table: one row per case and implementation, ratio against ``reference``."""
    lines = [
        "| case | impl | median ms | min ms | max ms | ratio vs "
        + reference
        + " | roofline | peak MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ref = r.timings.get(reference)
        for impl, t in r.timings.items():
            if isinstance(t, str):
                lines.append(f"| {r.case} | {impl} | {t} | | | | | |")
                continue
            ratio = f"{t.median / ref.median:.2f}" if isinstance(ref, Timing) else "n/a"
            floor = []
            if r.flops:
                floor.append(f"{r.flops / gemm / t.median:.0%} GEMM")
            if r.bytes_moved:
                floor.append(f"{r.bytes_moved / bandwidth / t.median:.0%} BW")
            peak = f"{r.peak_mb[impl]:.0f}" if impl in r.peak_mb else ""
            lines.append(
                f"| {r.case} | {impl} | {t.median * 1e3:.2f} | {t.low * 1e3:.2f} | "
                f"{t.high * 1e3:.2f} | {ratio} | {' '.join(floor)} | {peak} |"
            )
    return "\n".join(lines)


def write_results(
    name: str, device: str, machine: dict, table: str, raw: list[CaseResult], notes: str = ""
) -> Path:
    """Write ``benchmarks/results/<date>_<device>_<name>.md`` (table + machine) and a .json twin."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"{_dt.date.today().isoformat()}_{device}_{name}"
    md = RESULTS / f"{stem}.md"
    body = [f"# {name} on {device}, {_dt.datetime.now().isoformat(timespec='minutes')}", ""]
    body += [
        "## Machine",
        "",
        "```",
        json.dumps(machine, indent=2),
        "```",
        "",
        "## Results",
        "",
        table,
        "",
    ]
    if notes:
        body += ["## Notes", "", notes, ""]
    md.write_text("\n".join(body))
    data = {
        "machine": machine,
        "cases": [
            {
                "case": r.case,
                "flops": r.flops,
                "bytes": r.bytes_moved,
                "timings": {
                    k: (v.as_dict() if isinstance(v, Timing) else v) for k, v in r.timings.items()
                },
                "peak_mb": r.peak_mb,
            }
            for r in raw
        ],
    }
    (RESULTS / f"{stem}.json").write_text(json.dumps(data, indent=2))
    return md
