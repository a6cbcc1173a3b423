"""The ``tinygan`` command (also ``python -m tinygan``).

::

    tinygan models                                  the available GAN loops, one per line
    tinygan train MODEL [options]                   train (``tinygan train MODEL --help``)
    tinygan sample --checkpoint C --n 64 --out grid.png
    tinygan interpolate --checkpoint C              linear and spherical latent walks
    tinygan eval --checkpoint C                     sample-quality metrics -> JSON
    tinygan translate --checkpoint C --input DIR --out DIR   pix2pix/cyclegan on image files

``C`` is a checkpoint file or a run directory (its newest checkpoint is used).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import tinygan
from tinygan.backend import to_device
from tinygan.checkpoint import CheckpointError
from tinygan.gans import registry
from tinygan.gans.loop import DataInfo, Loop
from tinygan.gans.trainer import NonFiniteError, Trainer, load_run
from tinygan.imageio import atomic_write, save_image_grid
from tinygan.random import Generator

__all__ = ["main", "build_parser", "interpolation", "restore_loop", "slerp"]

# Settings that describe how a run is invoked rather than what it trains.
_NOT_CONFIG = {"command", "resume", "progress", "handler", "threads"}


# ---------------------------------------------------------------------------- helpers
def _check_device(device: str) -> None:
    if device == "cuda":
        from tinygan.backend import cupy

        cupy()  # raises one RuntimeError saying whether CuPy or a GPU is missing


def _limit_threads(n: int | None) -> Any:
    """A context limiting BLAS (threadpoolctl) and Numba to ``n`` threads; a no-op for None."""
    if n is None:
        return contextlib.nullcontext()
    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # installed with scikit-learn, a dependency; say so if it is missing
        raise RuntimeError("--threads needs the threadpoolctl package") from None
    from tinygan.functions import winograd_kernels

    winograd_kernels.set_num_threads(n)
    return threadpool_limits(n)


def restore_loop(path: str, device: str = "cpu") -> tuple[Loop, dict[str, Any]]:
    """Rebuild the loop of a run checkpoint (file or run directory) with its trained state."""
    state = load_run(path)
    cls = registry.get(state["model"])
    loop = cls(state["config"], DataInfo.from_dict(state["data"]), device)
    loop.load_state_dict(state["loop"])
    return loop, state


def _untrained_loop(state: dict[str, Any], device: str) -> Loop:
    """The run's loop at step 0: same config and seed, so the same initial weights."""
    tinygan.manual_seed(int(state["config"].get("seed", 0)))
    cls = registry.get(state["model"])
    return cls(state["config"], DataInfo.from_dict(state["data"]), device)


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of rows (White 2016, "Sampling Generative Networks"):
    sin((1-t) w)/sin w a + sin(t w)/sin w b, w the angle between a and b (lerp if w ~ 0)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))
    w = np.arccos(np.clip(cos, -1.0, 1.0))[:, None]
    s = np.sin(w)
    small = s < 1e-6
    ca = np.where(small, 1 - t, np.sin((1 - t) * w) / np.where(small, 1, s))
    cb = np.where(small, t, np.sin(t * w) / np.where(small, 1, s))
    return (ca * a64 + cb * b64).astype(a.dtype)


def interpolation(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], frames: int, methods: list[str]
) -> dict[str, np.ndarray]:
    """Rows of latent walks from ``a[i]`` to ``b[i]``: for each pair i and each method
    ("linear" or "slerp"), ``frames`` inputs. Non-float inputs (labels) keep a's values."""
    rows: dict[str, list[np.ndarray]] = {k: [] for k in a}
    n = len(next(iter(a.values())))
    for i, method in ((i, m) for i in range(n) for m in methods):
        for t in np.linspace(0.0, 1.0, frames):
            for k in a:
                x, y = a[k][i : i + 1], b[k][i : i + 1]
                if x.dtype.kind != "f":
                    rows[k].append(x)
                elif method == "linear":
                    rows[k].append(((1 - t) * x + t * y).astype(x.dtype))
                else:
                    rows[k].append(slerp(x, y, float(t)))
    return {k: np.concatenate(v) for k, v in rows.items()}


