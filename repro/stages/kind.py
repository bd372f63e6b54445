"""A stage kind's descriptor: every fact about one kind, declared in one place.

``Kind`` says which function runs the kind, the parameters it reads (``Param``: name, type,
default, where the default comes from, allowed range), which container image runs it, whether
it needs GPUs, how large its output is, which cost model sizes it, and what ``report.md``
embeds from its output. The loader validates every stage's params against its kind here, once,
before anything runs; stage code reads params that were already checked (``resolve`` fills the
declared defaults). Import-light: no torch, no transformers.

Adding a parameter is one line in the kind's declaration (``repro/stages/<step>.py``)::

    P("group_by_modality_length", bool, False, source="transformers:TrainingArguments"),
"""

from __future__ import annotations

import difflib
import functools
import importlib
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from repro.errors import InputError

REQUIRED = object()  # a Param default: the stage must set it
IMAGES = ("train", "eval")  # which pinned image runs the kind (docs/executors.md)
GPUS = ("none", "one", "launch")  # none; one GPU; as many as the `launch` config says
COSTS = ("train", "evaluate", "filter", "forward")  # the cost models of repro/report/estimates.py
_BOUNDS = re.compile(r"^\s*(?:(>=|>|<=|<)\s*(-?[\d.e+-]+)|([\[(])\s*(-?[\d.e+-]+)\s*,\s*(-?[\d.e+-]+)\s*([\])]))\s*$")
_TYPE_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a mapping"}


@dataclass(frozen=True)
class Param:
    name: str
    types: tuple[type, ...]  # float accepts integers; bool is never a number
    default: Any = None  # None = unset (the stage decides); REQUIRED = must be given
    source: str = "kit"  # where the default comes from: "module:attr" (checked by a test) or prose
    bounds: str | None = None  # ">0", ">=1", "[0,1)", "(0,1]" ...
    choices: tuple | str | None = None  # values, or "module:attr" naming a registry/mapping
    fields: tuple["Param", ...] | None = None  # a mapping with these keys only
    item: type | None = None  # element type of a list
    doc: str = ""

    def describe(self) -> str:
        names = "|".join(_TYPE_NAMES.get(t, t.__name__) for t in self.types)
        default = "required" if self.default is REQUIRED else repr(self.default)
        rng = f" {self.bounds}" if self.bounds else ""
        return f"{self.name}: {names}{rng} = {default} ({self.source})"


def P(name: str, types: type | tuple[type, ...], default: Any = None, bounds: str | None = None, *,
      source: str = "kit", choices: tuple | str | None = None, fields: tuple[Param, ...] | None = None,
      item: type | None = None, doc: str = "") -> Param:
    """One parameter declaration, on one line (see the module docstring)."""
    if bounds is not None and not _BOUNDS.match(bounds):
        raise ValueError(f"param {name}: bounds {bounds!r} not understood")
    return Param(name, types if isinstance(types, tuple) else (types,), default, source, bounds,
                 choices, fields, item, doc)


