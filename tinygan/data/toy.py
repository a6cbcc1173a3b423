"""Toy 2-D distributions for watching mode collapse: a ring and a grid of Gaussians, two moons.

- :class:`Ring8Gaussians`: 8 isotropic Gaussians with centres evenly spaced on a circle of
  radius 2, std 0.02 -- the mixture used to show mode collapse in the Unrolled GAN paper
  (Metz, Poole, Pfau, Sohl-Dickstein, "Unrolled Generative Adversarial Networks", ICLR 2017).
- :class:`Grid25Gaussians`: 25 Gaussians at (-4..4 step 2)^2, std 0.05, the 2-D grid of
  VEEGAN (Srivastava et al., NeurIPS 2017) and PacGAN (Lin et al., NeurIPS 2018).
- :class:`TwoMoons`: two interleaved half circles plus Gaussian noise (the shape popularised
  by scikit-learn's ``make_moons``); a continuous manifold, so ``modes`` is None.

Each class samples with ``sample(n, generator)`` and, as a Dataset, holds ``size`` fixed
points drawn from ``seed`` (items: float32 ``(2,)``). ``.modes``: (K, 2) centres or None;
``.std``: per-coordinate noise std; ``.labels``: the mode (or moon) of each fixed point.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.data.dataset import Dataset

__all__ = ["Toy2D", "Ring8Gaussians", "Grid25Gaussians", "TwoMoons"]


def _rng(generator: Any) -> np.random.Generator:
    """A numpy Generator from a numpy Generator, a tinygan.Generator, an int seed or None."""
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(getattr(generator, "rng", None), np.random.Generator):  # tinygan.Generator
        return generator.rng
    if generator is None or isinstance(generator, (int, np.integer)):
        return np.random.default_rng(generator)
    raise TypeError(f"expected a numpy/tinygan Generator, an int seed or None, got {generator!r}")


class Toy2D(Dataset):
    """Base: a mixture of isotropic Gaussians at ``modes`` with std ``std``."""

    modes: np.ndarray | None
    std: float

    def __init__(self, size: int = 10_000, seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"{type(self).__name__}: size must be >= 1, got {size}")
        self.points, self.labels = self.sample(size, seed, return_labels=True)

    def _draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        assert self.modes is not None
        labels = rng.integers(0, len(self.modes), n)
        return self.modes[labels] + self.std * rng.standard_normal((n, 2)), labels

    def sample(
        self,
        n: int,
        generator: Any = None,
        return_labels: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """``n`` points, float32 (n, 2); with ``return_labels`` also the mode of each, (n,).

        ``generator``: numpy or tinygan Generator (advanced in place), int seed, or None.
        """
        x, labels = self._draw(int(n), _rng(generator))
        x = x.astype(np.float32)
        return (x, labels.astype(np.int64)) if return_labels else x

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.points[self._check_index(index)]

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        return self.points[indices]


class Ring8Gaussians(Toy2D):
    """8 Gaussians on a circle (Metz et al. 2017): centres ``radius*(cos, sin)(2*pi*k/8)``."""

    def __init__(
        self, size: int = 10_000, seed: int = 0, radius: float = 2.0, std: float = 0.02
    ) -> None:
        angles = 2 * np.pi * np.arange(8) / 8
        self.modes = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        self.std = float(std)
        super().__init__(size, seed)


class Grid25Gaussians(Toy2D):
    """25 Gaussians on a 5x5 grid (VEEGAN, PacGAN): centres (-4..4 step ``spacing``)^2."""

    def __init__(
        self, size: int = 10_000, seed: int = 0, spacing: float = 2.0, std: float = 0.05
    ) -> None:
        ticks = spacing * (np.arange(5) - 2)
        self.modes = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(25, 2)
        self.std = float(std)
        super().__init__(size, seed)


class TwoMoons(Toy2D):
    """Two interleaved half circles: moon 0 is (cos t, sin t), moon 1 is (1-cos t, 0.5-sin t),
    t ~ U[0, pi], plus N(0, std^2) noise. ``modes`` is None (no discrete centres); the labels
    say which moon a point is on."""

    def __init__(self, size: int = 10_000, seed: int = 0, std: float = 0.05) -> None:
        self.modes = None
        self.std = float(std)
        super().__init__(size, seed)

    def _draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, n)
        t = rng.uniform(0.0, np.pi, n)
        upper = np.stack([np.cos(t), np.sin(t)], 1)
        lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
        x = np.where(labels[:, None] == 0, upper, lower)
        return x + self.std * rng.standard_normal((n, 2)), labels
