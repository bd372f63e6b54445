"""Load an experiment: bounded YAML 1.2, profile includes, --set overrides, derived tables,
strict validation.

Precedence, lowest first: includes (``_base/<profile>.yaml`` and what it includes), the
experiment file, ``--set``; a stage declared again with another kind is replaced, not merged. A
stage's params are its recipe's values (from the profile) overlaid
with its own ``params``, checked against its kind's descriptor (``repro/stages/``). Tables
(``tables:``) become evaluation and report stages (``repro/config/tables.py``). Stages an
experiment takes from its includes are kept only if a result or one of its own stages needs
them, so a profile can declare every source once. Unknown keys are errors naming the file and
the key; "not given" is ``None``, never falsy.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from repro.config.schema import (EXPERIMENT_KEYS, NAME, PROFILES, SCHEMA_VERSION, STAGE_KEYS, STAGE_NAME,
                                 Experiment, StageSpec, check_name, check_seed)
from repro.config.sweep import expand_sweeps
from repro.config.tables import derive
from repro.config import yamlio
from repro.config.yamlio import parse_set_value
from repro.errors import InputError

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"
__all__ = ["experiments_dir", "list_experiments", "load_experiment", "read_yaml"]


def experiments_dir() -> Path:
    """The repository's ``experiments/``, or the folder named by ``$REPRO_EXPERIMENTS_DIR``."""
    env = os.environ.get("REPRO_EXPERIMENTS_DIR")
    return Path(env) if env else EXPERIMENTS_DIR


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping read with PyYAML's own types (YAML 1.1), bounded: for files that are not
    experiments (``manifest.lock``: unquoted hex revisions must stay strings as they always were)."""
    import yaml

    return yamlio.read_yaml(path, loader_class=yaml.SafeLoader)


def list_experiments(root: Path | None = None) -> list[str]:
    root = root or experiments_dir()
    return sorted(p.stem for p in root.glob("*.yaml"))


def _check_keys(path: Path, where: str, data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(map(str, data)) - allowed)
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


def _merge_decl(base: dict, over: dict) -> dict:
    """``_merge`` of two declarations, except that a stage declared again with another ``kind``
    replaces the earlier one instead of inheriting its params and inputs: a profile that includes
    another swaps a source that way (the rehearsal builds what the paper profile fetches)."""
    stages, over_stages = base.get("stages"), over.get("stages")
    out = _merge(base, over)
    if isinstance(stages, dict) and isinstance(over_stages, dict):
        for name, raw in over_stages.items():
            old = stages.get(name)
            if isinstance(raw, dict) and isinstance(old, dict) and raw.get("kind", old.get("kind")) != old.get("kind"):
                out["stages"][name] = copy.deepcopy(raw)
    return out


def _apply_set(data: dict, item: str, stage_names) -> str | None:
    """Apply one ``--set KEY=VALUE`` to ``data``; return the stage it targets (None: a top-level
    key), or raise if its head names neither a stage in ``stage_names`` nor a top-level key."""
    path, sep, raw = item.partition("=")
    if not sep or not path:
        raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. stage2.params.learning_rate=1e-3")
    value = parse_set_value(item, raw)
    keys = path.split(".")
    if not all(keys):
        raise InputError(f"--set {item!r}: empty key in {path!r}")
    if keys[0] not in stage_names and keys[0] not in EXPERIMENT_KEYS:
        raise InputError(f"--set {item!r}: no stage or key named {keys[0]!r}")
    is_stage = keys[0] in stage_names
    node = data["stages"] if is_stage else data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise InputError(f"--set {item!r}: {key!r} is not a mapping")
    node[keys[-1]] = value
    return keys[0] if is_stage else None


def _includes(root: Path, path: Path, data: dict, profile: str, seen: set[Path]) -> dict[str, Any]:
    """Merge ``data``'s includes, depth first (an include's own includes come before it).

    A file included twice is merged once (so an include cycle ends instead of recursing).
    """
    merged: dict[str, Any] = {}
    includes = data.get("include") or []
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise InputError(f"{path}: key 'include': expected a list of file names")
    for inc in includes:
        inc_path = (root / inc.format(profile=profile)).resolve()
        if not inc_path.is_relative_to(root.resolve()):
            raise InputError(f"{path}: include {inc!r}: outside the experiments folder {root}")
        if inc_path in seen:
            continue
        seen.add(inc_path)
        inc_data = yamlio.read_yaml(inc_path)
        _check_keys(inc_path, "", inc_data, EXPERIMENT_KEYS)
        merged = _merge_decl(merged, _includes(root, inc_path, inc_data, profile, seen))
        merged = _merge_decl(merged, {k: v for k, v in inc_data.items() if k != "include"})
    return merged


def load_experiment(name: str, profile: str, overrides: tuple[str, ...] = (),
                    root: Path | None = None) -> Experiment:
    root = root or experiments_dir()
    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if not isinstance(name, str) or not NAME.match(name) or ".." in name:
        raise InputError(f"experiment {name!r}: expected a name of letters, digits, '_' and '-'")
    path = root / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(list_experiments(root)) or "none"
        raise InputError(f"unknown experiment {name!r} (no {path}); known: {known}")
    data = yamlio.read_yaml(path)
    _check_keys(path, "", data, EXPERIMENT_KEYS)
    if data.get("schema") != SCHEMA_VERSION:
        raise InputError(f"{path}: key 'schema': expected {SCHEMA_VERSION}, got {data.get('schema')!r}")
    own = set(data.get("stages") or {}) if isinstance(data.get("stages"), dict) else set()
    merged = _merge_decl(_includes(root, path, data, profile, seen=set()),
                         {k: v for k, v in data.items() if k != "include"})
    if not isinstance(merged.get("stages", {}), dict):
        raise InputError(f"{path}: key 'stages': expected a mapping")
    merged.setdefault("stages", {})
    targets, later = set(), []
    for item in overrides:  # stages and keys declared in files first; derived stages after
        head = item.partition("=")[0].split(".")[0]
        if head in merged["stages"] or head in EXPERIMENT_KEYS:
            targets.add(_apply_set(merged, item, merged["stages"]))
        else:
            later.append(item)
    tables = derive(path, merged)
    for item in later:
        targets.add(_apply_set(merged, item, merged["stages"]))
    return _build(path, name, profile, merged, own, tables, targets - {None})


def _build(path: Path, name: str, profile: str, data: dict, own: set[str], tables: dict,
           targets: set[str]) -> Experiment:
    from repro.pipeline.graph import topological_order

    seed = check_seed(str(path), data.get("seed", 0))
    recipes = data.get("recipes") or {}
    stages_raw = data["stages"]
    if not stages_raw:
        raise InputError(f"{path}: key 'stages': expected a non-empty mapping")
    derived = _derived(tables)
    for sname in stages_raw:
        check_name(str(path), "stage name", sname, STAGE_NAME if sname in derived else NAME)
    results = _results(path, data, tables)
    keep = _needed(stages_raw, own | set(results))
    lost = sorted(t for t in targets if t not in keep)
    if lost:
        raise InputError(f"--set {lost[0]}...: stage {lost[0]!r} is not part of experiment {name!r} "
                         "(nothing it runs needs it)")
    specs = {}
    for sname, raw in expand_sweeps(path, {k: v for k, v in stages_raw.items() if k in keep}).items():
        specs[sname] = _stage(path, check_name(str(path), "stage name", sname, STAGE_NAME), raw, recipes, seed)
    # sources (no inputs) first, then the rest, each in declaration order: the run order reads
    # data -> models -> training -> evaluation -> reports, whatever file declared a stage
    order = topological_order(path, {**{n: v for n, v in specs.items() if not v.inputs}, **specs})
    from repro.stages import describe

    for sname in order:  # the graph is sound; now each stage's params, in run order
        describe(specs[sname].kind).check(specs[sname].params, f"{path}: stage {sname!r}")
    for r in results:
        if r not in specs and not any(s.startswith(f"{r}@") for s in specs):
            raise InputError(f"{path}: key 'results': no stage named {r!r}")
    data = dict(data, name=data.get("name", name))
    return Experiment(name=name, profile=profile, source=str(path),
                      description=str(data.get("description", "")),
                      stages={s: specs[s] for s in order}, seed=seed, resolved=data, results=results,
                      tables=tables)


def _derived(tables: dict) -> set[str]:
    names = set(tables)
    for table in tables.values():
        for row in table.rows:
            names.update(row.stages.values())
        names.update(table.rejudged + ((table.agreement,) if table.agreement else ()))
    return names


def _results(path: Path, data: dict, tables: dict) -> tuple[str, ...]:
    """The declared ``results``, then every table (and its judge agreement) not listed there."""
    declared = data.get("results") or []
    if not isinstance(declared, list) or not all(isinstance(r, str) for r in declared):
        raise InputError(f"{path}: key 'results': expected a list of stage names")
    derived = [n for t in tables.values() for n in (t.name, t.agreement) if n]
    return tuple(declared) + tuple(n for n in derived if n not in declared)


def _needed(stages: dict, roots: set[str]) -> set[str]:
    """``roots`` and every stage they read from, transitively (names before sweep expansion)."""
    keep: set[str] = set()
    todo = [r for r in roots if r in stages]
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        raw = stages[name]
        inputs = raw.get("inputs") if isinstance(raw, dict) else None
        todo.extend(u for u in (inputs or {}).values() if isinstance(u, str) and u in stages)
    return keep


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
        try:
            STAGE_KINDS.get(kind)  # raises with close-match suggestions
        except InputError as exc:
            raise InputError(f"{path}: {where}{exc}") from None
    params: dict[str, Any] = {}
    recipe = raw.get("recipe")
    if recipe is not None:
        if not isinstance(recipe, str) or recipe not in recipes:
            raise InputError(f"{path}: {where}unknown recipe {recipe!r}; known: {', '.join(sorted(recipes)) or 'none'}")
        if not isinstance(recipes[recipe], dict):
            raise InputError(f"{path}: recipes: {recipe}: expected a mapping of params")
        params.update(copy.deepcopy(recipes[recipe]))
    own = raw.get("params") or {}
    if not isinstance(own, dict):
        raise InputError(f"{path}: {where}key 'params': expected a mapping")
    params.update(copy.deepcopy(own))
    inputs = raw.get("inputs") or {}
    if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
        raise InputError(f"{path}: {where}key 'inputs': expected a mapping of role -> stage name")
    seed = check_seed(f"{path}: {where.rstrip(': ')}", raw.get("seed", default_seed))
    return StageSpec(name=name, kind=kind, params=params, inputs=dict(inputs), seed=seed,
                     description=raw.get("description"))