@dataclass(frozen=True)
class Kind:
    name: str  # "<pipeline step>/<name>"
    target: str  # "module:function" taking a StageContext
    params: tuple[Param, ...] | None  # None: undeclared (a kind registered bare, e.g. by a test)
    image: str = "train"
    gpus: str = "none"
    disk_gb: float = 0.0  # output size in the paper profile (GB; doctor's disk check)
    cost: str | None = None
    report: tuple[str | None, tuple[str, ...]] = (None, ())  # report.md: (text file, images)
    doc: str = ""

    def __post_init__(self):
        if self.image not in IMAGES or self.gpus not in GPUS or self.cost not in (None, *COSTS):
            raise ValueError(f"kind {self.name}: image/gpus/cost not one of {IMAGES}/{GPUS}/{COSTS}")

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params or () if p.name == name), None)

    def check(self, params: dict[str, Any], where: str) -> None:
        """Raise ``InputError`` (one line, naming ``where`` and the param) for an unknown param,
        a wrong type, a non-finite number, a value out of range or a missing required one."""
        if self.params is None:
            _finite(params, where, "")
            return
        _check_mapping(self.params, params, where, "", f"kind {self.name}")
        for p in self.params:
            if p.default is REQUIRED and params.get(p.name) is None:
                raise InputError(f"{where}: param {p.name!r} is required by kind {self.name}")

    def resolve(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        """Every declared param: the given value, else the declared default (after ``check``)."""
        self.check(params, where)
        out = {p.name: (None if p.default is REQUIRED else p.default) for p in self.params or ()}
        out.update({k: v for k, v in params.items() if v is not None})
        return out


# ------------------------------------------------------------------ validation
def _check_mapping(declared: tuple[Param, ...], values: dict, where: str, prefix: str, owner: str) -> None:
    by_name = {p.name: p for p in declared}
    for key, value in values.items():
        p = by_name.get(key)
        if p is None:
            close = difflib.get_close_matches(str(key), by_name, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(by_name)) or 'none'}"
            raise InputError(f"{where}: unknown param {prefix + str(key)!r} for {owner}{hint}")
        if value is not None:
            _check_value(p, value, where, prefix + p.name)


def _check_value(p: Param, value: Any, where: str, label: str) -> None:
    bad = f"{where}: param {label!r}:"
    if not _is(value, p.types):
        want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in p.types)
        raise InputError(f"{bad} expected {want}, got {value!r}")
    _finite(value, where, label)
    if p.item is not None and isinstance(value, list) and not all(_is(v, (p.item,)) for v in value):
        raise InputError(f"{bad} expected a list of {_TYPE_NAMES.get(p.item, p.item.__name__)}, got {value!r}")
    if p.bounds and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not _within(value, p.bounds):
            raise InputError(f"{bad} must be {_bounds_text(p.bounds)}, got {value!r}")
    if p.choices is not None and not isinstance(value, dict):
        known = _choices(p.choices)
        for v in value if isinstance(value, list) else [value]:
            if v not in known:
                close = difflib.get_close_matches(str(v), [str(k) for k in known], n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(map(str, known))}"
                raise InputError(f"{bad} unknown value {v!r}; {hint}")
    if p.fields is not None and isinstance(value, dict):
        _check_mapping(p.fields, value, where, label + ".", f"param {label!r}")


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _finite(value: Any, where: str, label: str) -> None:
    """No NaN or infinity anywhere, nested mappings and lists included."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where}: param {label!r}: must be finite, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, where, f"{label}.{k}" if label else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, where, f"{label}[{i}]")


def _within(value: float, bounds: str) -> bool:
    m = _BOUNDS.match(bounds)
    if m.group(1):
        op, limit = m.group(1), float(m.group(2))
        return {">": value > limit, ">=": value >= limit, "<": value < limit, "<=": value <= limit}[op]
    low, high = float(m.group(4)), float(m.group(5))
    return ((value >= low) if m.group(3) == "[" else (value > low)) and \
           ((value <= high) if m.group(6) == "]" else (value < high))


def _bounds_text(bounds: str) -> str:
    m = _BOUNDS.match(bounds)
    return f"{m.group(1)} {m.group(2)}" if m.group(1) else f"in {bounds.replace(' ', '')}"


def _choices(spec: tuple | str) -> list:
    """Allowed values: a tuple, or "module:attr" naming a registry (its names), a mapping (its
    keys), a sequence, or a function returning one of those (called once per process)."""
    if isinstance(spec, tuple):
        return list(spec)
    module, _, attr = spec.partition(":")
    found: Any = getattr(importlib.import_module(module), attr)
    names: Callable | None = getattr(found, "names", None)
    if callable(names):
        return list(names())
    return list(_called(spec)) if callable(found) else list(found)


@functools.lru_cache(maxsize=None)
def _called(spec: str) -> tuple:
    module, _, attr = spec.partition(":")
    return tuple(getattr(importlib.import_module(module), attr)())
