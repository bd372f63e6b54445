"""Stage ``report/sweep``: one row per variant of a sweep (checkpoints, merge ratios, released
models), one column per chosen metric; rendered as Markdown/CSV/LaTeX and, optionally, a figure.

Inputs arrive gathered (``gather: true``): role ``r`` of the declaration becomes ``r@<label>`` for
every variant, in sweep order. Params:
- ``columns``: ``[{label, role, metric (default: the evaluation's primary), style: solid|dotted}]``;
- ``plot``: ``lines`` (x = the number in each label, e.g. ``step-200`` -> 200; one line per column,
  ``style`` sets solid/dotted), ``tradeoff`` (x = mean of the ``safety`` roles' ASR, y = the
  ``helpfulness`` role's primary metric, one labelled point per variant) or ``none``;
- ``title``, ``x_label``, ``y_label``.

PNGs are byte-deterministic: Agg backend, fixed size and dpi, no "Software" metadata chunk
(matplotlib writes no timestamp). Metrics and figures are rendered from JSON, never read back.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

from repro.errors import InputError

PLOTS = ("lines", "tradeoff", "none")
STYLES = {"solid": "-", "dotted": ":"}
PNG_METADATA = {"Software": None}
DPI = 100
_NUMBER = re.compile(r"\d+(?:\.\d+)?")  # steps and ratios are non-negative; "step-20" is 20


# ------------------------------------------------------------------ reading the sweep
def variant_labels(inputs: dict, roles: list[str]) -> list[str]:
    """Labels present for every role, in input order (the sweep's order)."""
    labels: list[str] = []
    for name in inputs:
        role, sep, label = name.partition("@")
        if sep and role in roles and label not in labels:
            labels.append(label)
    if not labels:
        raise InputError(f"report/sweep: inputs: no gathered variants (role@label) for roles {roles}; "
                         "declare the stage with gather: true over swept stages")
    for role in roles:
        missing = [lb for lb in labels if f"{role}@{lb}" not in inputs]
        if missing:
            raise InputError(f"report/sweep: inputs: role {role!r} lacks variant(s) {', '.join(missing)}")
    return labels


def label_number(label: str) -> float | None:
    found = _NUMBER.findall(label)
    return float(found[-1]) if found else None


def read_metric(path: Path, metric: str | None) -> dict:
    try:
        data = json.loads((path / "metrics.json").read_text())
    except FileNotFoundError:
        raise InputError(f"{path / 'metrics.json'}: missing (the input is not an evaluation)") from None
    metric = metric or data.get("primary")
    metrics = data.get("metrics") or {}
    if metric not in metrics:
        raise InputError(f"{path / 'metrics.json'}: metric {metric!r} not found (have: {', '.join(sorted(metrics))})")
    return {"value": metrics[metric], "metric": metric, "benchmark": data.get("benchmark"),
            "n": data.get("n"), "n_total": data.get("n_total"), "partial": bool(data.get("partial"))}


def _columns(spec) -> list[dict]:
    if not isinstance(spec, list) or not spec:
        raise InputError("report/sweep: param columns: expected a non-empty list of {label, role, metric}")
    out = []
    for i, col in enumerate(spec):
        if not isinstance(col, dict) or not col.get("label") or not col.get("role"):
            raise InputError(f"report/sweep: param columns[{i}]: needs 'label' and 'role'")
        style = col.get("style", "solid")
        if style not in STYLES:
            raise InputError(f"report/sweep: param columns[{i}]: style {style!r}; expected solid or dotted")
        out.append({"label": str(col["label"]), "role": str(col["role"]), "metric": col.get("metric"),
                    "style": style})
    return out


def build_sweep(inputs: dict[str, Path], columns_spec, title: str) -> dict:
    columns = _columns(columns_spec)
    labels = variant_labels(inputs, sorted({c["role"] for c in columns}))
    rows = []
    for label in labels:
        cells = {c["label"]: read_metric(inputs[f"{c['role']}@{label}"], c["metric"]) for c in columns}
        rows.append({"label": label, "x": label_number(label), "cells": cells})
    return {"title": title, "columns": [c["label"] for c in columns], "styles": {c["label"]: c["style"] for c in columns},
            "roles": {c["label"]: c["role"] for c in columns}, "rows": rows}


# ------------------------------------------------------------------ rendering
def fmt(cell: dict | None) -> str:
    if cell is None:
        return "–"
    v = cell["value"]
    text = f"{100 * v:.1f}" if 0.0 <= v <= 1.0 else f"{v:.2f}"
    return text + ("*" if cell["partial"] else "")


def to_markdown(sweep: dict) -> str:
    cols = sweep["columns"]
    lines = [f"### {sweep['title']}", "", "| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for row in sweep["rows"]:
        lines.append(f"| {row['label']} | " + " | ".join(fmt(row["cells"].get(c)) for c in cols) + " |")
    lines += ["", "Rates in percent (MME in its own points). Paper reference: no reference.",
              "`*` marks a partial evaluation (--limit): not a reproduction."]
    return "\n".join(lines) + "\n"


def to_csv(sweep: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["variant", "column", "benchmark", "metric", "value", "n", "n_total", "partial"])
    for row in sweep["rows"]:
        for col in sweep["columns"]:
            c = row["cells"][col]
            writer.writerow([row["label"], col, c["benchmark"], c["metric"], f"{c['value']:.6f}", c["n"],
                             c["n_total"], c["partial"]])
    return buf.getvalue()


def to_latex(sweep: dict) -> str:
    esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")  # noqa: E731
    cols = sweep["columns"]
    lines = [r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule",
             "Variant & " + " & ".join(esc(c) for c in cols) + r" \\", r"\midrule"]
    for row in sweep["rows"]:
        lines.append(esc(row["label"]) + " & " + " & ".join(esc(fmt(row["cells"][c])) for c in cols) + r" \\")
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) if text else text


def save_png(fig, path: Path) -> None:
    for ax in fig.axes:  # long titles and labels would be cut at the figure's edge
        ax.set_title(_wrap(ax.get_title(), 55), fontsize=9)
        ax.set_xlabel(_wrap(ax.get_xlabel(), 65))
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=DPI, metadata=PNG_METADATA)
    _pyplot().close(fig)


