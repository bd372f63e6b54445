"""Stage ``report/table``: rows x columns of evaluation metrics, one JSON rendered to Markdown,
CSV and LaTeX (never read back), plus an optional figure (``repro/report/figures.py``).

The loader writes its params from an experiment's ``tables:`` (``repro/config/tables.py``):
- ``columns``: ``[{label, benchmark, metric, units}]``; ``units`` decides the format: ``rate`` (a
  fraction) is shown in percent, ``points`` as is;
- ``rows``: ``[{label, cells: {column label: input role}}]``. A role bound directly gives one row;
  a role gathered over a sweep (``role@<value>``, e.g. checkpoints or merge ratios) gives one row
  per value, labelled with the value (or "<row> <value>" when the table has several rows);
- ``plot``: ``{kind: lines|tradeoff, ...}`` (optional; a lines plot's x is the last number in
  each row's label: ``step-200`` -> 200, so a plain row "step-0" can join swept checkpoints),
  ``title``.
Every cell carries its reference value from ``references.yaml`` where one exists, else "no
reference" (never a made-up number), and the judge that scored it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from repro.errors import InputError
from repro.report.figures import draw
from repro.report.references import load_references, reference_for
from repro.report.samples import row_label

_NUMBER = re.compile(r"\d+(?:\.\d+)?")  # steps and ratios are non-negative; "step-20" is 20
# LaTeX's special characters, each replaced by its text-mode command (a label can never run TeX)
_LATEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
          "^": r"\textasciicircum{}", "_": r"\_", "~": r"\textasciitilde{}", "%": r"\%"}


# ------------------------------------------------------------------ reading the evaluations
def label_number(label: str) -> float | None:
    found = _NUMBER.findall(label)
    return float(found[-1]) if found else None


def read_cell(path: Path, metric: str, units: str) -> dict:
    try:
        data = json.loads((path / "metrics.json").read_text())
    except FileNotFoundError:
        raise InputError(f"{path / 'metrics.json'}: missing (the input is not an evaluation)") from None
    metrics = data.get("metrics") or {}
    cell = {"metric": metric, "units": units, "benchmark": data.get("benchmark"), "n": data.get("n"),
            "n_total": data.get("n_total"), "partial": bool(data.get("partial")), "judge": _judge(path)}
    if metric in metrics:
        return {"value": metrics[metric], **cell}
    if data.get("parse_failures"):
        # a judged rate is left out when none of its items' judgements parsed (unparsed=exclude):
        # the cell exists but has no number; shown as n/a, never as 0 (docs/reporting.md)
        return {"value": None, "undefined": f"{data['parse_failures']} of {data.get('n')} judgements "
                                            "unparsed, none left to rate", **cell}
    raise InputError(f"{path / 'metrics.json'}: metric {metric!r} not found (have: {', '.join(sorted(metrics))})")


def _judge(path: Path) -> str | None:
    """The judge that scored an evaluation, from its protocol record (name, and model id if any)."""
    try:
        judge = json.loads((path / "protocol.json").read_text()).get("judge")
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not isinstance(judge, dict) or not judge.get("judge"):
        return None
    return judge["judge"] + (f" ({judge['model_id']})" if judge.get("model_id") else "")


def input_variants(inputs: dict, roles: list[str], where: str) -> list[str | None]:
    """[None] if every role is bound directly, else the sweep values every role was gathered over."""
    if all(r in inputs for r in roles):
        return [None]
    labels: list[str] = []
    for name in inputs:
        role, sep, label = name.partition("@")
        if sep and role in roles and label not in labels:
            labels.append(label)
    missing = [f"{r}@{lb}" for lb in labels for r in roles if f"{r}@{lb}" not in inputs]
    if not labels or missing:
        raise InputError(f"{where}: inputs: {missing[0] if missing else roles[0]!r} not bound")
    # rows in the order of their numbers (merge ratios, checkpoint steps), never in the order the
    # inputs arrived: a stage run in another process reads them back from JSON with sorted keys
    return sorted(labels, key=lambda lb: (label_number(lb) is None, label_number(lb) or 0.0, lb))


def build_table(ctx) -> dict:
    where = f"stage {ctx.name!r}"
    cols = ctx.param("columns")
    rows = ctx.param("rows")
    if not all(isinstance(c, dict) and {"label", "metric", "units"} <= set(c) for c in cols):
        raise InputError(f"{where}: param columns: expected [{{label, metric, units}}]")
    by_label = {c["label"]: c for c in cols}
    refs = load_references()
    out_rows = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("cells"), dict) or "label" not in row:
            raise InputError(f"{where}: rows[{i}] needs 'label' and a 'cells' mapping")
        for variant in input_variants(ctx.inputs, sorted(set(row["cells"].values())), where):
            label = row_label(row["label"], variant, len(rows))
            cells = {}
            for col, role in row["cells"].items():
                if col not in by_label:
                    raise InputError(f"{where}: rows[{i}]: column {col!r} is not declared")
                c = by_label[col]
                cell = read_cell(ctx.inputs[role if variant is None else f"{role}@{variant}"], c["metric"], c["units"])
                ref = reference_for(refs, ctx.experiment, ctx.name, f"{label}/{col}")
                cell["reference"] = None if ref is None else {"value": ref["value"], "source": ref["source"]}
                cells[col] = cell
            out_rows.append({"label": label, "x": label_number(label), "cells": cells})
    return {"title": ctx.param("title", ctx.name), "columns": [c["label"] for c in cols],
            "units": {c["label"]: c["units"] for c in cols}, "rows": out_rows}


# ------------------------------------------------------------------ rendering
def fmt(cell: dict | None) -> str:
    """A rate (a fraction) in percent, points as they are; by the column's units, not the value."""
    if cell is None:
        return "–"
    v = cell["value"]
    if v is None:
        return "n/a"
    text = f"{100 * v:.1f}" if cell["units"] == "rate" else f"{v:.2f}"
    return text + ("*" if cell["partial"] else "")


