"""Mode coverage and sample quality on toy 2-D mixtures of Gaussians.

The measures of the mode-collapse literature (Metz et al. 2017, Unrolled GANs; Srivastava et
al. 2017, VEEGAN; Lin et al. 2018, PacGAN), with the thresholds stated:

- a sample is **high-quality** when its distance to the nearest mode centre is at most
  ``k_sigma`` (default 3) times the mixture's per-coordinate std sigma. For a 2-D isotropic
  Gaussian P(||x - mu|| <= 3 sigma) = 1 - exp(-9/2) ~ 98.9%, so real data scores ~0.99;
- a mode is **covered** when the high-quality samples assigned to it number at least
  ``min_share`` (default 0.2) of its fair share n/K of the n samples -- a fifth of what a
  perfect generator would put there. (VEEGAN counts >= 20 of 2500 for 25 modes, i.e. 0.2 of
  the fair share 100; we use the same fraction for any n and K.)

For :class:`~tinygan.data.TwoMoons`, which has no discrete modes, the same two measures use
the distance to each moon's arc instead of to a centre (the "modes" are the two moons).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["mode_coverage", "moons_coverage", "toy_metrics"]


def _summary(nearest: np.ndarray, good: np.ndarray, k: int, min_share: float) -> dict[str, Any]:
    n = len(nearest)
    counts = np.bincount(nearest[good], minlength=k)
    needed = min_share * n / k
    return {
        "modes_covered": int((counts >= needed).sum()),
        "num_modes": k,
        "high_quality": float(good.mean()) if n else 0.0,
        "per_mode": counts.tolist(),
        "min_count": needed,
        "num_samples": n,
    }


def mode_coverage(
    samples: Any, modes: Any, std: float, k_sigma: float = 3.0, min_share: float = 0.2
) -> dict[str, Any]:
    """Coverage of ``modes`` (K, 2) by ``samples`` (n, 2) of a mixture with std ``std``.

    Returns ``modes_covered`` (of ``num_modes``), ``high_quality`` (fraction of samples within
    ``k_sigma * std`` of a mode), ``per_mode`` (high-quality samples per mode) and
    ``min_count`` (the count a mode needs to be covered).
    """
    x, c = np.asarray(samples, dtype=np.float64), np.asarray(modes, dtype=np.float64)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(f"mode_coverage: samples {x.shape} and modes {c.shape} must be (n, d)")
    dist = np.sqrt(((x[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    dist = np.nan_to_num(dist, nan=np.inf)
    nearest = dist.argmin(1)
    good = dist[np.arange(len(x)), nearest] <= k_sigma * std
    return _summary(nearest, good, len(c), min_share)


def _arc_distance(x: np.ndarray, centre: tuple[float, float], lo: float, hi: float) -> np.ndarray:
    """Distance from points to the unit-circle arc around ``centre`` with angles [lo, hi]."""
    d = x - np.asarray(centre)
    angle = np.mod(np.arctan2(d[:, 1], d[:, 0]) - lo, 2 * np.pi) + lo
    on_arc = np.abs(np.hypot(d[:, 0], d[:, 1]) - 1.0)
    ends = [np.hypot(*(d - [np.cos(a), np.sin(a)]).T) for a in (lo, hi)]
    return np.where(angle <= hi, on_arc, np.minimum(*ends))


def moons_coverage(
    samples: Any, std: float, k_sigma: float = 3.0, min_share: float = 0.2
) -> dict[str, Any]:
    """:func:`mode_coverage` for two moons: moon 0 = arc (cos t, sin t), moon 1 =
    (1 - cos t, 0.5 - sin t), t in [0, pi]."""
    x = np.nan_to_num(np.asarray(samples, dtype=np.float64), nan=np.inf)
    dist = np.stack(
        [_arc_distance(x, (0.0, 0.0), 0.0, np.pi), _arc_distance(x, (1.0, 0.5), np.pi, 2 * np.pi)],
        1,
    )
    dist = np.nan_to_num(dist, nan=np.inf)
    nearest = dist.argmin(1)
    good = dist[np.arange(len(x)), nearest] <= k_sigma * std
    return _summary(nearest, good, 2, min_share)


def toy_metrics(samples: Any, dataset: Any, **kwargs: Any) -> dict[str, Any]:
    """Coverage for a toy dataset object (``.modes``, ``.std``; moons when modes is None)."""
    if getattr(dataset, "modes", None) is None:
        return moons_coverage(samples, dataset.std, **kwargs)
    return mode_coverage(samples, dataset.modes, dataset.std, **kwargs)
