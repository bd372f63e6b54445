"""Reference values (from the paper, with sources) and the tolerance check against them."""

from __future__ import annotations

from pathlib import Path

import yaml

from repro.errors import InputError

REFERENCES_FILE = Path(__file__).with_name("references.yaml")
REQUIRED = ("experiment", "stage", "metric", "value", "tolerance", "source")
SOURCE_FIELDS = ("paper", "table", "row", "column")


def load_references(path: Path = REFERENCES_FILE) -> list[dict]:
    data = yaml.safe_load(path.read_text()) or {}
    refs = data.get("references") or []
    for i, ref in enumerate(refs):
        for key in REQUIRED:
            if key not in ref:
                raise InputError(f"{path}: references[{i}]: field {key!r} is required")
        missing = [k for k in SOURCE_FIELDS if not (ref["source"] or {}).get(k)]
        if missing:
            raise InputError(f"{path}: references[{i}]: source needs {', '.join(missing)}")
    return refs


def reference_for(refs: list[dict], experiment: str, stage: str, metric: str) -> dict | None:
    for ref in refs:
        if (ref["experiment"], ref["stage"], ref["metric"]) == (experiment, stage, metric):
            return ref
    return None


def check_references(manifest: dict):
    """Yield (level, check name, detail) for every result metric that has a reference."""
    refs = load_references()
    for stage, result in manifest.get("results", {}).items():
        for metric, value in (result.get("metrics") or {}).items():
            ref = reference_for(refs, manifest["experiment"], stage, metric)
            if ref is None:
                continue
            name = f"reference {stage}.{metric}"
            if value is None:  # a table cell without a number (report/tables.py) cannot match the paper
                yield "fail", name, f"no value vs {ref['value']:.4f} (no judgement parsed)"
                continue
            delta = value - ref["value"]
            detail = f"{value:.4f} vs {ref['value']:.4f} (delta {delta:+.4f}, tolerance {ref['tolerance']})"
            yield ("ok" if abs(delta) <= ref["tolerance"] else "fail"), name, detail
