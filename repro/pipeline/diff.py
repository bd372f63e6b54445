"""``repro diff RUN_A RUN_B``: what differs between two runs of an experiment, and why.

A run is a ``runs/<experiment>`` directory or a manifest file. Per stage: the same key, or
another key and why (the reasons ``repro status`` gives: ``status.key_reasons``, from the two
statements' key components) and whether the outputs differ. Per metric (each stage's
``metrics.json`` as the manifests record it): both values and the delta. Per benchmark: the
samples whose response or verdict changed (counts and the first few).

The store is content-addressed, so a statement or an output found under its key in either
run's store is the one that key names: a manifest copied out of its runs dir is read against
the other run's store (``cp runs/x/manifest.json before.json; repro run x --set ...;
repro diff before.json runs/x``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from repro.pipeline.graph import topological_order
from repro.pipeline.status import key_reasons
from repro.pipeline.store import Store
from repro.report.report import read_manifest
from repro.report.samples import EVAL_KINDS, evaluations, read_samples, verdict_label

EXAMPLES = 3  # changed samples shown per evaluation
TEXT_WIDTH = 70


def _open(path: Path) -> tuple[dict[str, Any], Path, Path]:
    """(manifest, its file, the runs dir it belongs to)."""
    path = Path(path)
    manifest_path = path / "manifest.json" if path.is_dir() else path
    return read_manifest(path), manifest_path, manifest_path.parent.parent


class _Stores:
    """Both runs' stores, searched by key."""

    def __init__(self, roots: list[Path]):
        self.stores = [Store(r) for r in dict.fromkeys(roots) if (r / "store").is_dir()]

    def statement(self, key: str) -> dict | None:
        return next((s for s in (st.statement(key) for st in self.stores) if s is not None), None)

    def out(self, key: str) -> Path | None:
        return next((st.out(key) for st in self.stores if st.out(key).is_dir()), None)


# ------------------------------------------------------------------ stages
def run_order(*manifests: dict) -> list[str]:
    """Every stage of the manifests in run order (sources first, then topological)."""
    entries = {n: SimpleNamespace(inputs=e["inputs"]) for m in reversed(manifests) for n, e in sorted(m["stages"].items())}
    return topological_order(Path("manifest"), {**{n: e for n, e in entries.items() if not e.inputs}, **entries})


def _stage_rows(a: dict, b: dict, stores: _Stores) -> list[dict[str, Any]]:
    rows = []
    for name in run_order(a, b):
        ea, eb = a["stages"].get(name), b["stages"].get(name)
        row: dict[str, Any] = {"stage": name, "kind": (ea or eb)["kind"], "key_a": ea and ea["key"],
                               "key_b": eb and eb["key"], "reasons": [], "outputs": None}
        if ea is None or eb is None:
            row["state"] = "only_b" if ea is None else "only_a"
        elif ea["key"] == eb["key"]:
            row.update(state="same", outputs="same")
        else:
            old, new = stores.statement(ea["key"]), stores.statement(eb["key"])
            if old is None or new is None:
                row["reasons"] = ["statement not in either store: reasons unknown"]
            else:
                comps = new["predicate"]["buildDefinition"]["internalParameters"]["key_components"]
                row["reasons"] = key_reasons(old, comps)
            row.update(state="changed", outputs="same" if ea["output_digest"] == eb["output_digest"] else "differ")
        rows.append(row)
    return rows


# ------------------------------------------------------------------ metrics
def _metric_rows(a: dict, b: dict) -> list[dict[str, Any]]:
    rows = []
    results_a, results_b = a.get("results") or {}, b.get("results") or {}
    for stage in list(results_a) + [s for s in results_b if s not in results_a]:
        ma = (results_a.get(stage) or {}).get("metrics") or {}
        mb = (results_b.get(stage) or {}).get("metrics") or {}
        for metric in list(ma) + [m for m in mb if m not in ma]:
            va, vb = ma.get(metric), mb.get(metric)
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
            delta = vb - va if numbers else None
            changed = va != vb and not (numbers and math.isnan(va) and math.isnan(vb))
            rows.append({"stage": stage, "metric": metric, "a": va, "b": vb, "delta": delta, "changed": changed})
    return rows


