"""Pictures of a run: sample grids (images) or scatter plots (2-D points), and loss curves.

matplotlib is used with its Agg backend (no display needed) and imported only when drawing.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from tinygan.backend import to_device
from tinygan.imageio import atomic_write, save_image_grid

__all__ = ["plot_losses", "read_log", "save_samples"]


def read_log(path: str) -> list[dict[str, Any]]:
    """The records of a log.jsonl file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def save_samples(samples: Any, path: str, reference: Any = None, nrow: int | None = None) -> str:
    """Images (N, C, H, W) in [-1, 1] -> a PNG grid; points (N, 2) -> a scatter plot PNG
    (over ``reference`` points in grey when given)."""
    x = np.asarray(to_device(samples, "cpu"))
    if x.ndim == 4:
        return save_image_grid(x, path, nrow=nrow or max(1, math.isqrt(len(x) - 1) + 1))
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"save_samples: {path}: expected images or 2-D points, got {x.shape}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if reference is not None:
        ref = np.asarray(reference)
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="0.75", label="data")
    ax.scatter(x[:, 0], x[:, 1], s=2, c="tab:blue", label="G(z)")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=4)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return path


def plot_losses(log_path: str, png_path: str) -> str:
    """Draw the curves of a log.jsonl: losses, D outputs, gradient norms (one panel each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    keys = [k for k in records[0] if k not in ("step", "epoch", "time_s")] if records else []
    panels = {
        "losses": [k for k in keys if k.startswith("loss")],
        "gradient norms": [k for k in keys if k.startswith("grad_norm")],
        "learning rates": [k for k in keys if k.startswith("lr_")],
    }
    used = {k for v in panels.values() for k in v}
    panels["other"] = [k for k in keys if k not in used]
    panels = {k: v for k, v in panels.items() if v}
    fig, axes = plt.subplots(
        len(panels) or 1, 1, figsize=(8, 2.4 * max(1, len(panels))), sharex=True, squeeze=False
    )
    steps = np.array([r["step"] for r in records])
    for ax, (title, names) in zip(axes[:, 0], panels.items()):
        for name in names:
            y = np.array(
                [r.get(name) if r.get(name) is not None else np.nan for r in records], dtype=float
            )
            ax.plot(steps, y, lw=0.8, label=name)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        if title == "gradient norms":
            ax.set_yscale("log")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    atomic_write(png_path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return png_path
