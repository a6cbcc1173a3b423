"""One step of tinygan from two checkouts, timed in alternating fresh processes.

    git worktree add /tmp/before <commit>
    python -m benchmarks.ab dcgan_step /tmp/before .      # writes results/<date>_cpu_ab_*.md
    python -m benchmarks.ab "G5 convT 64->3 32->64 fwd+bwd" /tmp/before . --reps 50

The case is a GAN step or one of the layer cases of ``benchmarks.run layers`` (by its name).

A change that cannot be switched off at run time (a rewrite, not a fast path beside an old
one; those are measured by ``benchmarks.paths``) is measured this way: each round starts one
process per checkout, in alternating order, and each process builds the case, warms up and
times a few steps. Fresh processes give every tree its own Numba and BLAS state, and the
alternation exposes both trees to the same drift in the machine's load.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import CaseResult, Timing, machine_description, write_results

# Each case builds its tinygan step from the checkout's own benchmarks package.
_BUILD = {
    "dcgan_step": "from benchmarks.cases import dcgan_step; step = dcgan_step()['tinygan']()",
    "cyclegan_step": (
        "from benchmarks.cyclegan_case import cyclegan_step; step = cyclegan_step()['tinygan']()"
    ),
    "mlp_gan_step": "from benchmarks.cases import mlp_gan_step; step = mlp_gan_step()['tinygan']()",
}

_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import tinygan
assert tinygan.__file__.startswith(sys.argv[1]), tinygan.__file__
from benchmarks.harness import set_threads
set_threads(int(sys.argv[2]), "tinygan")
{build}
for _ in range({warmup}):
    step()
times = []
for _ in range({reps}):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""


def _build(case: str) -> str:
    """The child's code that builds ``step`` for a GAN step or a layer case."""
    if case in _BUILD:
        return _BUILD[case]
    from benchmarks.cases import layer_cases

    if case not in layer_cases():
        cases = sorted(_BUILD) + sorted(layer_cases())
        raise SystemExit(f"benchmarks.ab: no case {case!r}; the cases are {cases}")
    build = f"layer_cases()[{case!r}][0]['tinygan']()"
    return f"from benchmarks.cases import layer_cases; step = {build}"


def _commit(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return done.stdout.strip() or "not a git checkout"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", help=f"{', '.join(sorted(_BUILD))} or a layer case's name")
    parser.add_argument("trees", nargs=2, type=Path, help="two checkouts: before, after")
    parser.add_argument("--rounds", type=int, default=4, help="processes per tree")
    parser.add_argument("--reps", type=int, default=5, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default=None, help="results file name (default: ab_<case>)")
    args = parser.parse_args(argv)
    trees = [tree.resolve() for tree in args.trees]
    for tree in trees:
        if not (tree / "tinygan" / "__init__.py").is_file():
            parser.error(f"{tree} holds no tinygan/ package")
    child = _CHILD.format(build=_build(args.case), warmup=args.warmup, reps=args.reps)
    roles = list(zip(("before", "after"), trees))
    times: dict[str, list[float]] = {role: [] for role, _ in roles}
    for round_ in range(args.rounds):
        for role, tree in roles if round_ % 2 == 0 else roles[::-1]:
            cmd = [sys.executable, "-c", child, str(tree), str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=tree)
            if done.returncode != 0:
                sys.exit(f"{tree}: the step failed\n{done.stderr[-3000:]}")
            times[role] += json.loads(done.stdout.strip().splitlines()[-1])
            print(f"round {round_ + 1}, {role} ({tree}): {len(times[role])} steps", flush=True)
    result = CaseResult(args.case)
    for role, tree in roles:
        ts = times[role]
        label = f"{role}: {_commit(tree)}"
        result.timings[label] = Timing(statistics.median(ts), min(ts), max(ts), len(ts))
    rows = ["| tree | median ms | min ms | max ms | steps | after / before |", "|---" * 6 + "|"]
    before = next(iter(result.timings.values())).median
    for label, t in result.timings.items():
        rows.append(
            f"| {label} | {t.median * 1e3:.1f} | {t.low * 1e3:.1f} | {t.high * 1e3:.1f} "
            f"| {t.reps} | {t.median / before:.3f} |"
        )
    table = "\n".join(rows)
    print(table)
    notes = (
        f"{args.rounds} rounds of one fresh process per tree, alternating which goes first; "
        f"each process: {args.warmup} warm-up steps, {args.reps} timed. Trees: "
        + ", ".join(f"`{tree}`" for tree in trees)
    )
    machine = machine_description(args.threads)
    slug = re.sub(r"[^a-z0-9]+", "_", args.case.lower()).strip("_")
    path = write_results(args.name or f"ab_{slug}", "cpu", machine, table, [result], notes)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