# ------------------------------------------------------------------ samples
def _sample_rows(a: dict, b: dict, stages: list[dict], stores: _Stores, examples: int) -> list[dict[str, Any]]:
    changed = {r["stage"] for r in stages if r["state"] == "changed" and r["outputs"] == "differ"}
    evals = {e.stage: e for e in evaluations(b, Path("."))}
    rows = []
    for name in [s for s in run_order(b) if s in changed and b["stages"][s]["kind"] in EVAL_KINDS]:
        ev = evals[name]
        out_a, out_b = stores.out(a["stages"][name]["key"]), stores.out(b["stages"][name]["key"])
        row: dict[str, Any] = {"benchmark": ev.benchmark, "stage": name, "row": ev.row}
        if out_a is None or out_b is None:
            rows.append({**row, "available": False})
            continue
        before = {s["id"]: s for s in read_samples(out_a)}
        after = read_samples(out_b)
        found = {"n": len(after), "response_changed": 0, "verdict_changed": 0,
                 "only_a": len(set(before) - {s["id"] for s in after}), "only_b": 0, "examples": []}
        for s in after:
            old = before.get(s["id"])
            if old is None:
                found["only_b"] += 1
                continue
            response = old.get("response") != s.get("response")
            verdict = (verdict_label(old), verdict_label(s))
            found["response_changed"] += response
            found["verdict_changed"] += verdict[0] != verdict[1]
            if (response or verdict[0] != verdict[1]) and len(found["examples"]) < examples:
                found["examples"].append({"id": s["id"], "response_a": old.get("response"),
                                          "response_b": s.get("response"), "verdict_a": verdict[0],
                                          "verdict_b": verdict[1]})
        rows.append({**row, "available": True, **found})
    return sorted(rows, key=lambda r: r["benchmark"])


def diff_runs(run_a: Path, run_b: Path, examples: int = EXAMPLES) -> dict[str, Any]:
    a, path_a, root_a = _open(run_a)
    b, path_b, root_b = _open(run_b)
    stores = _Stores([root_a, root_b])
    stages = _stage_rows(a, b, stores)
    metrics = _metric_rows(a, b)
    samples = _sample_rows(a, b, stages, stores, examples)
    identical = (all(r["state"] == "same" for r in stages) and not any(m["changed"] for m in metrics))
    return {"a": {"manifest": str(path_a), "experiment": a.get("experiment"), "manifest_sha256": a.get("manifest_sha256")},
            "b": {"manifest": str(path_b), "experiment": b.get("experiment"), "manifest_sha256": b.get("manifest_sha256")},
            "identical": identical, "stages": stages, "metrics": metrics, "samples": samples}


# ------------------------------------------------------------------ text
def _short(text: Any) -> str:
    text = json.dumps(text) if not isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    return text if len(text) <= TEXT_WIDTH else text[: TEXT_WIDTH - 2] + "…\""


def _value(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else json.dumps(v)


def format_diff(d: dict[str, Any]) -> str:
    lines = [f"A: {d['a']['manifest']} ({d['a']['experiment']}, manifest {str(d['a']['manifest_sha256'])[:12]})",
             f"B: {d['b']['manifest']} ({d['b']['experiment']}, manifest {str(d['b']['manifest_sha256'])[:12]})"]
    if d["identical"]:
        return "\n".join(lines + [f"no difference: {len(d['stages'])} stages with the same keys and outputs, "
                                  f"{len(d['metrics'])} metrics equal"])
    count = {s: sum(r["state"] == s for r in d["stages"]) for s in ("same", "changed", "only_a", "only_b")}
    lines.append(f"stages: {count['same']} same, {count['changed']} changed, {count['only_a']} only in A, "
                 f"{count['only_b']} only in B")
    width = max((len(r["stage"]) for r in d["stages"] if r["state"] != "same"), default=0)
    for r in d["stages"]:
        if r["state"] == "changed":
            lines.append(f"  {r['stage']:<{width}}  outputs {r['outputs']:<6}  ({'; '.join(r['reasons'])})")
        elif r["state"] != "same":
            lines.append(f"  {r['stage']:<{width}}  {r['state'].replace('_', ' in ')}")
    changed = [m for m in d["metrics"] if m["changed"]]
    lines.append(f"metrics: {len(changed)} of {len(d['metrics'])} changed")
    for m in changed:
        delta = f"  ({m['delta']:+.4f})" if m["delta"] is not None else ""
        lines.append(f"  {m['stage']}  {m['metric']}: {_value(m['a'])} -> {_value(m['b'])}{delta}")
    if d["samples"]:
        lines.append("samples:")
    for s in d["samples"]:
        head = f"  {s['benchmark']}: {s['stage']} ({s['row']})"
        if not s["available"]:
            lines.append(f"{head}: outputs not in either store")
            continue
        lines.append(f"{head}: {s['response_changed']} of {s['n']} responses changed, "
                     f"{s['verdict_changed']} verdicts changed"
                     + (f", {s['only_a']} only in A, {s['only_b']} only in B" if s["only_a"] or s["only_b"] else ""))
        for e in s["examples"]:
            verdict = (f"{e['verdict_a']} -> {e['verdict_b']}" if e["verdict_a"] != e["verdict_b"]
                       else f"{e['verdict_a']} (same)")
            lines.append(f"    {e['id']}: verdict {verdict}; "
                         f"response {_short(e['response_a'])} -> {_short(e['response_b'])}")
    return "\n".join(lines)
