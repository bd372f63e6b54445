"""``repro verify``: the manifest against the experiment it claims to run.

A manifest's seal only shows the manifest was not edited *without resealing*. These checks tie
it to things a reseal cannot change alone:

- its recorded declaration, resolved again from the experiment file by this checkout's loader
  (same profile and ``--set`` items, recorded in ``declared``), must have the same digest;
- every stage that declaration yields is in the manifest (and nothing else), with the declared
  kind and inputs, and its statement was keyed by the declared kind, params and seed;
- each stage entry repeats its statement's protocol choices and external inputs;
- every stage whose statement lists a ``metrics.json`` has its result in the manifest, and the
  declared result stages are the manifest's.

Forging a consistent manifest *and* statements *and* store keys is what signing (issue 22) is for.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.provenance.digest import sha256_json
from repro.provenance.record import subject_files



def _load(name: str, profile: str, overrides: list[str], root: Path):
    from repro.config.load import load_experiment

    return load_experiment(name, profile, tuple(overrides), root=root)


def resolve_again(manifest: dict) -> tuple[Any, str]:
    """(the experiment as this checkout resolves the recorded source, "") or (None, why not)."""
    from repro.config.load import experiments_dir

    declared = manifest["declared"]
    source = Path(declared["source"])
    root = source.parent if source.is_file() else experiments_dir()
    try:
        return _load(source.stem, manifest["profile"], declared["overrides"], root), ""
    except InputError as exc:
        return None, str(exc)


def rebuild(manifest: dict):
    """The recorded declaration, loaded as an experiment file of its own (it is fully resolved:
    no includes), so the loader expands sweeps and resolves recipes exactly as for the run. The
    stages the loader derived (from ``tables:`` and ``benchmark_data:``) are left out of the file
    and derived again; the recorded ``--set`` items are applied again (for derived stages; on the
    rest they are already in the declaration, and setting a value twice changes nothing)."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="repro-verify-") as tmp:
        text = yaml.safe_dump(_as_declared(manifest["declaration"]), sort_keys=False)
        (Path(tmp) / "declared.yaml").write_text(text)
        return _load("declared", manifest["profile"], manifest["declared"]["overrides"], Path(tmp))


