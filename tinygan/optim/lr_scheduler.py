"""Learning-rate schedules: StepLR, LambdaLR and CycleGAN's LinearDecayLR.

As in PyTorch, a scheduler remembers each group's starting rate (``initial_lr``), sets the
rate for epoch 0 when built, and moves one epoch (or step) on with each ``step()`` call,
made after that epoch's ``optimizer.step()``s. Every schedule here is a closed form
``lr(t) = initial_lr * factor(t)`` of the counter t = ``last_epoch``, so the rate at any t
does not depend on how it was reached, and ``state_dict`` only needs t.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinygan.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses define ``factor(t)``."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer)}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(
                    f"{type(self).__name__}: resuming at last_epoch={last_epoch} needs "
                    "'initial_lr' in every param group"
                )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def factor(self, t: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        """The rates for the current ``last_epoch``."""
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]

    def get_last_lr(self) -> list[float]:
        """The rates last written into the optimizer."""
        return list(self._last_lr)

    def step(self) -> None:
        """Advance one epoch (or step) and write the new rates into the optimizer."""
        self.last_epoch += 1
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        """Numbers only (no functions, no optimizer)."""
        return {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("optimizer", "lr_lambdas") and not callable(v)
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr


class StepLR(LRScheduler):
    """lr = initial_lr * gamma ** (t // step_size)."""

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        if step_size <= 0:
            raise ValueError(f"StepLR: step_size must be positive, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int) -> float:
        return self.gamma ** (t // self.step_size)


class LambdaLR(LRScheduler):
    """lr = initial_lr * lr_lambda(t); one function, or one per param group."""

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | list[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        groups = len(optimizer.param_groups)
        if isinstance(lr_lambda, list | tuple):
            if len(lr_lambda) != groups:
                raise ValueError(f"LambdaLR: {len(lr_lambda)} lr_lambdas for {groups} param groups")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * groups
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * f(self.last_epoch) for base, f in zip(self.base_lrs, self.lr_lambdas)]


class LinearDecayLR(LRScheduler):
    """Constant, then linear decay to zero: CycleGAN's schedule (Zhu et al. 2017, section 7.1).

    factor(t) = 1 for t < decay_start, else max(0, (total - t) / (total - decay_start)):
    ``total`` is the number of epochs (or steps) of training and ``decay_start`` defaults to
    ``total // 2`` (CycleGAN: 100 epochs at 2e-4, then 100 decaying). The last step run,
    t = total - 1, still has a small positive rate; t >= total gives 0.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total: int,
        decay_start: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        decay_start = total // 2 if decay_start is None else decay_start
        if not 0 <= decay_start < total:
            raise ValueError(
                f"LinearDecayLR: need 0 <= decay_start < total, got decay_start={decay_start}, "
                f"total={total}"
            )
        self.total, self.decay_start = total, decay_start
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int) -> float:
        if t < self.decay_start:
            return 1.0
        return max(0.0, (self.total - t) / (self.total - self.decay_start))
