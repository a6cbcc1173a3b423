"""tinygan.gans: the GAN training loops and the infrastructure they share.

- :class:`Loop` -- the interface a GAN implements (networks, optimizers, ``train_step``...)
- :class:`Trainer` -- runs a loop: JSONL log, sample grids, checkpoints, resume, NaN stop
- :func:`available` / :func:`get` -- the loops by CLI name (``gan``, ``dcgan``, ...)
- :func:`build_dataset` -- the ``--data`` specs (digits, ring, grid, moons, a folder)
"""

from tinygan.gans.datasets import build_dataset, reference_dataset
from tinygan.gans.loop import DataInfo, Loop
from tinygan.gans.plots import plot_losses, read_log, save_samples
from tinygan.gans.registry import available, get
from tinygan.gans.trainer import NonFiniteError, Trainer, TrainResult, latest_checkpoint, load_run

__all__ = [
    "DataInfo",
    "Loop",
    "NonFiniteError",
    "TrainResult",
    "Trainer",
    "available",
    "build_dataset",
    "get",
    "latest_checkpoint",
    "load_run",
    "plot_losses",
    "read_log",
    "reference_dataset",
    "save_samples",
]
