"""A lazy plugin registry in the style of lm-evaluation-harness.

Entries are ``"module:Class"`` strings, imported on first use, so listing plugins imports no heavy
library. A duplicate name raises; an unknown name answers with the closest registered names.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from bench.errors import BenchError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, base: str):
        self.kind = kind
        self._base = base
        self._entries: dict[str, str | type[T]] = {}
        self._summaries: dict[str, str] = {}
        self._presets: dict[str, dict] = {}

    def register(self, name: str, target: str | type[T], summary: str = "", preset: dict | None = None) -> None:
        """Add ``name``; a ``preset`` registers a named configuration of an existing class."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered (by {self._entries[name]!r})")
        self._entries[name] = target
        self._summaries[name] = summary
        self._presets[name] = dict(preset or {})

    def preset(self, name: str) -> dict:
        self.check(name)
        return dict(self._presets[name])

    def names(self) -> list[str]:
        return sorted(self._entries)

    def summary(self, name: str) -> str:
        return self._summaries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def check(self, name: str) -> None:
        if name not in self._entries:
            close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else (
                f"registered: {', '.join(self.names())}")
            raise BenchError(f"unknown {self.kind} {name!r}; {hint} (see `bench ls {self.kind}s`)")

    def get(self, name: str) -> type[T]:
        self.check(name)
        target = self._entries[name]
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            cls = getattr(importlib.import_module(module_name), attr)
            base = _load(self._base)
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise TypeError(f"{target} is not a subclass of {self._base}")
            self._entries[name] = cls
            target = cls
        return target


def _load(path: str) -> type:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)
