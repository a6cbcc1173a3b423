"""Stochastic gradient descent with momentum (Polyak 1964; Nesterov, Sutskever et al. 2013).

With gradient g, weight decay wd, momentum mu, dampening d and learning rate lr::

    g <- g + wd * p
    b <- g                              (first step)
    b <- mu * b + (1 - d) * g           (later steps)
    g <- g + mu * b  if nesterov else b
    p <- p - lr * g

(PyTorch's formulation: the learning rate multiplies the buffer, not the gradient inside it.)
Goodfellow et al. 2014 train the original GAN with SGD + momentum.
"""

from __future__ import annotations

from typing import Any

from tinygan.autograd.tensor import Tensor
from tinygan.backend import get_array_module
from tinygan.optim.optimizer import Optimizer, ParamsT


class SGD(Optimizer):
    """SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False)."""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0")

    def _update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        xp = get_array_module(p.data)
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        if wd != 0:
            grad = xp.multiply(p.data, wd)
            grad += p.grad.data
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= mu
                buf += grad if group["dampening"] == 0 else (1 - group["dampening"]) * grad
            if group["nesterov"]:
                step = xp.multiply(buf, mu)
                step += grad
            else:
                step = buf
        else:
            step = grad
        update = xp.multiply(step, -lr)
        p.data_update_(lambda a: a.__iadd__(update))
