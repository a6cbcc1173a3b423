"""Spectral normalisation (Miyato, Kataoka, Koyama & Yoshida 2018).

The layer's weight W is reshaped to a matrix (rows = output channels) and replaced, before
every forward, by ``W / sigma(W)``, where ``sigma`` is W's largest singular value, so the layer
is 1-Lipschitz. sigma is estimated by power iteration on two unit vectors kept as buffers::

    v <- normalize(W^T u),  u <- normalize(W v),  sigma = u^T W v

run ``n_power_iterations`` times per forward in training mode only (eval mode reuses u, v).
u and v are constants for the gradient; sigma is differentiable through W. State dict keys
are PyTorch's: ``weight_orig`` (the trained parameter), ``weight_u``, ``weight_v``.
"""

from __future__ import annotations

from typing import Any

from tinygan import functions as F
from tinygan import random as _random
from tinygan.autograd.grad_mode import no_grad
from tinygan.autograd.tensor import Tensor
from tinygan.backend import get_array_module, to_device
from tinygan.nn.conv import ConvTranspose2d
from tinygan.nn.module import Module, Parameter


def _normalize(x: Any, eps: float) -> Any:
    xp = get_array_module(x)
    return x / max(float(xp.linalg.norm(x)), eps)


class SpectralNorm:
    """The forward pre-hook that recomputes ``module.<name>`` from ``<name>_orig``, u and v."""

    def __init__(self, name: str, n_power_iterations: int, eps: float, dim: int) -> None:
        self.name, self.n_power_iterations, self.eps, self.dim = name, n_power_iterations, eps, dim

    def matrix(self, weight: Any) -> Any:
        """The weight array as a (rows, cols) matrix, rows along ``dim``."""
        moved = weight if self.dim == 0 else get_array_module(weight).moveaxis(weight, self.dim, 0)
        return moved.reshape(moved.shape[0], -1)

    def power_iteration(self, module: Module, iterations: int) -> None:
        """Refine the buffers u and v in place (no graph is built)."""
        w = self.matrix(getattr(module, self.name + "_orig").data)
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        u_new, v_new = u.data, v.data
        for _ in range(iterations):
            v_new = _normalize(w.T @ u_new, self.eps)
            u_new = _normalize(w @ v_new, self.eps)
        v.data_update_(v_new)
        u.data_update_(u_new)

    def compute_weight(self, module: Module) -> Tensor:
        """W / sigma with sigma = u^T W v = sum(W * u v^T): differentiable through W only."""
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u").data
        v = getattr(module, self.name + "_v").data
        xp = get_array_module(u)
        outer = xp.outer(u, v)
        if self.dim != 0:
            moved = xp.moveaxis(weight.data, self.dim, 0).shape
            outer = xp.moveaxis(outer.reshape(moved), 0, self.dim)
        sigma = F.sum(weight * Tensor(outer.reshape(weight.shape)))
        return weight / sigma

    def sigma(self, module: Module) -> float:
        """The current estimate u^T W v of the largest singular value."""
        w = self.matrix(getattr(module, self.name + "_orig").data)
        u, v = getattr(module, self.name + "_u").data, getattr(module, self.name + "_v").data
        return float(u @ (w @ v))

    def __call__(self, module: Module, inputs: tuple) -> None:
        if module.training and self.n_power_iterations > 0:
            with no_grad():
                self.power_iteration(module, self.n_power_iterations)
        object.__setattr__(module, self.name, self.compute_weight(module))


def spectral_norm(
    module: Module,
    name: str = "weight",
    n_power_iterations: int = 1,
    eps: float = 1e-12,
    dim: int | None = None,
    generator: _random.Generator | None = None,
) -> Module:
    """Spectrally normalise ``module.<name>`` in place and return ``module``.

    ``dim`` is the output-channel axis: 0, except 1 for ConvTranspose2d. u and v start as
    normalised Gaussian vectors refined by 15 power iterations, so even the first forward
    (and eval mode) uses a good sigma.
    """
    if not isinstance(module, Module):
        raise TypeError(f"spectral_norm: expected a Module, got {type(module).__name__}")
    if any(
        isinstance(h, SpectralNorm) and h.name == name for h in module._forward_pre_hooks.values()
    ):
        raise RuntimeError(f"spectral_norm: {type(module).__name__}.{name} is already normalised")
    weight = module._parameters.get(name)
    if weight is None:
        raise ValueError(f"spectral_norm: {type(module).__name__} has no parameter named {name!r}")
    if n_power_iterations < 0:
        raise ValueError(
            f"spectral_norm: n_power_iterations must be >= 0, got {n_power_iterations}"
        )
    if dim is None:
        dim = 1 if isinstance(module, ConvTranspose2d) else 0
    hook = SpectralNorm(name, n_power_iterations, eps, dim)
    rows, cols = hook.matrix(weight.data).shape
    gen = _random.default_generator if generator is None else generator
    u = _normalize(gen.normal((rows,), weight.dtype, "cpu"), eps)
    v = _normalize(gen.normal((cols,), weight.dtype, "cpu"), eps)
    del module._parameters[name]
    module.register_parameter(name + "_orig", weight)  # the same object: optimizers keep it
    module.register_buffer(name + "_u", Tensor(to_device(u, weight.device)))
    module.register_buffer(name + "_v", Tensor(to_device(v, weight.device)))
    with no_grad():
        hook.power_iteration(module, 15)
        object.__setattr__(module, name, hook.compute_weight(module))
    module.register_forward_pre_hook(hook)
    return module


def remove_spectral_norm(module: Module, name: str = "weight") -> Module:
    """Undo :func:`spectral_norm`: ``<name>`` becomes a plain Parameter holding W / sigma."""
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, SpectralNorm) and hook.name == name:
            with no_grad():
                weight = hook.compute_weight(module)
            module.remove_forward_pre_hook(key)
            for suffix in ("_orig", "_u", "_v"):
                delattr(module, name + suffix)
            module.__dict__.pop(name, None)
            module.register_parameter(name, Parameter(weight.data))
            return module
    raise ValueError(f"remove_spectral_norm: {type(module).__name__}.{name} is not normalised")
