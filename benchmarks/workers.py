"""PyTorch's side of a case in a process of its own, timed in the parent's interleaved rounds.

    python -m benchmarks.workers GROUP CASE IMPL THREADS     # one worker (run.py starts it)

Why a process: one process has one OpenMP runtime, and its wait policy is read once, when
it loads. tinygan's Numba loops want threads that sleep as soon as a loop ends (they
alternate with OpenBLAS GEMMs that need the cores: see winograd_kernels._start_threads);
PyTorch's intra-op pool is tuned for its default, threads that spin between regions. In one
process the runtime is shared (PyTorch's libgomp and Numba's have the same soname), so one
side would run under the other's setting: PyTorch's CycleGAN step was 1-3 % slower under the
passive policy, and tinygan's DCGAN step 1.4x slower under the spinning one. The worker
runs PyTorch with its defaults; the only tinygan code it loads is the import of this package
(benchmarks/__init__.py), whose process settings therefore hold on both sides: glibc's
malloc keeps freed memory (tinygan/backend/host_memory.py), and OpenBLAS's spin is
shortened (PyTorch does not use OpenBLAS). No Numba, no OpenMP setting. The malloc policy
matters to PyTorch: with glibc's defaults its DCGAN layers took 12-16k page faults and up to
1.9x the time per call here (benchmarks/NOTES.md, item 21); ``run.py --torch-malloc
default`` gives the worker glibc's defaults, as a plain ``import torch`` has them.

tinygan and the NumPy peers stay in the parent, as before: one worker per peer would leave
one more OpenBLAS pool spinning beside each timed call (tried: the MLP step's medians rose
from 3 to 8-46 ms).

The protocol's interleaving is kept: the parent asks the worker for its calls in its turn of
each round (``harness.time_interleaved``: one timed call, after an untimed one for short
cases), so all sides see the same load drift.
The worker times its call with its own clock; the pipe round trip is not counted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from benchmarks.harness import SelfTimed, Unsupported, set_threads


class Worker(SelfTimed):
    """One implementation of one case in a child process; calling it runs one timed call
    and returns the seconds it took."""

    def __init__(
        self, group: str, case: str, impl: str, threads: int, env: dict | None = None
    ) -> None:
        cmd = [sys.executable, "-m", "benchmarks.workers", group, case, impl, str(threads)]
        # a file, not a pipe: a pipe nobody reads would stall a child that warns a lot
        self.errors = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        self.status = self._reply()  # "ready", or why the implementation cannot run

    def _reply(self) -> str:
        line = self.proc.stdout.readline().strip()
        if not line:  # the child died: keep the last line of its traceback
            self.proc.wait()
            self.errors.seek(0)
            last = (self.errors.read().strip().splitlines() or ["no message"])[-1]
            return f"failed: {last[:200]}"
        return line

    def __call__(self) -> float:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        reply = self._reply()
        if reply.startswith("failed"):
            raise RuntimeError(reply)
        return float(reply)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()
        self.errors.close()


def serve(group: str, case: str, impl: str, threads: int) -> None:
    """The child's side: build the case, make the first (warm-up) call, then answer each
    "run" with the seconds one call took."""
    from benchmarks.run import collect

    set_threads(threads, impl)
    try:
        run = collect(group, peers=True)[case][0][impl]()
        run()  # the first warm-up call, where a peer may find it lacks an op
    except Unsupported as exc:
        print(f"unsupported: {exc}", flush=True)
        return
    except ImportError as exc:
        print(f"not installed ({exc.name})", flush=True)
        return
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        run()
        print(time.perf_counter() - start, flush=True)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
