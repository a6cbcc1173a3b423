"""Containers: Sequential (a pipeline), ModuleList and ModuleDict (registered collections).

Children are named ``"0"``, ``"1"``, ... (or by their keys), which gives state_dict keys such as
``0.weight`` exactly as in PyTorch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tinygan.nn.module import Module
from tinygan.nn.norm import fused_pair

# Sequential runs a BatchNorm or InstanceNorm2d and the ReLU or LeakyReLU right after it as one
# op (nn/norm.py, ``fused_pair``); tests compare against the separate layers with this off.
FUSE_NORM_ACTIVATION = True


def _fused_pair(norm: Module, activation: Module) -> Any:
    return fused_pair(norm, activation) if FUSE_NORM_ACTIVATION else None


class Sequential(Module):
    """Apply the modules in order: ``Sequential(Linear(2, 8), ReLU(), Linear(8, 1))``.

    Also accepts one ``OrderedDict`` of named modules. A BatchNorm or InstanceNorm2d followed
    by ReLU or LeakyReLU runs as one op (the same values, fewer passes over the map:
    ``nn.norm.fused_pair``), unless ``FUSE_NORM_ACTIVATION`` is off.
    """

    def __init__(self, *modules: Module | OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def forward(self, x: Any) -> Any:
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            pair = _fused_pair(modules[i], modules[i + 1]) if i + 1 < len(modules) else None
            if pair is not None:  # a norm and the activation after it, as one op
                x, i = pair(x), i + 2
            else:
                x, i = modules[i](x), i + 1
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Module:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[_check_index(index, len(items), "Sequential")][1]

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self


def _check_index(index: int, length: int, owner: str) -> int:
    if not -length <= index < length:
        raise IndexError(f"{owner}: index {index} out of range for length {length}")
    return index % length


class ModuleList(Module):
    """A list of modules whose parameters are registered (plain lists are invisible to Module)."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Any:
        values = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(values[index])
        return values[_check_index(index, len(values), "ModuleList")]

    def __setitem__(self, index: int, module: Module) -> None:
        self.add_module(str(_check_index(index, len(self), "ModuleList")), module)

    def __delitem__(self, index: int) -> None:
        values = list(self._modules.values())
        del values[_check_index(index, len(values), "ModuleList")]
        self._modules.clear()
        self.extend(values)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        values = list(self._modules.values())
        values.insert(index, module)
        self._modules.clear()
        self.extend(values)

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward(); iterate over its modules")


class ModuleDict(Module):
    """A dict of modules whose parameters are registered, keyed by name."""

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()

    def update(self, modules: Mapping[str, Module]) -> None:
        for key, module in modules.items():
            self.add_module(key, module)

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward(); index it by key")
