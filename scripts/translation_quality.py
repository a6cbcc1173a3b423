"""Measure pix2pix and CycleGAN translation quality on the embedded digit domains.

    python scripts/translation_quality.py cyclegan [--steps N] [--runs DIR] [--write]
    python scripts/translation_quality.py pix2pix  [--steps N] [--runs DIR] [--write]

The papers' "FCN score" idea (Isola et al. 2017, section 4.2; Zhu et al. 2017, section
5.1.1) in tinygan's terms: an off-the-shelf recogniser -- here the evaluation classifier of
:mod:`tinygan.metrics` (trained on real digits, reads colour images through their grey
mean) -- should read translated images as well as real images of the target domain.
Everything is measured on the held-out test split of :mod:`tinygan.data.translation`.

- cyclegan: trains ``tinygan train cyclegan`` (settings below); then, for G: A -> B, the
  classifier's accuracy on G(test A) against A's labels next to its accuracy on real test B
  (content preservation; accepted at >= 80% of the real-B accuracy), and the Fréchet distance
  (classifier features) of G(test A) vs real test B for the untrained and the trained G, with
  real test A and real train B as references; the same for F: B -> A.
- pix2pix: trains pix2pix and its L1-only baseline (``--lambda-gan 0``, same G, steps and
  seed); on the test pairs: mean L1 and PSNR against the targets, classifier accuracy, and the
  Fréchet distance of outputs vs real targets (accepted when pix2pix's is below the
  baseline's).

Training goes through the CLI in this process; the wall times are recorded. ``--write``
writes benchmarks/results/quality_<model>_<date>.md (and a .json twin).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import tinygan
from tinygan.cli import main as cli
from tinygan.cli import restore_loop
from tinygan.data.translation import PairedDigits, UnpairedDigits
from tinygan.gans import registry
from tinygan.gans.loop import DataInfo
from tinygan.gans.translation import l1_psnr
from tinygan.metrics import features_and_labels, frechet_distance_features, load_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")

# Sizes for a 2-core CPU (see the results file for why).
SETTINGS = {
    "cyclegan": ["--image-size", "32", "--ngf", "16", "--ndf", "16", "--n-blocks", "3",
                 "--batch-size", "4"],
    "pix2pix": ["--image-size", "32", "--ngf", "32", "--ndf", "32", "--batch-size", "16"],
}  # fmt: skip
STEPS = {"cyclegan": 1200, "pix2pix": 1000}


def train(model: str, out: str, steps: int, seed: int, extra: list[str]) -> dict[str, Any]:
    """``tinygan train MODEL`` (or reuse a finished run in ``out``); returns the command."""
    args = ["train", model, *SETTINGS[model], *extra, "--steps", str(steps), "--seed", str(seed)]
    args += ["--out", out, "--no-progress", "--sample-every", str(steps // 4)]
    command = "tinygan " + " ".join(args)
    done = os.path.join(out, "checkpoints", f"step_{steps:07d}.npz")
    if os.path.exists(done):
        print(f"reusing {out}", flush=True)
        wall = json.load(open(os.path.join(out, "wall.json")))["wall_s"]
        return {"command": command, "wall_s": wall, "reused": True}
    print(command, flush=True)
    start = time.perf_counter()
    if cli(args) != 0:
        raise SystemExit(f"training failed: {command}")
    wall = time.perf_counter() - start
    with open(os.path.join(out, "wall.json"), "w") as f:
        json.dump({"wall_s": wall}, f)
    return {"command": command, "wall_s": wall, "reused": False}


def untrained(run: str) -> Any:
    """The run's loop at step 0 (same config and seed, so its initial weights)."""
    loop, state = restore_loop(run)
    tinygan.manual_seed(int(state["config"]["seed"]))
    return registry.get(state["model"])(state["config"], DataInfo.from_dict(state["data"]))


def scores(images: np.ndarray, labels: Any, real_feats: np.ndarray, clf: Any) -> dict:
    """Classifier accuracy against ``labels`` (if any) and the Fréchet distance of the
    classifier features of ``images`` to ``real_feats``."""
    feats, pred = features_and_labels(images, clf)
    out = {"frechet": frechet_distance_features(real_feats, feats)}
    if labels is not None:
        out["accuracy"] = float((pred == labels).mean())
    return out


