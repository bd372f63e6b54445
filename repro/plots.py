"""Figures with deterministic bytes: Agg backend, no "Software" PNG metadata, fixed size and dpi.

matplotlib writes no timestamp into a PNG; its only varying metadata is the "Software" text chunk
(the matplotlib version), dropped here so the same data always gives the same file.
"""

from __future__ import annotations

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


def save_figure(fig, out_png: Path) -> None:
    plt = _pyplot()
    fig.tight_layout()
    fig.savefig(out_png, format="png", dpi=DPI, metadata=PNG_METADATA)
    plt.close(fig)


def line_plot(series: dict[str, tuple[list, list]], out_png: Path, *, title: str, xlabel: str,
              ylabel: str, panels: dict[str, dict[str, tuple[list, list]]] | None = None) -> None:
    """One line per series (label -> (xs, ys)); ``panels`` draws several such plots side by side
    (panel title -> series) instead of the single ``series``."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    panels = panels or {title: series}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (panel_title, lines) in zip(axes[0], panels.items()):
        for label, (xs, ys) in lines.items():
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_title(panel_title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel if len(panels) == 1 else panel_title)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are whole numbers
        if 1 < len(lines) <= 12:
            ax.legend(fontsize=7)
    save_figure(fig, out_png)


def tradeoff_plot(points: list[dict], out_png: Path | str, *, title: str = "Merge ratio sweep",
                  safety_label: str = "attack success rate (lower is safer)",
                  helpfulness_label: str = "helpfulness (higher is better)") -> None:
    """Safety ASR (x) against helpfulness (y), one labelled point per merge ratio/model.

    ``points``: ``[{"label": "w=0.3", "asr": 0.12, "helpfulness": 0.61}, ...]``, drawn in the
    given order and joined by a line (a sweep is ordered by ratio).
    """
    plt = _pyplot()
    if not points:
        raise InputError("tradeoff_plot: points: empty")
    for i, p in enumerate(points):
        for field in ("label", "asr", "helpfulness"):
            if field not in p:
                raise InputError(f"tradeoff_plot: points[{i}]: {field}: missing")
        for field in ("asr", "helpfulness"):
            v = p[field]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(f"tradeoff_plot: points[{i}]: {field}: {v!r} is not a finite number")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    xs, ys = [p["asr"] for p in points], [p["helpfulness"] for p in points]
    ax.plot(xs, ys, color="0.7", zorder=1)
    ax.scatter(xs, ys, zorder=2)
    for p in points:
        ax.annotate(str(p["label"]), (p["asr"], p["helpfulness"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel(safety_label)
    ax.set_ylabel(helpfulness_label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    save_figure(fig, Path(out_png))
