"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019).

At step t with gradient g (plus ``wd * p`` for Adam's L2 weight decay)::

    m <- b1 m + (1 - b1) g              v <- b2 v + (1 - b2) g^2
    v_max <- max(v_max, v)              (amsgrad; then v_max replaces v below)
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

AdamW instead decays the weights directly, ``p <- p (1 - lr wd)``, before the Adam step.
DCGAN, pix2pix and CycleGAN use Adam(lr=2e-4, betas=(0.5, 0.999)); WGAN-GP betas (0, 0.9).
"""

from __future__ import annotations

import math
from typing import Any

from tinygan.autograd.tensor import Tensor
from tinygan.backend import get_array_module
from tinygan.optim import adam_kernels
from tinygan.optim.optimizer import Optimizer, ParamsT


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False)."""

    decoupled = False

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )
        super().__init__(params, defaults)

    def _update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        xp = get_array_module(p.data)
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        if wd != 0 and self.decoupled:
            p.data_update_(lambda a: a.__imul__(1 - lr * wd))
        moments = [state[k] for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if k in state]
        if adam_kernels.usable(p.data, grad, *moments):  # the same arithmetic in one pass
            corrections = 1 - b1**t, math.sqrt(1 - b2**t)
            v_max = state.get("max_exp_avg_sq")
            l2 = 0.0 if self.decoupled else wd
            args = state["exp_avg"], state["exp_avg_sq"], v_max, (b1, b2), l2, corrections
            p.data_update_(lambda a: adam_kernels.update(a, grad, *args, lr, eps))
            return
        if wd != 0 and not self.decoupled:
            grad = xp.multiply(p.data, wd)
            grad += p.grad.data
        m, v = state["exp_avg"], state["exp_avg_sq"]
        tmp = xp.multiply(grad, 1 - b1)
        m *= b1
        m += tmp
        xp.multiply(grad, grad, out=tmp)
        tmp *= 1 - b2
        v *= b2
        v += tmp
        if group["amsgrad"]:
            v = xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        xp.sqrt(v, out=tmp)  # tmp becomes the denominator ...
        tmp /= math.sqrt(1 - b2**t)
        tmp += eps
        xp.divide(m, tmp, out=tmp)  # ... and then the step
        tmp *= -lr / (1 - b1**t)
        p.data_update_(lambda a: a.__iadd__(tmp))


class AdamW(Adam):
    """AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False)."""

    decoupled = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
