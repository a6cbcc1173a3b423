"""The Trainer: runs any :class:`~tinygan.gans.loop.Loop` and writes a run directory.

::

    OUT/config.json                   the run's settings
    OUT/log.jsonl                     one JSON object per step: losses, D(x), D(G(z)),
                                      grad_norm_<net>, lr_<optimizer>, epoch, time_s
    OUT/samples/step_0000500.png      samples of a FIXED latent batch every ``sample_every``
    OUT/checkpoints/step_0000500.npz  everything needed to resume, every ``checkpoint_every``
                                      steps and at the end (atomic; the last ``keep`` kept)
    OUT/losses.png                    the curves of log.jsonl, drawn at the end

Resuming (``fit(resume=True)``) loads the newest readable checkpoint -- the loop's state,
the data loader's position and shuffling state, the global random generator, the fixed
latent batch and the step -- and cuts log.jsonl back to that step, so the resumed run
continues with exactly the losses of an uninterrupted one (same seed, CPU).

A non-finite value in a step's results (or in the weights about to be saved) stops the run
with :class:`NonFiniteError`; no checkpoint is written from that state, so the last one on
disk stays good. Ctrl-C finishes the current step, saves a checkpoint and returns.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

import tinygan
from tinygan.backend import to_device
from tinygan.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinygan.gans.loop import Loop
from tinygan.gans.plots import plot_losses, read_log, save_samples
from tinygan.imageio import atomic_write
from tinygan.random import Generator

__all__ = [
    "NonFiniteError",
    "TrainResult",
    "Trainer",
    "checkpoint_files",
    "latest_checkpoint",
    "plot_losses",
    "read_log",
    "save_samples",
]

RUN_FORMAT = "tinygan-run"
_CKPT = re.compile(r"^step_(\d+)\.npz$")


class NonFiniteError(RuntimeError):
    """A loss or weight became NaN or infinite; the run stopped without saving that state."""


@dataclass
class TrainResult:
    step: int
    steps: int
    interrupted: bool
    checkpoint: str | None
    log: str
    elapsed_s: float
    last: dict[str, float]


# ---------------------------------------------------------------------------- files
def checkpoint_files(run_dir: str) -> list[tuple[int, str]]:
    """``(step, path)`` of every checkpoint in ``run_dir/checkpoints``, newest first."""
    folder = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    found = [
        (int(m.group(1)), os.path.join(folder, f))
        for f in os.listdir(folder)
        if (m := _CKPT.match(f))
    ]
    return sorted(found, reverse=True)


def latest_checkpoint(path: str) -> str:
    """``path`` itself if it is a file, else the newest checkpoint of the run directory."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file or run directory")
    files = checkpoint_files(path)
    if not files:
        raise FileNotFoundError(f"{path}: run directory holds no checkpoints/step_*.npz")
    return files[0][1]


def load_run(path: str) -> dict[str, Any]:
    """Load a run checkpoint (file or run directory) and check it is one."""
    path = latest_checkpoint(path)
    state = load_checkpoint(path)
    if state.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{path}: a tinygan checkpoint, but not of a training run")
    state["path"] = path
    return state