def _as_declared(declaration: dict) -> dict:
    """``declaration`` without the stages ``repro.config.tables.derive`` adds: each table's
    report stage, its ``eval~`` stages, and benchmark data stages equal to the template's."""
    from repro.config.tables import SEP
    from repro.evaluate.benchmarks import load_all

    out = copy.deepcopy(declaration)
    stages, tables = out.get("stages"), out.get("tables")
    if not isinstance(stages, dict) or not isinstance(tables, dict):
        return out
    template, benchmarks = out.get("benchmark_data"), load_all()
    for name, table in tables.items():  # the manifest sorts keys; a table's rows keep their order
        rows = ((stages.get(name) or {}).get("params") or {}).get("rows")
        if isinstance(table, dict) and isinstance(table.get("rows"), dict) and isinstance(rows, list):
            order = [r.get("label") for r in rows if isinstance(r, dict)]
            table["rows"] = dict(sorted(table["rows"].items(),
                                        key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    for name in list(stages):
        derived_data = isinstance(template, dict) and name in benchmarks and stages[name] == {
            **template, "params": {"dataset": name, **(template.get("params") or {})}}
        if name in tables or SEP in name or derived_data:
            del stages[name]
    return out


def _trimmed(exp, manifest: dict):
    """The rebuilt experiment cut to what its results and the manifest's stages read from: which
    stages the experiment file declared itself (kept even when no result needs them) is not
    recorded, and an include's unused stages are not run."""
    import dataclasses

    todo, keep = [*exp.results, *manifest["stages"]], set()
    while todo:
        name = todo.pop()
        if name in exp.stages and name not in keep:
            keep.add(name)
            todo.extend(u for u in exp.stages[name].inputs.values() if isinstance(u, str))
        todo.extend(s for s in exp.stages if s.startswith(f"{name}@") and s not in keep)
    return dataclasses.replace(exp, stages={n: s for n, s in exp.stages.items() if n in keep})


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key, ...) != b.get(key, ...):
                return _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
    return where or "(top level)"


def check_declaration(v, manifest: dict, statements: dict[str, dict]) -> None:
    """``v``: the Verification to report into; ``statements``: stage name -> its verified
    statement (stages whose statement failed its own checks are absent)."""
    declared = manifest["declared"]
    if sha256_json(manifest["declaration"]) != declared["sha256"]:
        v.fail("declaration", "differs from its recorded digest (edited)")
    now, why = resolve_again(manifest)
    if now is None:
        v.warn("declaration", f"not checked against its experiment file: {why}")
    elif sha256_json(now.resolved) != declared["sha256"]:
        sets = " ".join(f"--set {s}" for s in declared["overrides"]) or "no --set"
        v.fail("declaration", f"differs from {now.source} as this checkout resolves it (profile "
               f"{manifest['profile']}, {sets}), first at "
               f"{_first_difference(manifest['declaration'], now.resolved)}")
    else:
        v.ok("declaration", now.source)
    if now is not None and sha256_json(now.resolved) == declared["sha256"] == sha256_json(manifest["declaration"]):
        exp = now  # the same declaration, in the file's own key order
    else:
        try:
            exp = _trimmed(rebuild(manifest), manifest)
        except InputError as exc:
            v.fail("declaration", f"does not load: {exc}")
            return
    _check_stages(v, manifest, exp, statements)
    _check_result_set(v, manifest, exp, statements)


def _check_stages(v, manifest: dict, exp, statements: dict[str, dict]) -> None:
    from repro.pipeline.cache import EXECUTION_ONLY_PARAMS

    entries = manifest["stages"]
    for name in sorted(exp.stages.keys() - entries.keys()):
        v.fail(f"stage {name}", "declared, but missing from the manifest")
    for name in sorted(entries.keys() - exp.stages.keys()):
        v.fail(f"stage {name}", "in the manifest, but not declared")
    for name, spec in exp.stages.items():
        entry, statement = entries.get(name), statements.get(name)
        if entry is None:
            continue
        if entry["kind"] != spec.kind or entry["inputs"] != dict(spec.inputs):
            v.fail(f"stage {name}", "kind or inputs differ from the declaration")
        if statement is None:
            continue
        build = statement["predicate"]["buildDefinition"]
        comps = build["internalParameters"]["key_components"]
        params = {k: p for k, p in spec.params.items() if k not in EXECUTION_ONLY_PARAMS}
        if comps["kind"] != spec.kind or comps["params"] != params or comps.get("seed") != spec.seed:
            v.fail(f"stage {name}", "its statement was not built from the declared kind, params and "
                   f"seed (first difference: params.{_first_difference(comps['params'], params)})")
        if entry["protocol_choices"] != build["internalParameters"]["protocol_choices"]:
            v.fail(f"stage {name}", "protocol choices differ from its statement's")
        external = [d for d in build["resolvedDependencies"]
                    if not d["name"].startswith(("input:", "code:", "environment", "manifest.lock"))]
        if entry["external"] != external:
            v.fail(f"stage {name}", "external inputs differ from its statement's")


def _check_result_set(v, manifest: dict, exp, statements: dict[str, dict]) -> None:
    results = manifest["results"]
    if list(manifest["result_stages"]) != list(exp.results):
        v.fail("results", f"result stages {manifest['result_stages']} differ from the declared {list(exp.results)}")
    for name, statement in statements.items():
        if "metrics.json" in subject_files(statement) and name not in results:
            v.fail(f"result {name}", "missing from the manifest (the stage wrote metrics.json)")
    for declared in exp.results:
        if not any(r == declared or r.startswith(f"{declared}@") for r in results):
            v.fail(f"result {declared}", "declared, but no result in the manifest")
