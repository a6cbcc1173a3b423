"""Counting which implementation functions a call went through, for the tests that check a
fast path was really taken."""

from __future__ import annotations

from types import ModuleType


def count_calls(monkeypatch, module: ModuleType, names: tuple[str, ...]) -> list[str]:
    """Wrap ``module.<name>`` for each name so that every call appends the name to the
    returned list (the originals still run)."""
    calls: list[str] = []
    for name in names:
        original = getattr(module, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    return calls