def units_note(table: dict) -> str:
    points = [c for c, u in table["units"].items() if u == "points"]
    return "Rates in percent" + (f"; {', '.join(points)} in its own points" if points else "") + "."


def to_markdown(table: dict) -> str:
    cols = table["columns"]
    lines = [f"### {table['title']}", "", "| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    refs = []
    for row in table["rows"]:
        lines.append(f"| {row['label']} | " + " | ".join(fmt(row["cells"].get(c)) for c in cols) + " |")
        for col, cell in row["cells"].items():
            if cell.get("reference"):
                src = cell["reference"]["source"]
                refs.append(f"{row['label']} / {col}: {fmt(dict(cell, value=cell['reference']['value'], partial=False))} "
                            f"(paper {src['table']}, {src['row']}, {src['column']})")
    lines += ["", units_note(table) + " Paper reference: " + ("; ".join(refs) if refs else "no reference") + ".",
              "`*` marks a partial evaluation (--limit): not a reproduction."]
    undefined = undefined_cells(table)
    if undefined:
        lines.append("n/a: no number (" + "; ".join(undefined) + ").")
    judges = sorted({cell["judge"] for r in table["rows"] for cell in r["cells"].values() if cell.get("judge")})
    if judges:
        lines.append("Judges: " + ", ".join(judges) + ".")
    return "\n".join(lines) + "\n"


def undefined_cells(table: dict) -> list[str]:
    """'<row> / <column>: <why>' for each cell without a number."""
    return [f"{row['label']} / {col}: {cell['undefined']}" for row in table["rows"]
            for col, cell in row["cells"].items() if cell["value"] is None]


def to_csv(table: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "column", "benchmark", "metric", "units", "value", "n", "n_total", "partial",
                     "judge", "reference"])
    for row in table["rows"]:
        for col in table["columns"]:
            cell = row["cells"].get(col)
            if cell:
                ref = cell["reference"]["value"] if cell["reference"] else "no reference"
                writer.writerow([row["label"], col, cell["benchmark"], cell["metric"], cell["units"],
                                 "n/a" if cell["value"] is None else f"{cell['value']:.6f}", cell["n"], cell["n_total"], cell["partial"],
                                 cell["judge"] or "", ref])
    return buf.getvalue()


def latex_escape(text) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(table: dict) -> str:
    cols = table["columns"]
    lines = [r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule",
             "Model & " + " & ".join(latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for row in table["rows"]:
        lines.append(latex_escape(row["label"]) + " & "
                     + " & ".join(latex_escape(fmt(row["cells"].get(c))) for c in cols) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the stage
def table_stage(ctx) -> None:
    table = build_table(ctx)
    (ctx.out / "table.json").write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    (ctx.out / "table.md").write_text(to_markdown(table))
    (ctx.out / "table.csv").write_text(to_csv(table))
    (ctx.out / "table.tex").write_text(to_latex(table))
    plot = ctx.param("plot", None)
    if plot is not None:
        draw(table, plot, ctx.out)
        ctx.protocol("figure_png", {"backend": "Agg", "metadata": "none (Software chunk dropped)"})
    # metrics.json lets `repro verify` check each cell against references.yaml ("<row>/<column>")
    ctx.write_metrics({"metrics": {f"{r['label']}/{c}": cell["value"] for r in table["rows"]
                                   for c, cell in r["cells"].items()},
                       "partial": any(cell["partial"] for r in table["rows"] for cell in r["cells"].values()),
                       "rows": [r["label"] for r in table["rows"]]})
    ctx.protocol("table_layout", {"columns": table["columns"], "rows": [r["label"] for r in table["rows"]],
                                  "plot": (plot or {}).get("kind", "none")})
