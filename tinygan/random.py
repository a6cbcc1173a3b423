"""Seedable random streams.

Numbers are drawn on the host with NumPy's PCG64 and then moved to the target device, so a
seed gives the same numbers on the CPU and on the GPU (a model initialised on either device
starts from the same weights). The state is JSON-serialisable, for checkpoints.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import to_device


class Generator:
    """An independent random stream: ``Generator(seed)``."""

    def __init__(self, seed: int | None = None) -> None:
        self.manual_seed(seed)

    def manual_seed(self, seed: int | None) -> Generator:
        self.rng = np.random.Generator(np.random.PCG64(seed))
        return self

    def normal(self, shape: tuple[int, ...], dtype: Any = np.float32, device: str = "cpu") -> Any:
        """Standard normal samples of ``shape``."""
        dtype = np.dtype(dtype)
        if dtype in (np.float32, np.float64):
            values = self.rng.standard_normal(shape, dtype=dtype)
        else:
            values = self.rng.standard_normal(shape).astype(dtype)
        return to_device(values, device)

    def uniform(
        self,
        shape: tuple[int, ...],
        dtype: Any = np.float32,
        device: str = "cpu",
        low: float = 0.0,
        high: float = 1.0,
    ) -> Any:
        """Uniform samples in [low, high)."""
        dtype = np.dtype(dtype)
        if dtype in (np.float32, np.float64):
            values = self.rng.random(shape, dtype=dtype)
        else:
            values = self.rng.random(shape).astype(dtype)
        if low != 0.0 or high != 1.0:
            values = (values * (high - low) + low).astype(dtype, copy=False)
        return to_device(values, device)

    def integers(self, low: int, high: int, shape: tuple[int, ...] = ()) -> np.ndarray:
        """Integers in [low, high) on the host."""
        return self.rng.integers(low, high, size=shape)

    def permutation(self, n: int) -> np.ndarray:
        return self.rng.permutation(n)

    def state_dict(self) -> dict[str, Any]:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (layer initialisation, randn, dropout)."""
    return default_generator.manual_seed(seed)
