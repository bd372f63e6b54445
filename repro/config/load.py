"""Load an experiment: safe YAML, profile includes, --set overrides, strict validation.

Precedence, lowest first: includes (``_base/<profile>.yaml``), the experiment file, ``--set``.
A stage's params are its recipe's values (from the profile) overlaid with its own ``params``.
Unknown keys are errors naming the file and the key; "not given" is ``None``, never falsy.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from repro.config.schema import (EXPERIMENT_KEYS, PROFILES, SCHEMA_VERSION, STAGE_KEYS, Experiment,
                                 StageSpec, check_param)
from repro.errors import InputError

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"


def experiments_dir() -> Path:
    """The repository's ``experiments/``, or the folder named by ``$REPRO_EXPERIMENTS_DIR``."""
    env = os.environ.get("REPRO_EXPERIMENTS_DIR")
    return Path(env) if env else EXPERIMENTS_DIR


def list_experiments(root: Path | None = None) -> list[str]:
    root = root or experiments_dir()
    return sorted(p.stem for p in root.glob("*.yaml"))


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise InputError(f"{path}:{where} malformed YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _check_keys(path: Path, where: str, data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InputError(f"{path}: {where}unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _parse_set(item: str) -> tuple[list[str], Any]:
    path, sep, raw = item.partition("=")
    if not sep or not path:
        raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. stage1.params.learning_rate=1e-3")
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        raise InputError(f"--set {item!r}: value is not a YAML scalar") from None
    return path.split("."), value


def _apply_set(data: dict, item: str) -> None:
    keys, value = _parse_set(item)
    if keys[0] not in data.get("stages", {}) and keys[0] not in EXPERIMENT_KEYS:
        raise InputError(f"--set {item!r}: no stage or key named {keys[0]!r}")
    node = data["stages"] if keys[0] in data.get("stages", {}) else data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise InputError(f"--set {item!r}: {key!r} is not a mapping")
    node[keys[-1]] = value


def _includes(root: Path, path: Path, data: dict, profile: str, seen: set[Path]) -> dict[str, Any]:
    """Merge ``data``'s includes, depth first (an include's own includes come before it).

    A file included twice is merged once (so an include cycle ends instead of recursing).
    """
    merged: dict[str, Any] = {}
    includes = data.get("include") or []
    if not isinstance(includes, list):
        raise InputError(f"{path}: key 'include': expected a list of file names")
    for inc in includes:
        inc_path = (root / str(inc).format(profile=profile)).resolve()
        if inc_path in seen:
            continue
        seen.add(inc_path)
        inc_data = read_yaml(inc_path)
        _check_keys(inc_path, "", inc_data, EXPERIMENT_KEYS)
        merged = _merge(merged, _includes(root, inc_path, inc_data, profile, seen))
        merged = _merge(merged, {k: v for k, v in inc_data.items() if k != "include"})
    return merged


def load_experiment(name: str, profile: str, overrides: tuple[str, ...] = (),
                    root: Path | None = None) -> Experiment:
    root = root or experiments_dir()
    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    path = root / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(list_experiments(root)) or "none"
        raise InputError(f"unknown experiment {name!r} (no {path}); known: {known}")
    data = read_yaml(path)
    _check_keys(path, "", data, EXPERIMENT_KEYS)
    if data.get("schema") != SCHEMA_VERSION:
        raise InputError(f"{path}: key 'schema': expected {SCHEMA_VERSION}, got {data.get('schema')!r}")
    merged = _includes(root, path, data, profile, seen=set())
    merged = _merge(merged, {k: v for k, v in data.items() if k != "include"})
    for item in overrides:
        _apply_set(merged, item)
    return _build(path, name, profile, merged)


def _build(path: Path, name: str, profile: str, data: dict) -> Experiment:
    from repro.pipeline.graph import topological_order

    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"{path}: key 'seed': expected an integer, got {seed!r}")
    recipes = data.get("recipes") or {}
    stages_raw = data.get("stages") or {}
    if not isinstance(stages_raw, dict) or not stages_raw:
        raise InputError(f"{path}: key 'stages': expected a non-empty mapping")
    from repro.config.sweep import expand_sweeps

    specs = {}
    for sname, raw in expand_sweeps(path, stages_raw).items():
        specs[sname] = _stage(path, sname, raw, recipes, seed)
    order = topological_order(path, specs)
    results = tuple(data.get("results") or ())
    for r in results:
        if r not in specs and not any(s.startswith(f"{r}@") for s in specs):
            raise InputError(f"{path}: key 'results': no stage named {r!r}")
    data = dict(data, name=data.get("name", name))
    return Experiment(name=name, profile=profile, source=str(path),
                      description=str(data.get("description", "")),
                      stages={s: specs[s] for s in order}, seed=seed, resolved=data, results=results)


def _stage(path: Path, name: str, raw: Any, recipes: dict, default_seed: int) -> StageSpec:
    from repro.stages import STAGE_KINDS

    where = f"stage {name!r}: "
    if not isinstance(raw, dict):
        raise InputError(f"{path}: {where}expected a mapping, got {type(raw).__name__}")
    _check_keys(path, where, raw, STAGE_KEYS)
    kind = raw.get("kind")
    if not isinstance(kind, str):
        raise InputError(f"{path}: {where}key 'kind' is required")
    if kind not in STAGE_KINDS:
        STAGE_KINDS.get(kind)  # raises with close-match suggestions
    params: dict[str, Any] = {}
    recipe = raw.get("recipe")
    if recipe is not None:
        if recipe not in recipes:
            raise InputError(f"{path}: {where}unknown recipe {recipe!r}; known: {', '.join(sorted(recipes)) or 'none'}")
        params.update(copy.deepcopy(recipes[recipe]))
    own = raw.get("params") or {}
    if not isinstance(own, dict):
        raise InputError(f"{path}: {where}key 'params': expected a mapping")
    params.update(copy.deepcopy(own))
    for key, value in params.items():
        check_param(f"{path}: {where.rstrip(': ')}", key, value)
    inputs = raw.get("inputs") or {}
    if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
        raise InputError(f"{path}: {where}key 'inputs': expected a mapping of role -> stage name")
    seed = raw.get("seed", default_seed)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"{path}: {where}key 'seed': expected an integer, got {seed!r}")
    return StageSpec(name=name, kind=kind, params=params, inputs=dict(inputs), seed=seed,
                     description=raw.get("description"))
