"""Module and Parameter: the bookkeeping every layer and model shares.

A :class:`Module` finds its parts by attribute assignment, as in PyTorch::

    self.fc = Linear(4, 3)                       # a submodule
    self.scale = Parameter(tinygan.ones(3))      # a trainable tensor
    self.register_buffer("running_mean", tinygan.zeros(3))  # state that is not trained

and from those three registries derives ``parameters()``, ``state_dict()`` (keys such as
``fc.weight`` or ``bn.running_mean``), ``to(device)``, ``train()``/``eval()`` and the nested
``repr``. Subclasses define ``forward``; calling the module runs its forward pre-hooks (used by
:func:`~tinygan.nn.spectral_norm`) and then ``forward``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from tinygan.autograd.tensor import Tensor
from tinygan.backend import check_device, device_of, to_device


class Parameter(Tensor):
    """A leaf Tensor that a Module registers as trainable (``requires_grad=True`` by default).

    Args:
        data: a Tensor or array of floating-point values (the array is shared, not copied).
        requires_grad: whether optimizers should train it.
    """

    __slots__ = ()

    def __init__(self, data: Tensor | Any, requires_grad: bool = True) -> None:
        array = data.data if isinstance(data, Tensor) else data
        if not hasattr(array, "__array_interface__") and not hasattr(
            array, "__cuda_array_interface__"
        ):
            array = np.asarray(array)
        if array.dtype.kind != "f":
            raise TypeError(f"Parameter: needs a floating-point dtype, got {array.dtype}")
        super().__init__(array, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo: dict) -> Parameter:
        copy = Parameter(self.data.copy(), requires_grad=self.requires_grad)
        memo[id(self)] = copy
        return copy


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _indent(text: str, spaces: int = 2) -> str:
    lines = text.split("\n")
    return "\n".join([lines[0]] + [" " * spaces + line for line in lines[1:]])


class Module:
    """Base class of layers and models.

    Subclasses call ``super().__init__()`` first, assign parameters, buffers and submodules
    as attributes, and define ``forward``. ``training`` is True until ``eval()``.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            hook(self, args)
        return self.forward(*args, **kwargs)

    def register_forward_pre_hook(self, hook: Callable[[Module, tuple], None]) -> int:
        """Call ``hook(module, args)`` before every forward; returns a key for removal."""
        key = max(self._forward_pre_hooks, default=-1) + 1
        self._forward_pre_hooks[key] = hook
        return key

    def remove_forward_pre_hook(self, key: int) -> None:
        del self._forward_pre_hooks[key]

    # ---------------------------------------------------------------- registration
    def _check_name(self, name: str, kind: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{type(self).__name__}: invalid {kind} name {name!r}")
        if "_modules" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning a {kind}"
            )

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None for an absent one, e.g. ``bias=False``) under ``name``."""
        self._check_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"{type(self).__name__}.{name}: expected a Parameter or None, got "
                f"{type(param).__name__}"
            )
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register state that is saved (unless ``persistent=False``) and moved, not trained."""
        self._check_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"{type(self).__name__}.{name}: a buffer must be a Tensor or None, got "
                f"{type(tensor).__name__}"
            )
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as a child named ``name``."""
        self._check_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(
                f"{type(self).__name__}.{name}: expected a Module, got {type(module).__name__}"
            )
        self._forget(name)
        self._modules[name] = module

    def _forget(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent.discard(name)
        self.__dict__.pop(name, None)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self.add_module(name, value)
        elif "_modules" in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}.{name} is a parameter: assign a Parameter or None, "
                    f"not {type(value).__name__}"
                )
            self._parameters[name] = None
        elif "_modules" in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"{type(self).__name__}.{name} is a buffer: assign a Tensor or None, "
                    f"not {type(value).__name__}"
                )
            self._buffers[name] = value
        elif "_modules" in self.__dict__ and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}.{name} is a submodule: assign a Module or None"
                )
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: look in the registries.
        registries = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if key in registries and name in registries[key]:
                return registries[key][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        return sorted(
            set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules)
        )

    # ---------------------------------------------------------------- traversal
    def named_modules(
        self, prefix: str = "", memo: set | None = None
    ) -> Iterator[tuple[str, Module]]:
        """This module and all below it, each once, as ``(dotted name, module)``."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct submodules as ``(name, module)``."""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for prefix, module in modules:
            for name, tensor in getattr(module, registry).items():
                if tensor is None or id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                yield (f"{prefix}.{name}" if prefix else name), tensor

    def named_parameters(self, recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Every parameter once (shared ones are not repeated), as ``(dotted name, parameter)``."""
        return self._named_members("_parameters", recurse)  # type: ignore[return-value]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse):
            yield param

    def named_buffers(self, recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buf in self.named_buffers(recurse):
            yield buf

    # ---------------------------------------------------------------- modes and grads
    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active, batch statistics) here and below."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Inference mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Turn gradient tracking of every parameter on or off (e.g. freeze D during G's step)."""
        for param in self.parameters():
            param.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (default) or zero every parameter's gradient."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.zero_()

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first) and then on this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, device: str) -> Module:
        """Move every parameter, gradient and buffer to ``device``, keeping the same Tensor objects.

        Optimizers built before the move keep working, since they hold the same Parameters.
        """
        check_device(device)
        for tensor in [*self.parameters(), *self.buffers()]:
            if device_of(tensor.data) != device:
                tensor.data = to_device(tensor.data, device)
                tensor._version += 1
            if tensor.grad is not None and tensor.grad.device != device:
                tensor.grad = Tensor(to_device(tensor.grad.data, device))
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    # ---------------------------------------------------------------- state
    def state_dict(self, prefix: str = "") -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by dotted name, as detached Tensors sharing memory.

        Keys follow PyTorch (``0.weight``, ``bn.running_mean``, ``bn.num_batches_tracked``), so a
        shared submodule appears under each name it is reachable by.
        """
        state: OrderedDict[str, Tensor] = OrderedDict()
        self._save_to(state, prefix)
        return state

    def _save_to(self, state: OrderedDict, prefix: str) -> None:
        for name, param in self._parameters.items():
            if param is not None:
                state[prefix + name] = param.detach()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent:
                state[prefix + name] = buf.detach()
        for name, child in self._modules.items():
            if child is not None:
                child._save_to(state, f"{prefix}{name}.")

    def _state_targets(self) -> OrderedDict[str, Tensor]:
        targets: OrderedDict[str, Tensor] = OrderedDict()
        for prefix, module in self._all_named_modules():
            for name, tensor in [*module._parameters.items(), *module._buffers.items()]:
                if tensor is not None and name not in module._non_persistent:
                    targets[f"{prefix}.{name}" if prefix else name] = tensor
        return targets

    def _all_named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Like ``named_modules``, but shared modules appear under each name (as in state_dict)."""
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child._all_named_modules(f"{prefix}.{name}" if prefix else name)

    def load_state_dict(
        self, state_dict: Mapping[str, Tensor | Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy values bit-exactly into the existing parameter and buffer arrays.

        ``state_dict`` maps dotted names to Tensors or arrays (numpy, cupy). Everything is checked
        first; on any problem ONE ``RuntimeError`` lists the missing keys, the unexpected keys
        (only when ``strict``) and every key whose shape differs (always), with both shapes, and
        nothing is changed. Returns the missing and unexpected keys (empty when ``strict``).
        """
        targets = self._state_targets()
        missing = [key for key in targets if key not in state_dict]
        unexpected = [key for key in state_dict if key not in targets]
        problems: list[str] = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        values = {}
        for key, target in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value.data if isinstance(value, Tensor) else value
            if not hasattr(array, "shape"):
                array = np.asarray(array)
            if tuple(array.shape) != target.shape:
                problems.append(
                    f"{key}: shape {tuple(array.shape)} in the state dict, "
                    f"{target.shape} in the model"
                )
            elif np.dtype(array.dtype).kind != target.dtype.kind and not (
                target.dtype.kind in "iu" and np.dtype(array.dtype).kind in "iu"
            ):
                problems.append(
                    f"{key}: dtype {array.dtype} in the state dict, {target.dtype} in the model"
                )
            values[key] = array
        if problems:
            raise RuntimeError(
                f"Error(s) loading state_dict for {type(self).__name__}:\n  "
                + "\n  ".join(problems)
            )
        for key, array in values.items():
            target = targets[key]
            target.data_update_(to_device(array, target.device))
        return IncompatibleKeys(missing, unexpected)

    # ---------------------------------------------------------------- display
    def extra_repr(self) -> str:
        """The layer's settings, shown inside its parentheses in ``repr``."""
        return ""

    def __repr__(self) -> str:
        lines = [line for line in self.extra_repr().split("\n") if line]
        for name, child in self._modules.items():
            lines.append(f"({name}): " + _indent(repr(child)))
        if not lines:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and not self._modules:
            return f"{type(self).__name__}({lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
