"""RMSprop (Tieleman & Hinton 2012; Graves 2013 for the centred form).

With gradient g (plus ``wd * p``), smoothing alpha, momentum mu::

    s <- alpha s + (1 - alpha) g^2
    a <- alpha a + (1 - alpha) g;  d = sqrt(s - a^2) + eps      (centered)
                                   d = sqrt(s) + eps            (otherwise)
    b <- mu b + g / d;  p <- p - lr b                           (mu > 0)
    p <- p - lr g / d                                           (mu = 0)

WGAN (Arjovsky et al. 2017) trains its critic with RMSprop(lr=5e-5).
"""

from __future__ import annotations

from typing import Any

from tinygan.autograd.tensor import Tensor
from tinygan.backend import get_array_module
from tinygan.optim.optimizer import Optimizer, ParamsT


class RMSprop(Optimizer):
    """RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
    centered=False)."""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=centered,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        xp = get_array_module(p.data)
        lr, alpha, eps, wd = group["lr"], group["alpha"], group["eps"], group["weight_decay"]
        mu = group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p.data)
            if mu > 0:
                state["momentum_buffer"] = xp.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p.data)
        state["step"] += 1
        if wd != 0:
            grad = xp.multiply(p.data, wd)
            grad += p.grad.data
        s = state["square_avg"]
        tmp = xp.multiply(grad, grad)
        tmp *= 1 - alpha
        s *= alpha
        s += tmp
        if group["centered"]:
            a = state["grad_avg"]
            xp.multiply(grad, 1 - alpha, out=tmp)
            a *= alpha
            a += tmp
            xp.multiply(a, a, out=tmp)
            xp.subtract(s, tmp, out=tmp)
            xp.sqrt(tmp, out=tmp)
        else:
            xp.sqrt(s, out=tmp)
        tmp += eps
        xp.divide(grad, tmp, out=tmp)
        if mu > 0:
            b = state["momentum_buffer"]
            b *= mu
            b += tmp
            xp.multiply(b, -lr, out=tmp)
        else:
            tmp *= -lr
        p.data_update_(lambda a: a.__iadd__(tmp))