def _write_json(path: str, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _run_dir(checkpoint_path: str) -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(checkpoint_path)))


# ---------------------------------------------------------------------------- commands
def cmd_models(args: argparse.Namespace) -> int:
    for name, cls in registry.available().items():
        print(f"{name:<10} {cls.summary}")
    return 0


def _train_config(args: argparse.Namespace, cls: type[Loop]) -> tuple[dict[str, Any], str]:
    if args.resume:
        if not args.out:
            raise ValueError("--resume needs --out DIR, the run directory to continue")
        config = dict(load_run(args.out)["config"])
        if config.get("model") != args.model:
            raise ValueError(f"{args.out} is a {config.get('model')} run, not {args.model}")
        for key in ("steps", "epochs", "device"):
            if getattr(args, key) is not None:
                config[key] = getattr(args, key)
        if args.steps is not None:
            config["epochs"] = None
        return config, args.out
    config = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
    config["device"] = args.device or "cpu"
    if args.steps is None and args.epochs is None:
        config["steps"] = cls.defaults.get("steps", 1000)
    out = args.out or os.path.join("runs", f"{args.model}-{time.strftime('%Y%m%d-%H%M%S')}")
    config["out"] = out
    return config, out


def cmd_train(args: argparse.Namespace) -> int:
    cls = registry.get(args.model)
    config, out = _train_config(args, cls)
    device, seed = config["device"], int(config["seed"])
    _check_device(device)
    tinygan.manual_seed(seed)
    dataset, info = cls.build_dataset(config)
    from tinygan.data import DataLoader

    loader = DataLoader(
        dataset,
        batch_size=config["batch_size"],
        shuffle=True,
        drop_last=True,
        seed=seed + 2,
        device=device,
    )
    loop = cls(config, info, device)
    if config.get("epochs") is not None:  # steps known only now: build the loop with them
        config["steps"] = max(1, config["epochs"] * len(loader) // loop.batches_per_step())
        tinygan.manual_seed(seed)
        loop = cls(config, info, device)
    trainer = Trainer(
        loop,
        loader,
        out,
        config["steps"],
        config=config,
        sample_every=config["sample_every"],
        checkpoint_every=config["checkpoint_every"],
        num_samples=config["num_samples"],
        keep=config["keep"],
        seed=seed,
        progress=args.progress,
    )
    start = time.perf_counter()
    result = trainer.fit(resume=args.resume)
    wall = time.perf_counter() - start
    state = "interrupted at" if result.interrupted else "reached"
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.last.items())
    print(f"{cls.name}: {state} step {result.step}/{result.steps} in {wall:.1f}s ({losses})")
    print(f"  run directory: {out}  (log.jsonl, samples/, checkpoints/, losses.png)")
    print(f"  checkpoint:    {result.checkpoint}")
    if result.interrupted:
        print(f"  continue with: tinygan train {cls.name} --out {out} --resume")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    loop, state = restore_loop(args.checkpoint, args.device)
    reference = None
    if loop.data.kind == "points":
        reference = type(loop).build_dataset(state["config"], "test")[0].points[:2000]
    loop.sample_grid(
        args.out, n=args.n, generator=Generator(args.seed), reference=reference, nrow=args.nrow
    )
    print(f"{args.out}: {args.n} samples of {state['model']} at step {state['step']}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    loop, state = restore_loop(args.checkpoint, args.device)
    if loop.data.kind != "image":
        raise ValueError(f"interpolate: {state['model']} on {loop.data.name} does not make images")
    gen = Generator(args.seed)
    a = {k: to_device(v, "cpu") for k, v in loop.latent(args.pairs, gen).items()}
    b = {k: to_device(v, "cpu") for k, v in loop.latent(args.pairs, gen).items()}
    methods = ["linear", "slerp"] if args.method == "both" else [args.method]
    walk = interpolation(a, b, args.frames, methods)
    inputs = {k: to_device(v, loop.device) for k, v in walk.items()}
    images = loop.generate_batched(inputs)
    save_image_grid(images, args.out, nrow=args.frames)
    order = " then ".join(methods) if len(methods) > 1 else methods[0]
    print(f"{args.out}: {args.pairs} latent pairs x {args.frames} steps ({order} per pair)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    loop, state = restore_loop(args.checkpoint, args.device)
    cfg = state["config"]
    result: dict[str, Any] = {
        "model": state["model"],
        "checkpoint": state["path"],
        "step": state["step"],
        "data": cfg["data"],
        "n": args.n,
        "seed": args.seed,
    }
    own = loop.evaluate(args.n, Generator(args.seed))
    samples = loop.sample(args.n, Generator(args.seed)) if own is None else None
    if own is not None:
        result.update(own)
        numbers = ", ".join(f"{k} {v:.4g}" for k, v in own.items() if isinstance(v, float))
        print(f"{state['model']} step {state['step']}: {numbers}")
    elif loop.data.kind == "points":
        from tinygan.metrics import toy_metrics

        result.update(toy_metrics(samples, type(loop).build_dataset(cfg, "test")[0]))
        print(
            f"{state['model']} step {state['step']}: {result['modes_covered']}/"
            f"{result['num_modes']} modes covered, {result['high_quality']:.1%} high-quality "
            f"samples (within 3 std of a mode) of {args.n}"
        )
    else:
        from tinygan.metrics.classifier import image_metrics, load_classifier

        model = load_classifier()
        real = type(loop).build_dataset(cfg, "test")[0].images
        result.update(image_metrics(samples, real, model))
        result["classifier_test_accuracy"] = model.test_accuracy
        line = f"Frechet distance {result['frechet_distance']:.3f}"
        if args.baseline:
            untrained = _untrained_loop(state, args.device).sample(args.n, Generator(args.seed))
            base = image_metrics(untrained, real, model)
            result["untrained"] = base
            result["reduction"] = 1.0 - result["frechet_distance"] / base["frechet_distance"]
            line += (
                f" (untrained generator {base['frechet_distance']:.3f}; "
                f"{result['reduction']:.1%} lower)"
            )
        print(f"{state['model']} step {state['step']}: {line}")
        print(
            f"  classes among {args.n} samples: {result['classes_present']}/10, "
            f"histogram {result['class_histogram']}"
        )
    out = args.out or os.path.join(_run_dir(state["path"]), f"eval_step_{state['step']:07d}.json")
    _write_json(out, result)
    print(f"  written to {out}")
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from tinygan.gans.translation import translate

    loop, state = restore_loop(args.checkpoint, args.device)
    if not hasattr(loop, "translator"):
        raise ValueError(f"translate: {state['path']}: a {state['model']} run, not image-to-image")
    written = translate(loop, args.input, args.out, args.direction)
    print(f"{args.out}: {len(written)} images translated by {state['model']} step {state['step']}")
    return 0


# ---------------------------------------------------------------------------- parser
def _add_train_options(p: argparse.ArgumentParser, cls: type[Loop]) -> None:
    d = cls.defaults
    g = p.add_argument_group("training")
    g.add_argument(
        "--data",
        default=d.get("data", "digits"),
        metavar="SPEC",
        help=f"{cls.describe_data()} (default {d.get('data', 'digits')})",
    )
    g.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="where to train (default cpu; cuda needs CuPy and a GPU)",
    )
    steps = g.add_mutually_exclusive_group()
    steps.add_argument(
        "--steps", type=int, default=None, help=f"training steps (default {d.get('steps', 1000)})"
    )
    steps.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="train for this many passes over the data instead of --steps",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=d.get("batch_size", 64),
        help=f"examples per batch (default {d.get('batch_size', 64)})",
    )
    g.add_argument(
        "--lr",
        type=float,
        default=d.get("lr"),
        help="learning rate of every optimizer (default "
        + (f"{d['lr']})" if d.get("lr") else "set by the optimizer, see below)"),
    )
    g.add_argument(
        "--image-size",
        type=int,
        default=d.get("image_size", 32),
        help="image side in pixels for image data (default 32)",
    )
    g.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="1 (grey) or 3 (RGB); default: the data's own (digits 1, folders 3)",
    )
    g.add_argument(
        "--out", default=None, metavar="DIR", help="run directory (default runs/MODEL-DATE-TIME)"
    )
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its newest checkpoint (its saved "
        "settings are used; --steps/--epochs/--device may be changed)",
    )
    g.add_argument(
        "--sample-every",
        type=int,
        default=250,
        metavar="N",
        help="write a grid of the fixed latent batch every N steps (default 250)",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=500,
        metavar="N",
        help="write a checkpoint every N steps and at the end (default 500)",
    )
    g.add_argument("--num-samples", type=int, default=64, help="samples in each grid (default 64)")
    g.add_argument("--keep", type=int, default=2, help="checkpoints kept on disk (default 2)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _threads_option(g)
    cls.add_arguments(p.add_argument_group(f"{cls.name} options"))  # type: ignore[arg-type]


def _threads_option(group: Any) -> None:
    group.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads of NumPy's BLAS and of the Numba kernels (default: all cores); on a "
        "busy machine --threads 1 can be several times faster",
    )


