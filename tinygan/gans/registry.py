"""Which training loops exist: every :class:`Loop` subclass with a ``name`` in a module of
``tinygan.gans``. A new GAN is one new module there; nothing else needs editing."""

from __future__ import annotations

import importlib
import pkgutil

from tinygan.gans.loop import Loop

__all__ = ["available", "get"]

_SKIP = {"loop", "trainer", "registry", "datasets", "plots"}


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def available() -> dict[str, type[Loop]]:
    """``{name: Loop class}`` of every loop, sorted by name."""
    import tinygan.gans as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _SKIP and not info.name.startswith("_"):
            importlib.import_module(f"tinygan.gans.{info.name}")
    loops = {cls.name: cls for cls in _subclasses(Loop) if cls.__dict__.get("name")}
    return dict(sorted(loops.items()))


def get(name: str) -> type[Loop]:
    """The loop called ``name``; a ValueError lists the known ones otherwise."""
    loops = available()
    if name not in loops:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(loops) or 'none'}")
    return loops[name]
