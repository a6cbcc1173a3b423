"""The interface every GAN training loop implements, and the helpers they share.

A loop is a class that *declares* its parts in four named registries and does one training
step in ``train_step``::

    self.networks   = {"G": ..., "D": ...}            # nn.Modules (CycleGAN: G, F, D_X, D_Y)
    self.optimizers = {"G": Adam(...), "D": Adam(...)}
    self.schedulers = {"G": LinearDecayLR(...)}        # optional, stepped once per step
    self.averages   = {"G": EMA(G, 0.999)}             # optional EMA copies, used for sampling

plus, when it has any, extra state through ``extra_state()`` / ``load_extra_state()``
(BEGAN's k_t, CycleGAN's image pools, PGGAN's stage and fade-in alpha). ``train_step(batch)``
does its own updates in its own order -- k critic steps per G step (drawing more batches
with ``next_batch()``), gradient penalties with ``tinygan.grad(..., create_graph=True)``,
several optimizers -- and returns a dict of floats (losses, mean D(x), mean D(G(z))...).
The :class:`~tinygan.gans.trainer.Trainer` logs that dict, the gradient norm of each network
(recorded by :meth:`Loop.optimize`) and the learning rates, then calls ``end_step()``.

``state_dict()`` covers everything the loop owns (networks, optimizers, schedulers, EMAs,
extra state, its noise stream, the step). ``load_state_dict`` restores the extra state
*first*, so a loop whose architecture changes during training can rebuild the networks and
optimizers of the saved stage before their weights are loaded.

Sampling goes through two methods: ``latent(n, generator)`` draws G's inputs as a dict of
arrays (``{"z": ...}``; conditional loops add ``"y"``; image-to-image loops take input images
from ``self.reference``, the training dataset), and ``generate(inputs)`` maps them to
samples. The Trainer keeps a *fixed* ``latent`` batch and saves it with ``sample_grid`` every
N steps; ``sample(n, generator)`` returns fresh samples as a NumPy array.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from tinygan.autograd import Tensor, no_grad
from tinygan.backend import get_array_module
from tinygan.gans.plots import save_samples
from tinygan.random import Generator

__all__ = ["DataInfo", "Loop"]


@dataclass(frozen=True)
class DataInfo:
    """What a loop needs to know about its data to build its networks.

    kind: ``"image"`` (items ``(C, H, W)`` in [-1, 1]) or ``"points"`` (items ``(D,)``).
    shape: the shape of one item; num_classes: labels available (0: unlabelled).
    """

    kind: str
    shape: tuple[int, ...]
    num_classes: int = 0
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataInfo:
        return cls(
            d["kind"],
            tuple(int(s) for s in d["shape"]),
            int(d.get("num_classes", 0)),
            str(d.get("name", "")),
            dict(d.get("extra", {})),
        )


class Loop:
    """Base class of the GAN training loops (see the module docstring for the contract).

    Class attributes a subclass sets: ``name`` (the CLI name), ``summary`` (one line for
    ``tinygan models``), ``data_kinds`` (which :attr:`DataInfo.kind` it trains on) and
    ``defaults`` (its own defaults for the common options, e.g. ``{"lr": 2e-4}``).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)
    defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this loop's own command-line options (``--ngf``, ``--g-loss``...)."""

    @classmethod
    def describe_data(cls) -> str:
        """The help text of ``--data`` for this loop."""
        from tinygan.gans.datasets import describe_specs

        return describe_specs()

    @classmethod
    def build_dataset(cls, config: Mapping[str, Any], split: str = "train") -> tuple[Any, DataInfo]:
        """The data named by ``config["data"]`` and its DataInfo: ``split="train"`` for
        training, ``"test"`` for held-out real data to evaluate against. Image-to-image loops
        override this (paired or unpaired data) and :meth:`describe_data` (the --data help)."""
        from tinygan.gans.datasets import build_dataset, reference_dataset

        spec, size = str(config.get("data")), int(config.get("image_size") or 32)
        channels, seed = config.get("channels"), int(config.get("seed") or 0)
        dataset, info = build_dataset(spec, size, channels, seed)
        if split != "train":
            dataset = reference_dataset(spec, size, channels)
        return dataset, info

    def evaluate(self, n: int, generator: Generator) -> dict[str, Any] | None:
        """Loop-specific metrics for ``tinygan eval`` (None: the standard ones -- Fréchet
        distance and class histogram for images, mode coverage for 2-D points)."""
        return None

    def __init__(self, config: Mapping[str, Any], data: DataInfo, device: str = "cpu") -> None:
        if data.kind not in self.data_kinds:
            raise ValueError(
                f"{self.name}: cannot train on {data.kind} data ({data.name or '?'}); "
                f"it needs {' or '.join(self.data_kinds)} data"
            )
        self.config = dict(config)
        self.data = data
        self.device = device
        self.networks: dict[str, Any] = {}
        self.optimizers: dict[str, Any] = {}
        self.schedulers: dict[str, Any] = {}
        self.averages: dict[str, Any] = {}
        self.rng = Generator(int(self.config.get("seed", 0)) + 1)  # latents during training
        self.step = 0  # completed training steps; the Trainer keeps it current
        self.grad_norms: dict[str, float] = {}
        self.batches: Iterator[Any] | None = None  # endless batch iterator, set by the Trainer
        self.reference: Any = None  # the dataset, set by the Trainer (image-to-image inputs)

    # ------------------------------------------------------------ what subclasses define
    def train_step(self, batch: Any) -> dict[str, float]:
        """One training step on ``batch``; returns floats to log (losses, D outputs...)."""
        raise NotImplementedError(f"{type(self).__name__} does not define train_step()")

    def latent(self, n: int, generator: Generator | None = None) -> dict[str, Any]:
        """G's inputs for ``n`` samples, as arrays on the loop's device."""
        raise NotImplementedError(f"{type(self).__name__} does not define latent()")

    def generate(self, inputs: Mapping[str, Any]) -> Tensor:
        """Samples for ``inputs`` (from :meth:`latent`): images (N, C, H, W) or points (N, D)."""
        raise NotImplementedError(f"{type(self).__name__} does not define generate()")

    def extra_state(self) -> dict[str, Any]:
        """State beyond networks/optimizers/schedulers/EMAs (numbers, strings, arrays)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`extra_state`; may rebuild networks (called before they load)."""

    def batches_per_step(self) -> int:
        """Data batches one ``train_step`` consumes (k for k discriminator steps)."""
        return 1

    def end_step(self) -> None:
        """Called by the Trainer after each ``train_step``: steps schedulers, updates EMAs."""
        for scheduler in self.schedulers.values():
            scheduler.step()
        for average in self.averages.values():
            average.update()

    # ------------------------------------------------------------ helpers for train_step
    def next_batch(self) -> Any:
        """Another batch from the training data (for the extra critic steps of a step)."""
        if self.batches is None:
            raise RuntimeError(f"{self.name}: next_batch() needs a Trainer (no data attached)")
        return next(self.batches)

    @staticmethod
    def real(batch: Any) -> Tensor:
        """The data part of a batch: the batch itself, or its first field (images, labels)."""
        return batch[0] if isinstance(batch, tuple | list) else batch

    def optimize(self, name: str, loss: Tensor, retain_graph: bool = False) -> float:
        """zero_grad, backward, record gradient norms, step optimizer ``name``; returns loss."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad()
        loss.backward(retain_graph=retain_graph)
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        for net_name, net in self.networks.items():
            params = [p for p in net.parameters() if id(p) in owned and p.grad is not None]
            if params:
                self.grad_norms[net_name] = grad_norm(params)
        optimizer.step()
        return float(loss.item())

    @contextlib.contextmanager
    def frozen(self, *names: str) -> Iterator[None]:
        """Turn off gradients of networks ``names`` (e.g. D during G's step), then restore."""
        params = [p for n in names for p in self.networks[n].parameters()]
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad = False
        try:
            yield
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad = flag

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Every network (and EMA copy) in eval mode under no_grad; modes restored after."""
        modules = list(self.networks.values()) + [a.module for a in self.averages.values()]
        modes = [[(m, m.training) for m in net.modules()] for net in modules]
        for net in modules:
            net.eval()
        try:
            with no_grad():
                yield
        finally:
            for saved in modes:
                for m, mode in saved:
                    m.training = mode

    def sampler(self, name: str = "G") -> Any:
        """The network to sample with: its EMA copy when there is one, else itself."""
        return self.averages[name].module if name in self.averages else self.networks[name]

    # ------------------------------------------------------------ sampling
    def sample(self, n: int, generator: Generator | None = None, batch_size: int = 250) -> Any:
        """``n`` fresh samples as a host NumPy array, in eval mode, ``batch_size`` at a time."""
        generator = generator or Generator(0)
        chunks = []
        with self.evaluating():
            for start in range(0, n, batch_size):
                inputs = self.latent(min(batch_size, n - start), generator)
                chunks.append(self.generate(inputs).numpy())
        return np.concatenate(chunks)

    def generate_batched(self, inputs: Mapping[str, Any], batch_size: int = 250) -> np.ndarray:
        """``generate`` in eval mode over given inputs, ``batch_size`` at a time, on the host."""
        n = len(next(iter(inputs.values())))
        chunks = []
        with self.evaluating():
            for s in range(0, n, batch_size):
                chunks.append(self.generate({k: v[s : s + batch_size] for k, v in inputs.items()}))
        return np.concatenate([c.numpy() for c in chunks])

    def sample_grid(
        self,
        path: str,
        inputs: Mapping[str, Any] | None = None,
        n: int = 64,
        generator: Generator | None = None,
        reference: Any = None,
        nrow: int | None = None,
    ) -> str:
        """Save samples of ``inputs`` (default: ``n`` fresh latents) to a PNG: an image grid,
        or for 2-D points a scatter plot over ``reference`` points. Returns the path."""
        if inputs is None:
            inputs = self.latent(n, generator or Generator(0))
        return save_samples(self.generate_batched(inputs), path, reference, nrow)

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything the loop owns, as nested dicts of numbers and arrays."""
        return {
            "extra": self.extra_state(),
            "networks": {k: v.state_dict() for k, v in self.networks.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "averages": {k: v.state_dict() for k, v in self.averages.items()},
            "rng": self.rng.state_dict(),
            "step": self.step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`: the extra state first (it may rebuild networks)."""
        self.load_extra_state(state.get("extra", {}))
        for part in ("networks", "optimizers", "schedulers", "averages"):
            mine, saved = getattr(self, part), state.get(part, {})
            if set(mine) != set(saved):
                raise ValueError(
                    f"{self.name}.load_state_dict: the state has {part} {sorted(saved)}, "
                    f"this loop has {sorted(mine)}"
                )
            for key, obj in mine.items():
                obj.load_state_dict(saved[key])
        self.rng.load_state_dict(state["rng"])
        self.step = int(state["step"])

    def parameters_finite(self) -> bool:
        """True when every parameter and buffer of every network (and EMA) is finite."""
        modules = list(self.networks.values()) + [a.module for a in self.averages.values()]
        for net in modules:
            for t in list(net.parameters()) + list(net.buffers()):
                xp = get_array_module(t.data)
                if t.dtype.kind == "f" and not bool(xp.isfinite(t.data).all()):
                    return False
        return True

    def learning_rates(self) -> dict[str, float]:
        """The current learning rate of each optimizer (its first parameter group)."""
        return {k: float(o.param_groups[0]["lr"]) for k, o in self.optimizers.items()}


def grad_norm(params: list[Tensor]) -> float:
    """The global L2 norm of the gradients of ``params``: sqrt(sum of squares)."""
    return math.sqrt(sum(float((p.grad.data * p.grad.data).sum(dtype="float64")) for p in params))
