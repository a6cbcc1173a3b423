"""Exponential moving average of a model's weights (generator averaging).

Sampling from a running average of G's weights instead of the latest G gives visibly better
and more stable samples (Karras et al. 2018, PGGAN; Yazici et al. 2019; StyleGAN's G_ema).
After each optimizer step::

    shadow <- decay * shadow + (1 - decay) * weight      for every parameter
    shadow_buffer <- buffer                              (BN running stats, spectral u/v)

``ema.module`` is a full copy of the model holding the averaged weights: call it (or ``ema``
itself) to sample. With ``warmup=True`` the decay used at update n is
``min(decay, (1 + n) / (10 + n))``, so early averages are not dominated by the random init.
"""

from __future__ import annotations

import copy
from typing import Any

from tinygan.autograd.grad_mode import no_grad
from tinygan.autograd.tensor import Tensor
from tinygan.nn.module import Module


def _copy_model(model: Module) -> Module:
    """A deep copy; cached graph tensors (e.g. spectral norm's ``weight``) are copied detached."""
    memo: dict[int, Any] = {}
    for module in model.modules():
        for value in module.__dict__.values():
            if isinstance(value, Tensor) and value._node is not None:
                memo[id(value)] = Tensor(value.data.copy())
    shadow = copy.deepcopy(model, memo)
    shadow.requires_grad_(False)
    return shadow


class EMA:
    """EMA(model, decay=0.999, warmup=False): ``update()`` after each step, then sample from
    ``module`` (or call the EMA object)."""

    def __init__(self, model: Module, decay: float = 0.999, warmup: bool = False) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"EMA: expected a Module, got {type(model).__name__}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1], got {decay}")
        self.model, self.decay, self.warmup = model, decay, warmup
        self.module = _copy_model(model)
        self.num_updates = 0

    def current_decay(self) -> float:
        """The decay the next ``update()`` will use."""
        if self.warmup:
            return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        return self.decay

    def update(self) -> None:
        """Move the shadow weights towards the model's; copy its buffers."""
        decay = self.current_decay()
        model_params = dict(self.model.named_parameters())
        with no_grad():
            for name, shadow in self.module.named_parameters():
                source = model_params[name].data
                # shadow += (1 - decay) * (source - shadow), with one temporary
                shadow.data_update_(lambda s, source=source: s.__iadd__((source - s) * (1 - decay)))
            model_buffers = dict(self.model.named_buffers())
            for name, shadow in self.module.named_buffers():
                shadow.copy_(model_buffers[name].data)
        self.num_updates += 1

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        """``decay``, ``num_updates``, ``warmup`` and the shadow model's state dict (Tensors)."""
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
            "module": self.module.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.module.load_state_dict(state_dict["module"])
        self.decay = state_dict["decay"]
        self.warmup = state_dict.get("warmup", False)
        self.num_updates = int(state_dict["num_updates"])
