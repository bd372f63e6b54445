"""Stage ``report/agreement``: how far two judges agree on the same responses.

The choice of judge moves safety numbers more than anything else, so a table may name a second
judge for some of its benchmarks (``second_judge:``, ``repro/config/judges.py``): each of its
evaluations is then re-judged (``evaluate/judge``: the same responses, nothing regenerated), and
this stage sets the two side by side. Per benchmark and table row: the primary rate under each
judge (from each evaluation's ``metrics.json``), Cohen's kappa over the samples' verdict labels
(``repro.report.samples.verdict_label``: unsafe, refusal, safe, unparsed) and the confusion
counts; per benchmark, the same pooled over the rows. Samples are paired by id, and a pair whose
responses differ is an error (the second judge must score the same responses).

Params (written by the loader): ``rows: [{label, pairs: [{benchmark, first: role, second: role}]}]``
and ``title``. Outputs: ``agreement.json``, ``agreement.md`` (embedded in report.md and
report.html) and ``metrics.json`` (``<benchmark>/kappa``, ``<row>/<benchmark>/kappa``, ...).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.report.samples import read_samples, row_label, verdict_label
from repro.report.tables import input_variants

STATISTIC = "Cohen's kappa (Cohen 1960), unweighted, over verdict labels; pairs joined by sample id"


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """kappa = (p_o - p_e) / (1 - p_e): observed agreement against the agreement expected from
    each judge's own label frequencies (what sklearn.metrics.cohen_kappa_score computes;
    scikit-learn is not a dependency of the kit). None when undefined: no pairs, or both judges
    gave every sample one and the same label (p_e = 1)."""
    n = len(pairs)
    if not n:
        return None
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    p_o = sum(a == b for a, b in pairs) / n
    p_e = sum(first[label] * second[label] for label in first) / (n * n)
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def confusion(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """``[{first, second, n}]``: how often the first judge said one label and the second another."""
    counts = Counter(pairs)
    return [{"first": a, "second": b, "n": counts[(a, b)]} for a, b in sorted(counts)]


# ------------------------------------------------------------------ reading one pair
def _metrics(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "metrics.json").read_text())
    except FileNotFoundError:
        raise InputError(f"{path / 'metrics.json'}: missing (the input is not an evaluation)") from None


def _pair(first: Path, second: Path, where: str) -> dict[str, Any]:
    """Rates, kappa and confusion of one evaluation against its re-judging."""
    m1, m2 = _metrics(first), _metrics(second)
    if m1.get("benchmark") != m2.get("benchmark") or m1.get("primary") != m2.get("primary"):
        raise InputError(f"{where}: {second.name}/metrics.json: benchmark {m2.get('benchmark')!r} "
                         f"does not re-judge {m1.get('benchmark')!r}")
    by_id = {s["id"]: s for s in read_samples(second)}
    pairs = []
    for s in read_samples(first):
        other = by_id.pop(s["id"], None)
        if other is None or other.get("response_sha256") != s.get("response_sha256"):
            raise InputError(f"{where}: sample {s['id']!r}: the second judge did not score the same "
                             "response (re-judge the evaluation's own samples.jsonl)")
        pairs.append((verdict_label(s), verdict_label(other)))
    if by_id:
        raise InputError(f"{where}: sample {next(iter(by_id))!r} was judged only by the second judge")
    primary = m1.get("primary")
    return {"benchmark": m1["benchmark"], "primary": primary,
            "judges": [(m.get("judge") or {}).get("name") for m in (m1, m2)],
            "rates": [(m.get("metrics") or {}).get(primary) for m in (m1, m2)],
            "n": len(pairs), "kappa": cohen_kappa(pairs), "confusion": confusion(pairs), "_pairs": pairs}


def build(ctx) -> dict[str, Any]:
    rows = ctx.param("rows")
    where = f"stage {ctx.name!r}"
    benchmarks: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "label" not in row or not isinstance(row.get("pairs"), list):
            raise InputError(f"{where}: rows[{i}] needs 'label' and a 'pairs' list")
        for pair in row["pairs"]:
            for variant in input_variants(ctx.inputs, [pair["first"], pair["second"]], where):
                role = (lambda r: r if variant is None else f"{r}@{variant}")  # noqa: E731
                found = _pair(ctx.inputs[role(pair["first"])], ctx.inputs[role(pair["second"])], where)
                bench = benchmarks.setdefault(found["benchmark"], {
                    "benchmark": found["benchmark"], "primary": found["primary"],
                    "judges": found["judges"], "rows": [], "_pairs": []})
                if bench["judges"] != found["judges"]:
                    raise InputError(f"{where}: {found['benchmark']}: rows judged by different judges "
                                     f"({bench['judges']} and {found['judges']})")
                bench["_pairs"] += found.pop("_pairs")
                bench["rows"].append({"label": row_label(row["label"], variant, len(rows)),
                                      **{k: found[k] for k in ("rates", "n", "kappa", "confusion")}})
    out = []
    for bench in benchmarks.values():
        pairs = bench.pop("_pairs")
        out.append({**bench, "n": len(pairs), "kappa": cohen_kappa(pairs), "confusion": confusion(pairs)})
    return {"title": ctx.param("title", ctx.name), "statistic": STATISTIC, "benchmarks": out}


# ------------------------------------------------------------------ rendering
def fmt_kappa(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def fmt_rate(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def confusion_text(cells: list[dict[str, Any]]) -> str:
    return ", ".join(f"{c['first']}/{c['second']} {c['n']}" for c in cells)


def to_markdown(data: dict[str, Any]) -> str:
    lines = [f"### {data['title']}", "", f"{data['statistic']}. Confusion counts read "
             "first judge's label / second judge's label.", ""]
    for b in data["benchmarks"]:
        first, second = b["judges"]
        lines += [f"#### {b['benchmark']} ({b['primary']}): {first} vs {second}", "",
                  f"| row | n | {first} {b['primary']} % | {second} {b['primary']} % | kappa | confusion |",
                  "|---|---|---|---|---|---|"]
        for r in b["rows"]:
            lines.append(f"| {r['label']} | {r['n']} | {fmt_rate(r['rates'][0])} | {fmt_rate(r['rates'][1])} | "
                         f"{fmt_kappa(r['kappa'])} | {confusion_text(r['confusion'])} |")
        lines += [f"| all rows | {b['n']} | | | {fmt_kappa(b['kappa'])} | {confusion_text(b['confusion'])} |", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def agreement_stage(ctx) -> None:
    data = build(ctx)
    (ctx.out / "agreement.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (ctx.out / "agreement.md").write_text(to_markdown(data))
    metrics: dict[str, float] = {}
    for b in data["benchmarks"]:
        if b["kappa"] is not None:
            metrics[f"{b['benchmark']}/kappa"] = b["kappa"]
        for r in b["rows"]:
            if r["kappa"] is not None:
                metrics[f"{r['label']}/{b['benchmark']}/kappa"] = r["kappa"]
    ctx.write_metrics({"metrics": metrics, "judges": {b["benchmark"]: b["judges"] for b in data["benchmarks"]}})
    ctx.protocol("agreement", {"statistic": STATISTIC, "labels": "repro.report.samples.verdict_label"})