def _checkpoint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="C",
        help="a checkpoint file, or a run directory (its newest checkpoint)",
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="device to run the generator on (default cpu)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws (default 0)")
    _threads_option(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinygan", description="Train, sample and evaluate the GANs of tinygan."
    )
    parser.add_argument("--version", action="version", version=f"tinygan {tinygan.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("models", help="list the available GAN loops")
    p.set_defaults(handler=cmd_models)

    train = sub.add_parser(
        "train",
        help="train a GAN (tinygan train MODEL --help)",
        description="Train a GAN. Each MODEL has its own options.",
    )
    models = train.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name, cls in registry.available().items():
        p = models.add_parser(name, help=cls.summary, description=cls.summary)
        _add_train_options(p, cls)
        p.set_defaults(handler=cmd_train)

    p = sub.add_parser("sample", help="write a grid of samples from a checkpoint")
    _checkpoint_options(p)
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--nrow", type=int, default=None, help="images per row (default ~sqrt(n))")
    p.add_argument("--out", default="samples.png", help="PNG path (default samples.png)")
    p.set_defaults(handler=cmd_sample)

    p = sub.add_parser("interpolate", help="latent walks (linear and spherical) as a grid")
    _checkpoint_options(p)
    p.add_argument("--pairs", type=int, default=8, help="latent pairs, one row each (default 8)")
    p.add_argument("--frames", type=int, default=10, help="steps from a to b (default 10)")
    p.add_argument(
        "--method",
        choices=("linear", "slerp", "both"),
        default="both",
        help="interpolation; both: a linear row then a slerp row per pair",
    )
    p.add_argument("--out", default="interpolation.png", help="PNG path")
    p.set_defaults(handler=cmd_interpolate)

    p = sub.add_parser("eval", help="sample-quality metrics of a checkpoint")
    _checkpoint_options(p)
    p.add_argument("--n", type=int, default=1000, help="generated samples (default 1000)")
    p.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the untrained generator's Frechet distance (images)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="JSON path (default RUN/eval_step_N.json beside the checkpoints)",
    )
    p.set_defaults(handler=cmd_eval)

    p = sub.add_parser("translate", help="translate images with a pix2pix or cyclegan checkpoint")
    _checkpoint_options(p)
    p.add_argument("--input", required=True, metavar="DIR_OR_IMAGE", help="an image or a folder")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), default=None,
                   help="cyclegan: G (AtoB, default) or F (BtoA); pix2pix: its own")  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR", help="folder for one PNG per input")
    p.set_defaults(handler=cmd_translate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _limit_threads(getattr(args, "threads", None)):
            return args.handler(args)
    except NonFiniteError as e:
        print(f"tinygan {args.command}: stopped: {e}", file=sys.stderr)
        return 1
    except (
        ValueError,
        FileNotFoundError,
        FileExistsError,
        CheckpointError,
        RuntimeError,
        OSError,
    ) as e:
        print(f"tinygan {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