# ---------------------------------------------------------------------------- cyclegan
def cyclegan(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    run = os.path.join(args.runs, f"cyclegan_s{seed}_{args.steps}")
    info = train("cyclegan", run, args.steps, seed, [])
    loop, _ = restore_loop(run)
    before = untrained(run)
    clf = load_classifier()
    test, train_split = UnpairedDigits("test", 32, 3, seed), UnpairedDigits("train", 32, 3, seed)
    a, b = test.images_A, test.images_B
    fa, _ = features_and_labels(a, clf)
    fb, _ = features_and_labels(b, clf)
    rows = {}
    for name, direction, src, src_y, real_f, ref_real, ref_y, other in (
        ("G: A->B", "AtoB", a, test.labels_A, fb, b, test.labels_B, train_split.images_B),
        ("F: B->A", "BtoA", b, test.labels_B, fa, a, test.labels_A, train_split.images_A),
    ):
        real_acc = scores(ref_real, ref_y, real_f, clf)["accuracy"]
        rows[name] = {
            "real target (test)": {"accuracy": real_acc},
            "real target (train split) vs test": scores(other, None, real_f, clf),
            "input itself (no translation)": scores(src, src_y, real_f, clf),
            "untrained": scores(before.translate_images(src, direction), src_y, real_f, clf),
            "trained": scores(loop.translate_images(src, direction), src_y, real_f, clf),
        }
        rows[name]["content_ratio"] = rows[name]["trained"]["accuracy"] / real_acc
    g = rows["G: A->B"]
    accept = {
        "content_ratio_G>=0.8": bool(g["content_ratio"] >= 0.8),
        "frechet_lower_than_untrained": bool(g["trained"]["frechet"] < g["untrained"]["frechet"]),
    }
    return {"train": [info], "rows": rows, "acceptance": accept, "n_test": [len(a), len(b)]}


def cyclegan_summary(results: dict[int, Any]) -> list[str]:
    head = "| seed | G: acc G(A) / acc real B | G: FD untrained -> trained | "
    head += "F: acc F(B) / acc real A | F: FD untrained -> trained |"
    lines = [head, "|---|---|---|---|---|"]
    for seed, r in results.items():
        cells = []
        for name in ("G: A->B", "F: B->A"):
            x = r["rows"][name]
            acc, real = x["trained"]["accuracy"], x["real target (test)"]["accuracy"]
            cells.append(f"{acc:.3f} / {real:.3f} = {x['content_ratio']:.3f}")
            cells.append(f"{x['untrained']['frechet']:.1f} -> {x['trained']['frechet']:.1f}")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return lines


# ---------------------------------------------------------------------------- pix2pix
P2P, L1 = "pix2pix (cGAN + 100 L1)", "L1-only baseline"


def pix2pix(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    runs = {
        P2P: ([], f"pix2pix_{args.degradation}_s{seed}_{args.steps}"),
        L1: (["--lambda-gan", "0"], f"pix2pix_l1_{args.degradation}_s{seed}_{args.steps}"),
    }
    clf = load_classifier()
    test = PairedDigits("test", 32, args.degradation, seed=seed)
    x, y, labels = test.images_A, test.images_B, test.labels
    fy, _ = features_and_labels(y, clf)
    ref_train = PairedDigits("train", 32, args.degradation, seed=seed).images_B
    rows: dict[str, Any] = {
        "real targets (test)": scores(y, labels, fy, clf) | {"frechet": 0.0},
        "real targets (train split) vs test": scores(ref_train, None, fy, clf),
        "input (degraded)": scores(x, labels, fy, clf) | l1_psnr(x, y),
    }
    infos = []
    for name, (extra, folder) in runs.items():
        run = os.path.join(args.runs, folder)
        data = ["--data", f"default:{args.degradation}"]
        infos.append(train("pix2pix", run, args.steps, seed, data + extra))
        loop, _ = restore_loop(run)
        out = loop.translate_images(x)
        rows[name] = scores(out, labels, fy, clf) | l1_psnr(out, y)
    accept = {"frechet_pix2pix<l1_only": bool(rows[P2P]["frechet"] < rows[L1]["frechet"])}
    return {"train": infos, "rows": rows, "acceptance": accept, "n_test": len(x)}


def pix2pix_summary(results: dict[int, Any]) -> list[str]:
    lines = ["| seed | FD pix2pix | FD L1-only | PSNR pix2pix | PSNR L1-only | "
             "acc pix2pix | acc L1-only |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    cols = [(P2P, "frechet"), (L1, "frechet"), (P2P, "psnr_db"), (L1, "psnr_db"),
            (P2P, "accuracy"), (L1, "accuracy")]  # fmt: skip
    for seed, r in results.items():
        lines.append(f"| {seed} | " + " | ".join(f"{r['rows'][m][k]:.4g}" for m, k in cols) + " |")
    means = [np.mean([r["rows"][m][k] for r in results.values()]) for m, k in cols]
    lines.append("| mean | " + " | ".join(f"{v:.4g}" for v in means) + " |")
    return lines


# ---------------------------------------------------------------------------- report
def machine(threads: int) -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "blas_threads": threads,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
    }


def table(rows: dict[str, Any]) -> str:
    keys = sorted({k for r in rows.values() if isinstance(r, dict) for k in r})
    lines = ["| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, r in rows.items():
        if isinstance(r, dict):
            cells = [f"{r[k]:.4g}" if k in r else "" for k in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(model: str, results: dict[int, Any], args: argparse.Namespace) -> str:
    lines = [f"# {model} translation quality, {datetime.date.today().isoformat()}", ""]
    lines += ["Reproduce: `python scripts/translation_quality.py " + " ".join(sys.argv[1:]) + "`"]
    lines += ["(the script's docstring says what each figure is).", ""]
    lines += ["## Settings and why", "", WHY[model], "", "## Training runs (wall time)", ""]
    for r in results.values():
        for t in r["train"]:
            lines.append(f"- `{t['command']}`: {t['wall_s']:.0f} s")
    lines += ["", "## Summary (held-out test split)", ""]
    lines += cyclegan_summary(results) if model == "cyclegan" else pix2pix_summary(results)
    lines += [""]
    for seed, r in results.items():
        lines += [f"## Seed {seed}: all scores (accuracy: classifier vs labels; frechet: to the "
                  "real target test images)", ""]  # fmt: skip
        if model == "cyclegan":
            for name, rows in r["rows"].items():
                lines += [f"### {name}", "", table(rows), ""]
        else:
            lines += [table(r["rows"]), ""]
        lines += ["Acceptance: `" + json.dumps(r["acceptance"]) + "`", ""]
    lines += ["## Machine", "", "```", json.dumps(machine(args.threads), indent=2), "```", ""]
    return "\n".join(lines)


WHY = {
    "cyclegan": (
        "32 x 32 (the digits are 8 x 8 originals; 32 is the evaluation classifier's input), "
        "ngf = ndf = 16 (paper 64), 3 residual blocks (paper: 6 at 128 px; the 8 x 8 "
        "bottleneck of a 32 px image needs fewer), batch 4 (paper 1: four images per step "
        "cost little more than one on this CPU), 70 x 70 PatchGAN (it sees the whole 32 px "
        "image; 2 x 2 outputs), lambda 10, identity 0.5, pool 50, LR constant then linear "
        "decay over the second half. One BLAS thread: the shared 2-core machine runs other "
        "jobs, and OpenBLAS's two threads then slow small GEMMs several-fold."
    ),
    "pix2pix": (
        "32 x 32, U-Net depth 5 (32 -> 1 x 1, the paper's 8 at 256 px), ngf = ndf = 32 "
        "(paper 64), batch 16 (paper 1), 70 x 70 PatchGAN on (input, output) pairs, lambda "
        "100, dropout 0.5 in the first three decoder blocks; the baseline is the same G with "
        "--lambda-gan 0 (L1 only, no D). One BLAS thread (see the CycleGAN file)."
    ),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", choices=("cyclegan", "pix2pix"))
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--degradation", default="mask", help="pix2pix: mask, blur or edges")
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "quality"))
    p.add_argument("--write", action="store_true", help="write benchmarks/results/quality_*")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1, see WHY)")
    args = p.parse_args()
    threadpool_limits(args.threads)
    args.steps = args.steps or STEPS[args.model]
    os.makedirs(args.runs, exist_ok=True)
    measure = cyclegan if args.model == "cyclegan" else pix2pix
    results = {seed: measure(args, seed) for seed in args.seeds}
    text = report(args.model, results, args)
    print(text)
    if args.write:
        stem = os.path.join(RESULTS, f"quality_{args.model}_{datetime.date.today().isoformat()}")
        with open(stem + ".md", "w") as f:
            f.write(text)
        with open(stem + ".json", "w") as f:
            json.dump({"seeds": results, "machine": machine(args.threads)}, f, indent=2)
        print(f"wrote {stem}.md")


if __name__ == "__main__":
    main()
