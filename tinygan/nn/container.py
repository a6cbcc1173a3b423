"""Containers: Sequential (a pipeline), ModuleList and ModuleDict (registered collections).

Children are named ``"0"``, ``"1"``, ... (or by their keys), which gives state_dict keys such as
``0.weight`` exactly as in PyTorch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tinygan.nn.module import Module


class Sequential(Module):
    """Apply the modules in order: ``Sequential(Linear(2, 8), ReLU(), Linear(8, 1))``.

    Also accepts one ``OrderedDict`` of named modules.
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
        for module in self._modules.values():
            x = module(x)
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
