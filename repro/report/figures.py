"""Figures of a ``report/table`` stage (``repro/report/tables.py``), drawn from its table JSON.

``plot: {kind: lines, x_label, y_label, dotted: [column, ...]}``: one line per column over the
rows' numbers (x = the last number in each row's label, e.g. ``step-200`` -> 200); the ``dotted``
columns (refusal rates on benign prompts) dotted, the others solid.
``plot: {kind: tradeoff, safety: [column, ...], helpfulness: column, x_label, y_label}``: one
labelled point per row, x = the mean of the safety columns, y = the helpfulness column; the
points are also written to ``tradeoff.json``.

PNGs are byte-deterministic: Agg backend, fixed size and dpi, no "Software" metadata chunk
(matplotlib writes no timestamp).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from repro.errors import InputError

PNG_METADATA = {"Software": None}
DPI = 100


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


def lines_figure(table: dict, path: Path, *, title: str, x_label: str, y_label: str,
                 dotted: list[str]) -> None:
    """One line per column over the rows' numbers; ``dotted`` columns drawn dotted."""
    xs = [row["x"] for row in table["rows"]]
    if any(x is None for x in xs):
        bad = [row["label"] for row in table["rows"] if row["x"] is None]
        raise InputError(f"report/table: plot lines: row(s) {bad} carry no number for the x axis")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for col in table["columns"]:
        ys = [row["cells"][col]["value"] for row in table["rows"]]
        ax.plot(xs, ys, linestyle=":" if col in dotted else "-", marker="o", markersize=3, label=col)
    ax.set(title=title, xlabel=x_label, ylabel=y_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_png(fig, path)


def tradeoff_points(table: dict, safety: list[str], helpfulness: str) -> list[dict]:
    """Per row: the mean of the ``safety`` columns and the ``helpfulness`` column."""
    for col in [*safety, helpfulness]:
        if col not in table["columns"]:
            raise InputError(f"report/table: plot tradeoff: {col!r} is not a column")
    points = []
    for row in table["rows"]:
        asr = [row["cells"][c]["value"] for c in safety]
        help_ = row["cells"][helpfulness]["value"]
        if not all(math.isfinite(v) for v in [*asr, help_]):
            raise InputError(f"report/table: row {row['label']}: a plotted value is not finite")
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


def draw(table: dict, plot: dict, out: Path) -> None:
    """``figure.png`` (and ``tradeoff.json``) of ``table`` as ``plot`` says."""
    labels = {"title": table["title"], "x_label": str(plot.get("x_label") or ""),
              "y_label": str(plot.get("y_label") or "")}
    if plot.get("kind") == "lines":
        lines_figure(table, out / "figure.png", dotted=list(plot.get("dotted") or []), **labels)
    elif plot.get("kind") == "tradeoff":
        points = tradeoff_points(table, list(plot.get("safety") or []), str(plot.get("helpfulness")))
        (out / "tradeoff.json").write_text(json.dumps(points, indent=2, sort_keys=True) + "\n")
        tradeoff_figure(points, out / "figure.png", **labels)
    else:
        raise InputError(f"report/table: param plot: kind {plot.get('kind')!r}; expected lines or tradeoff")
