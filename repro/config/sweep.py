"""Sweeps: one declared stage, many sibling stages, expanded before the graph is built.

``sweep: {weight: [0.25, 0.5]}`` on stage ``merged`` makes ``merged@0.25`` and ``merged@0.5``,
each with ``params.weight`` set. A stage that takes a swept stage as input is expanded over the
same values (``eval`` -> ``eval@0.25`` reading ``merged@0.25``), unless it declares
``gather: true``: then it stays one stage and receives every variant, its role ``r`` becoming
``r@0.25``, ``r@0.5``. One sweep key per stage keeps the names readable; chain stages for grids.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from repro.errors import InputError


def _label(value: Any) -> str:
    return str(value).replace("/", "_")


def expand_sweeps(path: Path, stages: dict[str, dict]) -> dict[str, dict]:
    """Return a new ``{name: raw stage}`` mapping with every sweep expanded, in declaration order.

    Stages are expanded producers first (whatever order they are declared or included in)."""
    variants: dict[str, list[tuple[str, Any]]] = {}  # swept stage -> [(label, value)]
    expanded: dict[str, dict[str, dict]] = {}
    for name in _producers_first(stages):
        expanded[name] = _expand(path, name, stages[name], variants)
    return {k: v for name in stages for k, v in expanded[name].items()}


def _producers_first(stages: dict[str, Any]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()
    for root in stages:
        stack = [(root, False)]
        while stack:
            name, done = stack.pop()
            if done:
                order.append(name)
                continue
            if name in seen:
                continue
            seen.add(name)
            stack.append((name, True))
            raw = stages[name]
            ups = (raw.get("inputs") or {}).values() if isinstance(raw, dict) and isinstance(raw.get("inputs"), dict) else ()
            stack.extend((u, False) for u in reversed(list(ups)) if isinstance(u, str) and u in stages and u not in seen)
    return order


def _expand(path: Path, name: str, raw: Any, variants: dict) -> dict[str, dict]:
    """One declared stage -> its variants (swept, or following a swept input) or itself."""
    if not isinstance(raw, dict):
        return {name: raw}
    sweep = raw.get("sweep")
    inherited = _inherited(path, name, raw, variants)
    out: dict[str, dict] = {}
    if sweep is not None:
        if not isinstance(sweep, dict) or len(sweep) != 1 or not isinstance(next(iter(sweep)), str):
            raise InputError(f"{path}: stage {name!r}: key 'sweep': expected one key -> list of values")
        (key, values), = sweep.items()
        if not isinstance(values, list) or not values:
            raise InputError(f"{path}: stage {name!r}: sweep {key!r}: expected a non-empty list")
        if inherited:
            raise InputError(f"{path}: stage {name!r}: sweeps over a swept input; chain one sweep per stage")
        variants[name] = [(_label(v), v) for v in values]
        for label, value in variants[name]:
            stage = _strip(raw)
            stage["params"] = dict(stage.get("params") or {}, **{key: value})
            out[f"{name}@{label}"] = stage
    elif inherited and not raw.get("gather"):
        variants[name] = variants[inherited[0]]
        for label, _ in variants[name]:
            stage = _strip(raw)
            stage["inputs"] = {r: (f"{u}@{label}" if u in variants and u in inherited else u)
                               for r, u in (raw.get("inputs") or {}).items()}
            out[f"{name}@{label}"] = stage
    elif inherited:
        stage = _strip(raw)
        inputs: dict[str, str] = {}
        for role, up in (raw.get("inputs") or {}).items():
            if up in variants:
                inputs.update({f"{role}@{label}": f"{up}@{label}" for label, _ in variants[up]})
            else:
                inputs[role] = up
        stage["inputs"] = inputs
        out[name] = stage
    else:
        out[name] = _strip(raw)
    return out


def _inherited(path: Path, name: str, raw: dict, variants: dict) -> list[str]:
    inputs = raw.get("inputs") or {}
    if not isinstance(inputs, dict):
        return []
    swept = [u for u in inputs.values() if u in variants]
    if len({tuple(variants[u]) for u in swept}) > 1 and not raw.get("gather"):
        raise InputError(f"{path}: stage {name!r}: inputs swept over different values: {', '.join(swept)}")
    return swept


def _strip(raw: dict) -> dict:
    stage = copy.deepcopy(raw)
    stage.pop("sweep", None)
    stage.pop("gather", None)
    return stage