def lines_figure(sweep: dict, path: Path, *, title: str, x_label: str, y_label: str) -> None:
    """One line per column over the variants' numbers; ``dotted`` columns drawn dotted."""
    xs = [row["x"] for row in sweep["rows"]]
    if any(x is None for x in xs):
        bad = [row["label"] for row in sweep["rows"] if row["x"] is None]
        raise InputError(f"report/sweep: plot lines: variant label(s) {bad} carry no number for the x axis")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for col in sweep["columns"]:
        ys = [row["cells"][col]["value"] for row in sweep["rows"]]
        ax.plot(xs, ys, linestyle=STYLES[sweep["styles"][col]], marker="o", markersize=3, label=col)
    ax.set(title=title, xlabel=x_label, ylabel=y_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_png(fig, path)


def tradeoff_points(sweep: dict, safety: list[str], helpfulness: str) -> list[dict]:
    def column(name: str) -> str:
        """A column label, or a role that feeds exactly one column (a role with two metrics,
        e.g. WildJailbreak's ASR and benign refusal, must be named by its column label)."""
        if name in sweep["roles"]:
            return name
        labels = [label for label, role in sweep["roles"].items() if role == name]
        if len(labels) != 1:
            why = "is not a column or a role" if not labels else f"feeds {len(labels)} columns ({', '.join(labels)})"
            raise InputError(f"report/sweep: plot tradeoff: {name!r} {why}; name a column label")
        return labels[0]

    safety_cols, help_col = [column(r) for r in safety], column(helpfulness)
    points = []
    for row in sweep["rows"]:
        asr = [row["cells"][c]["value"] for c in safety_cols]
        help_ = row["cells"][help_col]["value"]
        if not all(math.isfinite(v) for v in [*asr, help_]):
            raise InputError(f"report/sweep: variant {row['label']}: a plotted value is not finite")
        points.append({"label": row["label"], "asr": sum(asr) / len(asr), "helpfulness": help_})
    return points


def tradeoff_figure(points: list[dict], path: Path, *, title: str, x_label: str, y_label: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    xs, ys = [p["asr"] for p in points], [p["helpfulness"] for p in points]
    ax.plot(xs, ys, color="0.7", zorder=1)
    ax.scatter(xs, ys, zorder=2)
    for p in points:
        ax.annotate(p["label"], (p["asr"], p["helpfulness"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set(title=title, xlabel=x_label, ylabel=y_label)
    ax.grid(alpha=0.3)
    save_png(fig, path)


# ------------------------------------------------------------------ the stage
def render(sweep: dict, out: Path, params: dict) -> dict:
    """Write sweep.{json,md,csv,tex} and the figure; return metrics.json's content."""
    plot = params.get("plot") or "none"
    if plot not in PLOTS:
        raise InputError(f"report/sweep: param plot: {plot!r}; expected one of {', '.join(PLOTS)}")
    labels = {k: str(params.get(k) or "") for k in ("x_label", "y_label")}
    (out / "sweep.json").write_text(json.dumps(sweep, indent=2, sort_keys=True) + "\n")
    (out / "sweep.md").write_text(to_markdown(sweep))
    (out / "sweep.csv").write_text(to_csv(sweep))
    (out / "sweep.tex").write_text(to_latex(sweep))
    if plot == "lines":
        lines_figure(sweep, out / "figure.png", title=sweep["title"], **labels)
    elif plot == "tradeoff":
        safety, helpful = params.get("safety"), params.get("helpfulness")
        if not isinstance(safety, list) or not safety or not isinstance(helpful, str):
            raise InputError("report/sweep: plot tradeoff: params safety (list of roles) and helpfulness (a role) are required")
        points = tradeoff_points(sweep, safety, helpful)
        (out / "tradeoff.json").write_text(json.dumps(points, indent=2, sort_keys=True) + "\n")
        tradeoff_figure(points, out / "figure.png", title=sweep["title"], **labels)
    return {"metrics": {f"{row['label']}/{c}": row["cells"][c]["value"] for row in sweep["rows"] for c in sweep["columns"]},
            "partial": any(cell["partial"] for row in sweep["rows"] for cell in row["cells"].values()),
            "variants": [row["label"] for row in sweep["rows"]], "plot": plot}


def sweep_stage(ctx) -> None:
    """Stage ``report/sweep`` (see the module docstring)."""
    keys = ("plot", "x_label", "y_label", "safety", "helpfulness")
    sweep = build_sweep(dict(ctx.inputs), ctx.param("columns"), str(ctx.param("title", ctx.name)))
    metrics = render(sweep, ctx.out, {k: ctx.param(k, None) for k in keys})
    ctx.protocol("sweep_layout", {"columns": sweep["columns"], "variants": metrics["variants"], "plot": metrics["plot"]})
    ctx.protocol("figure_png", {"backend": "Agg", "dpi": DPI, "metadata": "none (Software chunk dropped)"})
    ctx.write_metrics(metrics)
