"""Result tables: one JSON of values, rendered to Markdown, CSV and LaTeX (never read back).

Stage ``report/table``. Params: ``title`` and ``rows``: a list of ``{model: <row label>,
cells: {<column label>: "<input role>[.<metric>]"}}``. A cell shows the named metric of that
evaluation (its ``primary`` metric when none is named). Every column carries its reference
value from ``references.yaml`` where one exists, else "no reference" — never a made-up number.
"""

from __future__ import annotations

import csv
import io
import json

from repro.errors import InputError
from repro.report.references import load_references, reference_for


def _cell(ctx, spec: str) -> dict:
    role, _, metric = spec.partition(".")
    path = ctx.input(role) / "metrics.json"
    if not path.exists():
        raise InputError(f"{path}: no metrics.json in the output of input {role!r}")
    data = json.loads(path.read_text())
    metric = metric or data.get("primary")
    metrics = data.get("metrics") or {}
    if metric not in metrics:
        raise InputError(f"{path}: metric {metric!r} not found (have: {', '.join(sorted(metrics))})")
    return {"value": metrics[metric], "metric": metric, "benchmark": data.get("benchmark"),
            "n": data.get("n"), "partial": bool(data.get("partial")), "judge": data.get("judge"),
            "role": role}


def build_table(ctx) -> dict:
    rows = ctx.param("rows")
    if not isinstance(rows, list) or not rows:
        raise InputError(f"stage {ctx.name!r}: param 'rows' must be a non-empty list")
    columns: list[str] = []
    out_rows = []
    refs = load_references()
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "model" not in row or not isinstance(row.get("cells"), dict):
            raise InputError(f"stage {ctx.name!r}: rows[{i}] needs 'model' and a 'cells' mapping")
        cells = {}
        for col, spec in row["cells"].items():
            if col not in columns:
                columns.append(col)
            cell = _cell(ctx, spec)
            ref = reference_for(refs, ctx.experiment, ctx.name, f"{row['model']}/{col}")
            cell["reference"] = None if ref is None else {"value": ref["value"], "source": ref["source"]}
            cells[col] = cell
        out_rows.append({"model": row["model"], "cells": cells})
    return {"title": ctx.param("title", ctx.name), "columns": columns, "rows": out_rows}


def _fmt(cell: dict | None) -> str:
    if cell is None:
        return "–"
    text = f"{100 * cell['value']:.1f}" if 0.0 <= cell["value"] <= 1.0 else f"{cell['value']:.2f}"
    return text + ("*" if cell["partial"] else "")


def to_markdown(table: dict) -> str:
    cols = table["columns"]
    lines = [f"### {table['title']}", "", "| model | " + " | ".join(cols) + " |",
             "|---|" + "---|" * len(cols)]
    for row in table["rows"]:
        lines.append(f"| {row['model']} | " + " | ".join(_fmt(row["cells"].get(c)) for c in cols) + " |")
    refs = []
    for row in table["rows"]:
        for col, cell in row["cells"].items():
            ref = cell.get("reference")
            if ref:
                src = ref["source"]
                refs.append(f"{row['model']} / {col}: {_fmt(dict(cell, value=ref['value'], partial=False))} "
                            f"(paper {src['table']}, {src['row']}, {src['column']})")
    lines += ["", "Rates in percent. Paper reference: " + ("; ".join(refs) if refs else "no reference") + ".",
              "`*` marks a partial evaluation (--limit): not a reproduction."]
    judges = sorted({str(cell.get("judge")) for r in table["rows"] for cell in r["cells"].values()
                     if cell.get("judge")})
    if judges:
        lines.append("Judges: " + ", ".join(judges) + ".")
    return "\n".join(lines) + "\n"


def to_csv(table: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "column", "benchmark", "metric", "value", "n", "partial", "reference"])
    for row in table["rows"]:
        for col in table["columns"]:
            cell = row["cells"].get(col)
            if cell:
                ref = cell["reference"]["value"] if cell["reference"] else "no reference"
                writer.writerow([row["model"], col, cell["benchmark"], cell["metric"],
                                 f"{cell['value']:.6f}", cell["n"], cell["partial"], ref])
    return buf.getvalue()


def to_latex(table: dict) -> str:
    cols = table["columns"]
    esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")  # noqa: E731
    lines = [r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule",
             "Model & " + " & ".join(esc(c) for c in cols) + r" \\", r"\midrule"]
    for row in table["rows"]:
        lines.append(esc(row["model"]) + " & " + " & ".join(esc(_fmt(row["cells"].get(c))) for c in cols) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def table_stage(ctx) -> None:
    table = build_table(ctx)
    (ctx.out / "table.json").write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    (ctx.out / "table.md").write_text(to_markdown(table))
    (ctx.out / "table.csv").write_text(to_csv(table))
    (ctx.out / "table.tex").write_text(to_latex(table))
    # metrics.json lets `repro verify` check each cell against references.yaml ("<row>/<column>")
    ctx.write_metrics({"metrics": {f"{r['model']}/{c}": cell["value"] for r in table["rows"]
                                   for c, cell in r["cells"].items()},
                       "partial": any(cell["partial"] for r in table["rows"] for cell in r["cells"].values())})
    ctx.protocol("table_layout", {"columns": table["columns"], "rows": [r["model"] for r in table["rows"]]})
