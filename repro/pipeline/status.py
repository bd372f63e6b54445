"""``repro status``: per stage, done or stale and *why*, without running anything.

A stage is done when its key (computed from current params, code, environment and the
recorded outputs of its inputs) has an intact entry in the store. Otherwise the reason is the
difference between the current key components and those of the key this experiment used last
(from its manifest): a param, an input, the code, a package version, the seed, or missing or
modified outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from repro.config.schema import Experiment
from repro.pipeline import cache
from repro.pipeline.store import Store
from repro.provenance.record import output_digest, read_json


@dataclass
class StageStatus:
    name: str
    kind: str
    state: str  # "done" | "stale" | "missing"
    reasons: list[str] = field(default_factory=list)


def experiment_status(exp: Experiment, runs_dir: Path, executor=None) -> list[StageStatus]:
    """``executor``: where the stages would run (its probe keys them); this process by default."""
    from repro.executors.local import LocalExecutor
    from repro.pipeline.runner import key_components

    executor = executor or LocalExecutor()
    store = Store(runs_dir)
    manifest_path = runs_dir / exp.name / "manifest.json"
    last = read_json(manifest_path) if manifest_path.exists() else {}
    previous = last.get("stages") if isinstance(last, dict) and isinstance(last.get("stages"), dict) else {}
    digests: dict[str, str | None] = {}
    out: list[StageStatus] = []
    for spec in exp.stages.values():
        blocked = [up for up in spec.inputs.values() if digests.get(up) is None]
        if blocked:
            digests[spec.name] = None
            out.append(StageStatus(spec.name, spec.kind, "stale",
                                   [f"upstream {u!r} is not done" for u in blocked]))
            continue
        comps, _ = key_components(executor, spec, {r: digests[u] for r, u in spec.inputs.items()})
        key = cache.stage_key(comps)
        # a quick look through the digest cache; `repro run` re-reads every byte before serving
        statement, why = store.check(key, store.digests)
        if statement is not None:
            digests[spec.name] = output_digest(statement)
            out.append(StageStatus(spec.name, spec.kind, "done"))
            continue
        if why:
            digests[spec.name] = None
            out.append(StageStatus(spec.name, spec.kind, "stale", [why]))
            continue
        digests[spec.name] = None
        out.append(_why_stale(store, spec, comps, previous.get(spec.name)))
    store.digests.save()
    return out


def _why_stale(store: Store, spec, comps: dict, prev_entry: dict | None) -> StageStatus:
    if not isinstance(prev_entry, dict) or not isinstance(prev_entry.get("key"), str):
        return StageStatus(spec.name, spec.kind, "missing", ["never run"])
    prev = store.statement(prev_entry["key"])
    if prev is None:
        return StageStatus(spec.name, spec.kind, "missing", ["outputs missing from the store"])
    return StageStatus(spec.name, spec.kind, "stale", key_reasons(prev, comps))


def key_reasons(old_statement: dict, new_components: dict) -> list[str]:
    """Why a stage's key differs from the one ``old_statement`` was built under: the params,
    inputs, code, seed or environment that changed (``repro status`` and ``repro diff``)."""
    old = old_statement["predicate"]["buildDefinition"]["internalParameters"]["key_components"]
    return cache.diff_components(old, new_components) or ["key changed"]
