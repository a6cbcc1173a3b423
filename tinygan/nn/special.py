"""Dropout, Embedding and GradientReversal layers."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan import functions as F
from tinygan.autograd.tensor import Tensor
from tinygan.backend import to_device
from tinygan.functions.special import dropout, embedding, gradient_reversal
from tinygan.nn import init
from tinygan.nn.module import Module, Parameter


class Dropout(Module):
    """Zero each element with probability ``p`` in training and scale the rest by 1 / (1 - p).

    Identity in eval mode (Srivastava et al. 2014; pix2pix uses it as G's noise).
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Embedding(Module):
    """A lookup table: integer indices (any shape S) -> vectors (S, embedding_dim).

    weight: (num_embeddings, embedding_dim) ~ N(0, 1); the row ``padding_idx`` (if given) is
    zero and receives no gradient. Used for class conditioning (cGAN, AC-GAN, BigGAN).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        device: str = "cpu",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx {padding_idx} out of range for {num_embeddings} rows"
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        shape = (num_embeddings, embedding_dim)
        self.weight = Parameter(to_device(np.zeros(shape, dtype=np.dtype(dtype)), device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data_update_(lambda a: a[self.padding_idx].fill(0))

    def forward(self, indices: Tensor | Any) -> Tensor:
        if not isinstance(indices, Tensor):
            indices = Tensor(to_device(np.asarray(indices), self.weight.device))
        if indices.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got {indices.dtype}")
        rows = embedding(indices, self.weight)
        if self.padding_idx is None:
            return rows
        # the padding row is looked up like any other but receives no gradient
        keep = (indices.data != self.padding_idx)[..., None]
        return F.where(keep, rows, Tensor(rows.data))

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        return text + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class GradientReversal(Module):
    """Identity forward, gradient times ``-lam`` backward (Ganin & Lempitsky 2015, DANN).

    ``lam`` is a plain attribute, so a training loop can anneal it.
    """

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, x: Tensor) -> Tensor:
        return gradient_reversal(x, self.lam)

    def extra_repr(self) -> str:
        return f"lam={self.lam}"