def _write_text(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _finite_record(record: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The record with non-finite floats replaced by None (valid JSON), and their keys."""
    bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
    return {k: (None if k in bad else v) for k, v in record.items()}, bad


# ---------------------------------------------------------------------------- trainer
class Trainer:
    """Train ``loop`` on batches of ``loader`` for ``steps`` steps, writing into ``out_dir``.

    Args:
        config: the run's settings (JSON-able; saved in config.json and every checkpoint,
            so ``tinygan sample/eval`` can rebuild the loop).
        sample_every / checkpoint_every: in steps (0: only at the end).
        num_samples: images in the fixed-latent grid.
        keep: checkpoints kept on disk (older ones are removed after a newer one is written).
    """

    def __init__(
        self,
        loop: Loop,
        loader: Any,
        out_dir: str,
        steps: int,
        config: Mapping[str, Any] | None = None,
        sample_every: int = 500,
        checkpoint_every: int = 500,
        num_samples: int = 64,
        keep: int = 2,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        if steps < 1:
            raise ValueError(f"Trainer: steps must be >= 1, got {steps}")
        self.loop, self.loader, self.out_dir, self.steps = loop, loader, out_dir, int(steps)
        self.config = dict(config or {})
        self.sample_every, self.checkpoint_every = int(sample_every), int(checkpoint_every)
        self.keep, self.progress = max(1, int(keep)), progress
        self.step = 0
        self.elapsed = 0.0
        self.fixed = loop.latent(num_samples, Generator(seed + 3))
        self.log_path = os.path.join(out_dir, "log.jsonl")
        self.last_checkpoint: str | None = None
        self._stop = False
        dataset = loader.dataset
        loop.reference = dataset
        self.reference = dataset.points[:2000] if hasattr(dataset, "points") else None

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The whole run: config, data info, step, loop, loader position, RNG, fixed latents."""
        return {
            "format": RUN_FORMAT,
            "model": self.loop.name,
            "config": self.config,
            "data": self.loop.data.to_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed,
            "loop": self.loop.state_dict(),
            "loader": self.loader.state_dict(),
            "rng": tinygan.default_generator.state_dict(),
            "fixed": {k: to_device(v, "cpu") for k, v in self.fixed.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (the loop, loader and generators must match the run's)."""
        if state.get("model") != self.loop.name:
            raise ValueError(
                f"Trainer: the checkpoint is of model {state.get('model')!r}, "
                f"not {self.loop.name!r}"
            )
        self.loop.load_state_dict(state["loop"])
        self.loader.load_state_dict(state["loader"])
        tinygan.default_generator.load_state_dict(state["rng"])
        self.fixed = {k: to_device(v, self.loop.device) for k, v in state["fixed"].items()}
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed_s", 0.0))

    def save_checkpoint(self) -> str:
        """Write checkpoints/step_N.npz (atomic) unless a weight is non-finite; prune old ones."""
        if not self.loop.parameters_finite():
            raise NonFiniteError(
                f"{self.loop.name}: step {self.step}: a weight is NaN or infinite; not saving "
                f"it. {self._last_good()}"
            )
        folder = os.path.join(self.out_dir, "checkpoints")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"step_{self.step:07d}.npz")
        save_checkpoint(path, self.state_dict())
        self.last_checkpoint = path
        for _, old in checkpoint_files(self.out_dir)[self.keep :]:
            os.remove(old)
        return path

    def restore(self) -> str:
        """Load the newest readable checkpoint of ``out_dir``; cut the log back to its step."""
        files = checkpoint_files(self.out_dir)
        if not files:
            raise FileNotFoundError(
                f"{self.out_dir}: nothing to resume (no checkpoints/step_*.npz in it)"
            )
        errors = []
        for _, path in files:
            try:
                state = load_run(path)
            except (CheckpointError, OSError) as e:
                errors.append(str(e))
                continue
            self.load_state_dict(state)
            self.last_checkpoint = path
            self._truncate_log()
            return path
        raise CheckpointError(f"{self.out_dir}: no readable checkpoint: " + "; ".join(errors))

    def _truncate_log(self) -> None:
        if not os.path.exists(self.log_path):
            return
        with open(self.log_path, encoding="utf-8") as f:
            lines = [ln for ln in f if ln.strip() and json.loads(ln)["step"] <= self.step]
        _write_text(self.log_path, "".join(lines))

    def _last_good(self) -> str:
        if self.last_checkpoint:
            return f"The last good checkpoint is {self.last_checkpoint}."
        return "No checkpoint had been written yet."

    # ------------------------------------------------------------ the loop
    def _batches(self) -> Iterator[Any]:
        while True:
            yield from self.loader

    def _due(self, every: int) -> bool:
        return self.step == self.steps or (every > 0 and self.step % every == 0)

    def write_samples(self) -> str:
        """The fixed-latent grid of this step: ``samples/step_N.png``."""
        path = os.path.join(self.out_dir, "samples", f"step_{self.step:07d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return self.loop.sample_grid(path, self.fixed, reference=self.reference)

    def _record(self, metrics: Mapping[str, float], start: float) -> dict[str, Any]:
        per_epoch = max(1, len(self.loader))
        record: dict[str, Any] = {"step": self.step}
        record["epoch"] = round(self.step * self.loop.batches_per_step() / per_epoch, 4)
        record.update({k: float(v) for k, v in metrics.items()})
        record.update({f"grad_norm_{k}": v for k, v in self.loop.grad_norms.items()})
        record.update({f"lr_{k}": v for k, v in self.loop.learning_rates().items()})
        record["time_s"] = round(self.elapsed + time.perf_counter() - start, 4)
        return record

    def fit(self, resume: bool = False) -> TrainResult:
        """Train to ``steps`` (from the latest checkpoint when ``resume``); see the module doc."""
        os.makedirs(self.out_dir, exist_ok=True)
        if resume:
            self.restore()
        elif checkpoint_files(self.out_dir):
            raise FileExistsError(
                f"{self.out_dir}: already holds a run's checkpoints; resume it or choose "
                "another output directory"
            )
        else:
            _write_text(self.log_path, "")
        _write_text(
            os.path.join(self.out_dir, "config.json"),
            json.dumps(self.config, indent=2, sort_keys=True) + "\n",
        )
        loop, last = self.loop, {}
        loop.batches = self._batches()
        start = time.perf_counter()
        previous = self._install_sigint()
        bar = tqdm(
            total=self.steps,
            initial=self.step,
            disable=not self.progress,
            unit="step",
            dynamic_ncols=True,
            desc=loop.name,
        )
        try:
            with open(self.log_path, "a", encoding="utf-8") as log:
                while self.step < self.steps and not self._stop:
                    loop.step = self.step
                    metrics = loop.train_step(next(loop.batches))
                    loop.end_step()
                    self.step = loop.step = self.step + 1
                    record, bad = _finite_record(self._record(metrics, start))
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    if bad:
                        raise NonFiniteError(
                            f"{loop.name}: step {self.step}: {', '.join(bad)} became NaN or "
                            f"infinite; training stopped. {self._last_good()} Try a lower "
                            "--lr, or resume from that checkpoint with --resume."
                        )
                    last = {k: v for k, v in record.items() if k.startswith("loss")}
                    bar.set_postfix({k: f"{v:.3f}" for k, v in last.items()}, refresh=False)
                    bar.update(1)
                    if self._due(self.sample_every):
                        self.write_samples()
                    if self._due(self.checkpoint_every) or self._stop:
                        self.elapsed += time.perf_counter() - start
                        start = time.perf_counter()
                        self.save_checkpoint()
        finally:
            bar.close()
            self._restore_sigint(previous)
            self.elapsed += time.perf_counter() - start
            if os.path.getsize(self.log_path) > 0:
                plot_losses(self.log_path, os.path.join(self.out_dir, "losses.png"))
        return TrainResult(
            self.step,
            self.steps,
            self._stop and self.step < self.steps,
            self.last_checkpoint,
            self.log_path,
            self.elapsed,
            last,
        )

    # ------------------------------------------------------------ Ctrl-C
    def _install_sigint(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum: int, frame: Any) -> None:
            if self._stop:
                raise KeyboardInterrupt
            self._stop = True
            tqdm.write(
                "interrupted: finishing this step and saving a checkpoint "
                "(press Ctrl-C again to abort without saving)"
            )

        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, handler)
        return previous

    def _restore_sigint(self, previous: Any) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
