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
from tinygan.metrics import features_and_labels, frechet_distance_features, load_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")

# Sizes for a 2-core CPU (see the results file for why).
SETTINGS = {
    "cyclegan": ["--image-size", "32", "--ngf", "16", "--ndf", "16", "--n-blocks", "3",
                 "--batch-size", "4"],
    "pix2pix": ["--image-size", "32", "--ngf", "32", "--ndf", "32", "--batch-size", "16"],
}  # fmt: skip
STEPS = {"cyclegan": 2000, "pix2pix": 1000}


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


def psnr_l1(out: np.ndarray, target: np.ndarray) -> dict:
    """Mean |out - target| in [-1, 1] units, and mean per-image PSNR on [0, 1] pixels."""
    diff = (out.astype(np.float64) - target) / 2
    mse = np.maximum((diff**2).reshape(len(out), -1).mean(1), 1e-12)
    return {"l1": float(np.abs(2 * diff).mean()), "psnr_db": float((10 * np.log10(1 / mse)).mean())}


# ---------------------------------------------------------------------------- cyclegan
def cyclegan(args: argparse.Namespace) -> dict[str, Any]:
    run = os.path.join(args.runs, f"cyclegan_s{args.seed}_{args.steps}")
    info = train("cyclegan", run, args.steps, args.seed, [])
    loop, _ = restore_loop(run)
    before = untrained(run)
    clf = load_classifier()
    test, train_split = UnpairedDigits("test", 32, 3, args.seed), UnpairedDigits("train", 32, 3)
    a, b = test.images_A, test.images_B
    fa, _ = features_and_labels(a, clf)
    fb, _ = features_and_labels(b, clf)
    rows = {}
    for name, direction, src, src_y, real_f, ref_real, ref_y, other in (
        ("G: A->B", "AtoB", a, test.labels_A, fb, b, test.labels_B, train_split.images_B),
        ("F: B->A", "BtoA", b, test.labels_B, fa, a, test.labels_A, train_split.images_A),
    ):
        rows[name] = {
            "real target (test)": scores(ref_real, ref_y, real_f, clf) | {"frechet": 0.0},
            "real target (train) vs test": scores(other, None, real_f, clf),
            "input itself (no translation)": scores(src, src_y, real_f, clf),
            "untrained": scores(before.translate_images(src, direction), src_y, real_f, clf),
            "trained": scores(loop.translate_images(src, direction), src_y, real_f, clf),
        }
        r = rows[name]
        r["content_ratio"] = r["trained"]["accuracy"] / r["real target (test)"]["accuracy"]
    g = rows["G: A->B"]
    accept = {
        "content_ratio_G": g["content_ratio"],
        "content_ratio_G>=0.8": bool(g["content_ratio"] >= 0.8),
        "frechet_lower_than_untrained": bool(g["trained"]["frechet"] < g["untrained"]["frechet"]),
    }
    return {"train": [info], "rows": rows, "acceptance": accept, "n_test": [len(a), len(b)]}


# ---------------------------------------------------------------------------- pix2pix
def pix2pix(args: argparse.Namespace) -> dict[str, Any]:
    runs = {
        "pix2pix (cGAN + 100 L1)": ([], f"pix2pix_s{args.seed}_{args.steps}"),
        "L1-only baseline": (["--lambda-gan", "0"], f"pix2pix_l1_s{args.seed}_{args.steps}"),
    }
    clf = load_classifier()
    test = PairedDigits("test", 32, args.degradation)
    x, y, labels = test.images_A, test.images_B, test.labels
    fy, _ = features_and_labels(y, clf)
    ref_train = PairedDigits("train", 32, args.degradation).images_B
    rows: dict[str, Any] = {
        "real targets (test)": scores(y, labels, fy, clf) | psnr_l1(y, y),
        "real targets (train) vs test": scores(ref_train, None, fy, clf),
        "input (degraded)": scores(x, labels, fy, clf) | psnr_l1(x, y),
    }
    infos = []
    for name, (extra, folder) in runs.items():
        run = os.path.join(args.runs, folder)
        data = ["--data", f"default:{args.degradation}"]
        infos.append(train("pix2pix", run, args.steps, args.seed, data + extra))
        loop, _ = restore_loop(run)
        out = loop.translate_images(x)
        rows[name] = scores(out, labels, fy, clf) | psnr_l1(out, y)
    p, base = rows["pix2pix (cGAN + 100 L1)"], rows["L1-only baseline"]
    accept = {"frechet_pix2pix<l1_only": bool(p["frechet"] < base["frechet"])}
    return {"train": infos, "rows": rows, "acceptance": accept, "n_test": len(x)}


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


def report(model: str, result: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"# {model} translation quality, {datetime.date.today().isoformat()}", ""]
    lines += ["Reproduce: `python scripts/translation_quality.py " + " ".join(sys.argv[1:]) + "`"]
    lines += ["", "## Training runs (wall time on this machine)", ""]
    for t in result["train"]:
        lines.append(f"- `{t['command']}`: {t['wall_s']:.0f} s")
    lines += ["", "## Scores (held-out test split)", ""]
    if model == "cyclegan":
        for name, rows in result["rows"].items():
            lines += [f"### {name}", "", table(rows), "",
                      f"content ratio (trained accuracy / real-target accuracy): "
                      f"{rows['content_ratio']:.3f}", ""]  # fmt: skip
    else:
        lines += [table(result["rows"]), ""]
    lines += ["## Acceptance", "", "```", json.dumps(result["acceptance"], indent=2), "```", ""]
    lines += ["## Machine", "", "```", json.dumps(machine(args.threads), indent=2), "```", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", choices=("cyclegan", "pix2pix"))
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--degradation", default="mask", help="pix2pix: mask, blur or edges")
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "quality"))
    p.add_argument("--write", action="store_true", help="write benchmarks/results/quality_*")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1, see below)")
    args = p.parse_args()
    threadpool_limits(args.threads)
    args.steps = args.steps or STEPS[args.model]
    os.makedirs(args.runs, exist_ok=True)
    result = cyclegan(args) if args.model == "cyclegan" else pix2pix(args)
    text = report(args.model, result, args)
    print(text)
    if args.write:
        stem = os.path.join(RESULTS, f"quality_{args.model}_{datetime.date.today().isoformat()}")
        with open(stem + ".md", "w") as f:
            f.write(text)
        with open(stem + ".json", "w") as f:
            json.dump(result | {"machine": machine(args.threads)}, f, indent=2)
        print(f"wrote {stem}.md")


if __name__ == "__main__":
    main()
