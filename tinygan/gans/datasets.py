"""``--data`` specs -> datasets: the embedded digits, toy 2-D mixtures, or an image folder.

========== =========================================================================
spec       dataset
========== =========================================================================
digits     UCI handwritten digits, train split (1442 images, 10 classes), embedded
ring       8 Gaussians on a circle of radius 2, std 0.02 (Metz et al. 2017)
grid       25 Gaussians on a 5x5 grid, std 0.05 (VEEGAN / PacGAN)
moons      two interleaved half circles, noise std 0.05
PATH       a folder of image files (recursive), resized and centre-cropped
========== =========================================================================
"""

from __future__ import annotations

import os
from typing import Any

from tinygan.gans.loop import DataInfo

__all__ = ["TOY", "build_dataset", "reference_dataset", "describe_specs"]

TOY = {"ring": "Ring8Gaussians", "grid": "Grid25Gaussians", "moons": "TwoMoons"}
TOY_SIZE = 50_000  # fixed points per toy dataset (the loader reshuffles them every epoch)


def describe_specs() -> str:
    """One line for ``--help``: the specs ``--data`` accepts."""
    return "digits (embedded), ring, grid, moons (toy 2-D), or a folder of images"


def build_dataset(
    spec: str, image_size: int = 32, channels: int | None = None, seed: int = 0
) -> tuple[Any, DataInfo]:
    """The training dataset named by ``spec`` and its :class:`DataInfo`.

    ``channels``: 1 or 3, or None for the data's own (digits: 1, image folders: 3).
    """
    import tinygan.data as data

    if spec == "digits":
        ds = data.Digits("train", image_size=image_size, channels=channels or 1)
        return ds, DataInfo("image", tuple(ds.images.shape[1:]), 10, "digits")
    if spec in TOY:
        ds = getattr(data, TOY[spec])(size=TOY_SIZE, seed=seed)
        extra: dict[str, Any] = {"std": ds.std}
        if ds.modes is not None:
            extra["modes"] = ds.modes.tolist()
        return ds, DataInfo("points", (2,), 0, spec, extra)
    if os.path.isdir(spec):
        ds = data.ImageFolder(spec, image_size=image_size, channels=channels or 3)
        return ds, DataInfo("image", (channels or 3, image_size, image_size), 0, spec)
    raise ValueError(
        f"--data {spec!r}: not a known dataset ({describe_specs()}) and not an existing folder"
    )


def reference_dataset(spec: str, image_size: int = 32, channels: int | None = None) -> Any:
    """Held-out real data for evaluation: the digits test split; a fresh toy draw; the folder."""
    import tinygan.data as data

    if spec == "digits":
        return data.Digits("test", image_size=image_size, channels=channels or 1)
    if spec in TOY:
        return getattr(data, TOY[spec])(size=10_000, seed=12345)
    return build_dataset(spec, image_size, channels)[0]
