"""One generic registry: names -> targets, registered eagerly or lazily as ``"module:attr"``.

Lazy entries keep heavy imports (torch, transformers, TRL) off the start-up path of
``repro --help``/``list``/``status``: a target is imported only when a stage of that kind runs.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable

from repro.errors import InputError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str, target: Any = None) -> Callable | None:
        """``reg.register("x", "pkg.mod:fn")`` or ``@reg.register("x")`` as a decorator."""
        if target is None:
            def deco(fn):
                self._add(name, fn)
                return fn
            return deco
        self._add(name, target)
        return None

    def _add(self, name: str, target: Any) -> None:
        if name in self._entries and self._entries[name] != target:
            raise ValueError(f"{self.kind} {name!r} registered twice: {self._entries[name]!r} and {target!r}")
        self._entries[name] = target

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def origin(self, name: str) -> str:
        target = self._lookup(name)
        if isinstance(target, str):
            return target
        return f"{target.__module__}:{target.__qualname__}"

    def _lookup(self, name: str) -> Any:
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(self.names())}"
            raise InputError(f"unknown {self.kind} {name!r}{hint}")
        return self._entries[name]

    def get(self, name: str) -> Any:
        target = self._lookup(name)
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module), attr)
            self._entries[name] = target
        return target
