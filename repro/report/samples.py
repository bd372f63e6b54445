"""An experiment's evaluations as people read them: which evaluations a manifest holds (benchmark,
table row, judge), their ``samples.jsonl``, and one verdict label per sample.

One module for report.html's sample browser (``repro/report/html.py``), judge agreement
(``repro/report/agreement.py``) and ``repro diff`` (``repro/pipeline/diff.py``), so the three
name a row and a verdict the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.errors import InputError

SAMPLES = "samples.jsonl"
EVAL_KINDS = ("evaluate/benchmark", "evaluate/judge")


def verdict_label(sample: dict[str, Any]) -> str:
    """``unparsed`` | ``unsafe`` (attack success) | ``refusal`` | ``safe`` for a judged sample,
    ``correct`` | ``wrong`` for an extracted answer. The judge's own class (XSTest's labels) is
    left out on purpose, so two judges of different families share one label space."""
    verdict = sample.get("verdict")
    if isinstance(verdict, str):
        return verdict
    if not isinstance(verdict, dict):
        return "none"
    if not verdict.get("parsed", True):
        return "unparsed"
    if verdict.get("unsafe"):
        return "unsafe"
    return "refusal" if verdict.get("refusal") else "safe"


def read_samples(out: Path) -> list[dict[str, Any]]:
    """The samples of an evaluation output directory, in file order."""
    path = Path(out) / SAMPLES
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: missing (not an evaluation output)") from None
    samples = []
    for n, line in enumerate(lines, 1):
        try:
            sample = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{path}: line {n}: invalid JSON") from None
        if not isinstance(sample, dict) or not isinstance(sample.get("id"), str):
            raise InputError(f"{path}: line {n}: expected an object with a string 'id'")
        samples.append(sample)
    return samples


def row_label(label: str, variant: str | None, n_rows: int) -> str:
    """A table row's label for one sweep value: the value alone in a one-row table, else
    "<row> <value>" (``repro/report/tables.py`` labels its rows with it)."""
    if variant is None:
        return label
    return variant if n_rows == 1 else f"{label} {variant}"


@dataclass(frozen=True)
class Evaluation:
    stage: str
    kind: str
    benchmark: str
    row: str  # the table row it fills, else its model stage (and checkpoint)
    model: str
    judge: str | None  # the judge (or extractor) that scored it
    output: Path
    source: str | None = None  # a re-judging: the evaluation whose responses it scored

    @property
    def title(self) -> str:
        return f"{self.row} · {self.judge}" if self.judge else self.row


def table_rows(manifest: dict[str, Any]) -> dict[str, str]:
    """Evaluation stage -> the label of the table row it fills (from each ``report/table``
    stage's declared rows and the inputs it was run with)."""
    labels: dict[str, str] = {}
    declared = (manifest.get("declaration") or {}).get("stages") or {}
    for name, entry in manifest["stages"].items():
        if entry["kind"] != "report/table":
            continue
        rows = ((declared.get(name) or {}).get("params") or {}).get("rows") or []
        for row in rows:
            roles = set((row.get("cells") or {}).values())
            for role, stage in entry["inputs"].items():
                base, sep, variant = role.partition("@")
                if base in roles:
                    labels.setdefault(stage, row_label(str(row["label"]), variant if sep else None, len(rows)))
    return labels


def evaluations(manifest: dict[str, Any], runs_root: Path) -> list[Evaluation]:
    """Every evaluation of a manifest, in the order of the tables' rows (then run order); a
    re-judging takes its source's row and follows it."""
    rows = table_rows(manifest)
    order = {label: i for i, label in enumerate(dict.fromkeys(rows.values()))}
    found: dict[str, Evaluation] = {}
    for name, entry in manifest["stages"].items():
        if entry["kind"] not in EVAL_KINDS:
            continue
        result = (manifest.get("results") or {}).get(name) or {}
        source = entry["inputs"].get("responses") if entry["kind"] == "evaluate/judge" else None
        parent = found.get(source) if source else None
        model = parent.model if parent else entry["inputs"].get("model", "?")
        row = parent.row if parent else rows.get(name, _fallback_row(name, model))
        judge = (result.get("judge") or {}).get("name") if isinstance(result.get("judge"), dict) else None
        found[name] = Evaluation(name, entry["kind"], str(result.get("benchmark") or "?"), row, model,
                                 judge, runs_root / entry["output"], source)
    run = {name: i for i, name in enumerate(found)}
    return sorted(found.values(), key=lambda e: (order.get(e.row, len(order)), run[e.source or e.stage],
                                                 e.source is not None, run[e.stage]))


def benchmark_order(manifest: dict[str, Any]) -> list[str]:
    """Benchmarks in the order the tables' columns name them."""
    declared = (manifest.get("declaration") or {}).get("stages") or {}
    names = [c.get("benchmark") for name, entry in manifest["stages"].items() if entry["kind"] == "report/table"
             for c in ((declared.get(name) or {}).get("params") or {}).get("columns") or []]
    return list(dict.fromkeys(n for n in names if n))


def _fallback_row(stage: str, model: str) -> str:
    _, sep, variant = stage.partition("@")
    return f"{model} {variant}" if sep else model
