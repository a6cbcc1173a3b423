"""Activation layers: thin Module wrappers of ``tinygan.functions``' activations.

``inplace`` is accepted for PyTorch compatibility and shown in ``repr``, but tinygan always
returns a new tensor (in-place activations would break the saved arrays of the graph).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan import functions as F
from tinygan.autograd.tensor import Tensor
from tinygan.backend import to_device
from tinygan.nn.module import Module, Parameter


class _Inplace(Module):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_Inplace):
    """max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x (0.2 in DCGAN's discriminator)."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class PReLU(Module):
    """x if x > 0 else a * x with a learnt slope ``a``: one shared, or one per channel (dim 1).

    weight: (num_parameters,) filled with ``init`` (0.25). He et al. 2015; SRGAN's generator.
    """

    def __init__(
        self,
        num_parameters: int = 1,
        init: float = 0.25,
        device: str = "cpu",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(to_device(np.full((num_parameters,), init, dtype=dtype), device))

    def forward(self, x: Tensor) -> Tensor:
        if self.num_parameters != 1 and (x.ndim < 2 or x.shape[1] != self.num_parameters):
            raise ValueError(
                f"PReLU: {self.num_parameters} slopes need an input with that many channels at "
                f"dim 1, got shape {x.shape}"
            )
        return F.prelu(x, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(Module):
    """x if x > 0 else alpha * (exp(x) - 1) (Clevert et al. 2016; BEGAN)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x) (DCGAN's generator output, images in [-1, 1])."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Softplus(Module):
    """log(1 + exp(beta x)) / beta.

    ``threshold`` (PyTorch's switch to the identity for large beta x) is accepted and shown;
    tinygan's softplus is computed stably everywhere, so it changes nothing numerically.
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"
