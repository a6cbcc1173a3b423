"""The Optimizer base class: parameter groups, per-parameter state, state_dict.

A subclass implements ``_update(param, grad, group, state)``, which changes ``param``'s array
in place (through ``Tensor.data_update_``, bumping its version) using the raw arrays of the
parameter and its gradient, so a step builds no graph and makes few temporaries.

``state_dict()`` follows PyTorch's layout with parameters named by their index (counted
across groups in order)::

    {"state": {0: {"step": 3, "exp_avg": ndarray, ...}, ...},
     "param_groups": [{"lr": 0.0002, "betas": (0.5, 0.999), ..., "params": [0, 1, 2]}]}

Its values are Python numbers, tuples and NumPy arrays (host copies) only, so
``tinygan/checkpoint.py`` can write it without pickle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinygan.autograd.grad_mode import enable_grad, no_grad
from tinygan.autograd.tensor import Tensor
from tinygan.backend import get_array_module, to_device

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class. ``params``: an iterable of Tensors, or of dicts ``{"params": [...], **options}``
    whose options override ``defaults`` for that group."""

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Tensors or dicts, got a "
                "single Tensor; wrap it in a list"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ---------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (e.g. a new layer when growing a GAN)."""
        name = type(self).__name__
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError(f"{name}: a param group must be a dict with a 'params' entry")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        for index, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameter {index} is a {type(p).__name__}, not a Tensor")
            if p.dtype.kind != "f" or not p.is_leaf:
                raise ValueError(
                    f"{name}: parameter {index} (shape {p.shape}, {p.dtype}) must be a "
                    "floating-point leaf tensor"
                )
            if id(p) in seen:
                raise ValueError(
                    f"{name}: parameter {index} of shape {p.shape} appears in more than one "
                    "place; each parameter may be optimised once"
                )
            seen.add(id(p))
        group = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        self._check_options(group)
        group["params"] = params
        self.param_groups.append(group)

    def _check_options(self, group: dict[str, Any]) -> None:
        """Raise ValueError for out-of-range options (subclasses extend)."""
        for key in ("lr", "eps", "weight_decay", "momentum", "alpha"):
            if key in group and group[key] < 0:
                raise ValueError(f"{type(self).__name__}: {key} must be >= 0, got {group[key]}")
        betas = group.get("betas")
        if betas is not None and not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")

    # ---------------------------------------------------------------- stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (default) or zero the gradients of every parameter."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient. ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        work = [
            (p, group) for group in self.param_groups for p in group["params"] if p.grad is not None
        ]
        for p, _ in work:  # check everything before changing anything
            if p.grad.shape != p.shape or p.grad.device != p.device:
                raise ValueError(
                    f"{type(self).__name__}: gradient of shape {p.grad.shape} on {p.grad.device} "
                    f"for a parameter of shape {p.shape} on {p.device}"
                )
        with no_grad():
            for p, group in work:
                self._update(p, p.grad.data, group, self.state.setdefault(p, {}))
        return loss

    def _update(self, p: Tensor, grad: Any, group: dict[str, Any], state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Options per group and state per parameter index; arrays are host (NumPy) copies."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state and self.state[p]:
                    state[index[id(p)]] = {
                        key: np.array(to_device(value, "cpu"), copy=True)
                        if hasattr(value, "shape")
                        else value
                        for key, value in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and state; checks everything first and changes nothing on error.

        Array state is copied to each parameter's device and dtype. Keys may be ints or
        strings (as after a JSON round trip).
        """
        name = type(self).__name__
        groups = state_dict.get("param_groups", [])
        if len(groups) != len(self.param_groups) or any(
            len(saved["params"]) != len(group["params"])
            for saved, group in zip(groups, self.param_groups)
        ):
            raise ValueError(
                f"{name}.load_state_dict: saved group sizes "
                f"{[len(g['params']) for g in groups]} do not match this optimizer's "
                f"{[len(g['params']) for g in self.param_groups]}"
            )
        by_index = {}
        for saved, group in zip(groups, self.param_groups):
            for i, p in zip(saved["params"], group["params"]):
                by_index[int(i)] = p
        new_state: dict[Tensor, dict[str, Any]] = {}
        problems = []
        for key, values in state_dict.get("state", {}).items():
            p = by_index.get(int(key))
            if p is None:
                problems.append(f"state for parameter {key}, which no group lists")
                continue
            entry = {}
            for k, v in values.items():
                if isinstance(v, list):  # an array written out as nested lists
                    v = np.asarray(v)
                if isinstance(v, Tensor):
                    v = v.data
                if hasattr(v, "shape") and v.ndim > 0:
                    if tuple(v.shape) != p.shape:
                        problems.append(
                            f"parameter {key} '{k}': shape {tuple(v.shape)}, expected {p.shape}"
                        )
                        continue
                    v = get_array_module(p.data).array(to_device(v, p.device), dtype=p.dtype)
                elif hasattr(v, "shape"):
                    v = v.item()
                entry[k] = v
            new_state[p] = entry
        if problems:
            raise ValueError(f"{name}.load_state_dict:\n  " + "\n  ".join(problems))
        for saved, group in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(self.defaults.get(k), tuple) else v
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"
