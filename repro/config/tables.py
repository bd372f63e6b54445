"""The evaluation matrix as a declaration: ``tables:`` -> evaluation stages and report stages.

An experiment declares tables; each says which model stages are its rows and which suite of
benchmarks they are scored on::

    tables:
      table2:
        title: "Safety tuning of LLM B-VL"
        suite: full                        # a named suite (suites:) or a list of benchmarks
        rows:
          LLM B-VL: stage2_b               # label: model stage
          LLM B: {model: llm_b, suite: text}
          LLM A-VL: {model: stage2, over: {checkpoint: [step-10, step-20]}}   # one row per value
        plot: {kind: lines, x_label: step, y_label: rate, dotted: [wildjailbreak.benign_refusal_rate]}
        second_judge: {safety: keyword_refusal}   # optional: re-judge, report agreement (judges.py)

For every (row, benchmark) the loader derives one ``evaluate/benchmark`` stage named
``eval~<model>~<benchmark>`` (``eval~<model>~<benchmark>~<param>`` when the row sweeps an
evaluation param; a swept model's variants follow as ``...@<value>``). The benchmark's
``benchmark.yaml`` decides the rest: its scorer picks the recipe (``safety_eval`` or
``helpful_eval``), its judge is bound to the judge model the profile's ``judges:`` map names
(a chat judge there maps to its endpoint options instead),
and its ``label``/``units`` give the table's columns. The benchmark's data is the stage named
after the benchmark; a profile's ``benchmark_data:`` builds it where no stage is declared. The
table itself becomes a ``report/table`` stage of the same name, and a result of the experiment.
Names join with "~" because "/" makes directories, "." splits ``--set`` paths, ":" breaks Docker
volume specs and "@" marks sweep variants; "~" is plain in file names, shells and YAML.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path
from typing import Any

from repro.config.schema import Row, Table, check_name
from repro.errors import InputError

SEP = "~"
RECIPES = {"safety": "safety_eval", "multiple_choice": "helpful_eval", "yes_no": "helpful_eval"}
# Judges that need no judge model (rules, or a chat endpoint): every other judge needs one bound in
# the profile's `judges:` map (tests/unit/test_experiments.py checks this against the judge classes).
MODEL_FREE_JUDGES = frozenset({"exact", "keyword_refusal", "xstest_strmatch", "openai_api",
                               "mm_safetybench_gpt4", "siuo_gpt4v", "xstest_gpt4"})
UNITS = ("rate", "points")  # rate: a fraction, shown in percent; points: the benchmark's own scale
TABLE_KEYS, ROW_KEYS = {"title", "suite", "rows", "plot", "second_judge"}, {"model", "suite", "over"}
PLOT_KEYS = {"kind", "x_label", "y_label", "dotted", "safety", "helpfulness"}


def eval_stage(model: str, benchmark: str, over: str | None = None) -> str:
    """The name of the evaluation of ``model`` on ``benchmark`` (the loader's and the reports'
    one spelling of it)."""
    return SEP.join(["eval", model, benchmark] + ([over] if over else []))


def expand_suites(path: Path, suites: Any) -> dict[str, tuple[str, ...]]:
    """``{name: [benchmark or suite name, ...]}`` -> ``{name: (benchmark, ...)}``, order kept."""
    if not isinstance(suites, dict):
        raise InputError(f"{path}: key 'suites': expected a mapping of name -> list of benchmarks")

    def expand(name: str, chain: tuple[str, ...]) -> list[str]:
        if name in chain:
            raise InputError(f"{path}: suites: cycle {' -> '.join(chain + (name,))}")
        members = suites[name]
        if not isinstance(members, list) or not members:
            raise InputError(f"{path}: suites: {name}: expected a non-empty list")
        out: list[str] = []
        for m in members:
            for b in (expand(m, chain + (name,)) if m in suites else [_benchmark(f"{path}: suites: {name}", m).name]):
                if b not in out:
                    out.append(b)
        return out

    return {check_name(str(path), "suite", n): tuple(expand(n, ())) for n in suites}


def _benchmark(where: str, name: Any):
    try:
        return _get_benchmark(check_name(where, "benchmark", name))
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


@functools.lru_cache(maxsize=None)
def _get_benchmark(name: str):
    from repro.evaluate.benchmarks import get_benchmark

    return get_benchmark(name)


def columns(bench) -> list[dict[str, str]]:
    """The table columns a benchmark gives: ``label`` (a string for the primary metric, or
    ``{metric: label}``) and ``units`` (one unit, or ``{metric: unit}``) of its benchmark.yaml."""
    where = f"repro/evaluate/benchmarks/{bench.name}/benchmark.yaml"
    label, units = getattr(bench, "label", None), getattr(bench, "units", None)
    labels = {bench.primary: label} if isinstance(label, str) else label
    if not isinstance(labels, dict) or not labels or not all(isinstance(v, str) and v for v in labels.values()):
        raise InputError(f"{where}: label: expected a column label or a mapping metric -> label, got {label!r}")
    out = []
    for metric, text in labels.items():
        unit = units.get(metric) if isinstance(units, dict) else units
        if unit not in UNITS:
            raise InputError(f"{where}: units: metric {metric!r} needs a unit, one of {', '.join(UNITS)}")
        out.append({"label": text, "benchmark": bench.name, "metric": metric, "units": unit})
    return out


def derive(path: Path, data: dict[str, Any]) -> dict[str, Table]:
    """Add every table's evaluation and report stages (and missing benchmark data stages) to
    ``data["stages"]`` in place; return the tables, for reports that read their rows."""
    tables_raw = data.get("tables") or {}
    if not isinstance(tables_raw, dict):
        raise InputError(f"{path}: key 'tables': expected a mapping of table name -> table")
    suites = expand_suites(path, data.get("suites") or {})
    stages = data.setdefault("stages", {})
    if not isinstance(stages, dict):
        raise InputError(f"{path}: key 'stages': expected a mapping")
    tables = {}
    for name, raw in tables_raw.items():
        where = f"{path}: table {check_name(str(path), 'table', name)}"
        if name in stages:
            raise InputError(f"{where}: a stage of that name is declared too")
        tables[name] = _table(where, name, raw, suites, data, stages)
    _benchmark_data(path, data, stages)
    return tables


def _table(where: str, name: str, raw: Any, suites: dict, data: dict, stages: dict) -> Table:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a mapping")
    _keys(where, raw, TABLE_KEYS)
    rows_raw = raw.get("rows")
    if not isinstance(rows_raw, dict) or not rows_raw:
        raise InputError(f"{where}: key 'rows': expected a mapping of row label -> model stage")
    rows, cols, inputs, cells = [], [], {}, []
    for label, spec in rows_raw.items():
        row = _row(f"{where}: row {label!r}", str(label), spec, raw.get("suite"), suites, data, stages)
        rows.append(row)
        row_cells = {}
        for bench in row.benchmarks:
            for col in columns(_benchmark(where, bench)):
                if col["label"] not in [c["label"] for c in cols]:
                    cols.append(col)
                row_cells[col["label"]] = row.stages[bench]
            inputs[row.stages[bench]] = row.stages[bench]
        cells.append({"label": row.label, "cells": row_cells})
    params: dict[str, Any] = {"title": _text(where, raw, "title"), "columns": cols, "rows": cells}
    if raw.get("plot") is not None:
        params["plot"] = _plot(where, raw["plot"], cols)
    stages[name] = {"kind": "report/table", "gather": True, "inputs": inputs, "params": params}
    if raw.get("second_judge") is None:
        return Table(name, params["title"], tuple(rows))
    from repro.config.judges import second_judge

    rejudged, agreement = second_judge(where, name, params["title"], raw["second_judge"], rows, suites, data, stages)
    return Table(name, params["title"], tuple(rows), rejudged, agreement)


def _row(where: str, label: str, spec: Any, suite: Any, suites: dict, data: dict, stages: dict) -> Row:
    spec = {"model": spec} if isinstance(spec, str) else spec
    if not isinstance(spec, dict):
        raise InputError(f"{where}: expected a model stage name or {{model, suite, over}}")
    _keys(where, spec, ROW_KEYS)
    model = check_name(where, "model stage", spec.get("model"))
    benches = _suite(where, spec.get("suite", suite), suites)
    over = spec.get("over")
    if over is not None and (not isinstance(over, dict) or len(over) != 1):
        raise InputError(f"{where}: key 'over': expected one evaluation param -> list of values")
    over_key = check_name(where, "param", next(iter(over))) if over else None
    names = {}
    for bench in benches:
        names[bench] = eval_stage(model, bench, over_key)
        _add(where, stages, names[bench], _evaluation(where, model, bench, over, data))
    return Row(label, model, benches, names, copy.deepcopy(over))


def _suite(where: str, suite: Any, suites: dict) -> tuple[str, ...]:
    if isinstance(suite, str):
        if suite not in suites:
            raise InputError(f"{where}: unknown suite {suite!r}; known: {', '.join(sorted(suites)) or 'none'}")
        return suites[suite]
    if isinstance(suite, list) and suite:
        out: list[str] = []
        for s in suite:
            for b in (suites[s] if s in suites else (_benchmark(f"{where}: suite", s).name,)):
                if b not in out:
                    out.append(b)
        return tuple(out)
    raise InputError(f"{where}: key 'suite': expected a suite name or a list of benchmarks")


def _evaluation(where: str, model: str, bench_name: str, over: dict | None, data: dict) -> dict:
    bench = _benchmark(f"{where}: suite", bench_name)
    recipe = RECIPES[bench.scorer]
    stage: dict[str, Any] = {"kind": "evaluate/benchmark", "recipe": recipe,
                             "params": {"benchmark": bench.name},
                             "inputs": {"model": model, "data": bench.name}}
    if bench.scorer == "safety":
        judge = first_judge(bench, data)
        model = judge_model(where, bench.name, judge, data)
        if model is not None:
            stage["inputs"]["judge"] = model
        options = judge_endpoint(data, judge)
        if options is not None:
            stage["params"]["judge_options"] = options
    if over:
        stage["sweep"] = copy.deepcopy(over)
    return stage


def first_judge(bench, data: dict) -> str:
    """The judge a safety benchmark's evaluations use: the profile's recipe, else benchmark.yaml."""
    return ((data.get("recipes") or {}).get(RECIPES[bench.scorer]) or {}).get("judge") or bench.judge


def judge_model(where: str, bench_name: str, judge: Any, data: dict) -> str | None:
    """Check judge ``judge`` exists; return the judge model stage the profile's ``judges:`` binds
    to it (None for a judge that needs no model; a model judge with none bound is an error)."""
    if judge not in _judge_names():
        close = difflib.get_close_matches(str(judge), _judge_names(), n=1)
        raise InputError(f"{where}: {bench_name}: unknown judge {judge!r}"
                         + (f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(_judge_names())}"))
    judges = data.get("judges") or {}
    if not isinstance(judges, dict):
        raise InputError(f"{where}: key 'judges': expected a mapping of judge -> model stage "
                         "(or, for a chat judge, -> its endpoint options)")
    if isinstance(judges.get(judge), dict):
        _check_endpoint(where, judge, judges[judge])
        return None
    if judge in judges:
        return check_name(f"{where}: judges", "judge model stage", judges[judge])
    if judge not in MODEL_FREE_JUDGES:
        raise InputError(f"{where}: {bench_name} is judged by {judge!r}, which needs a judge model: "
                         f"bind one in the profile, judges: {{{judge}: <models/fetch stage>}}")
    return None


def judge_endpoint(data: dict, judge: str) -> dict | None:
    """The endpoint options a chat judge is bound to in the profile (``judges: {siuo_gpt4v:
    {base_url: ..., model: ...}}``): every evaluation it judges gets them as ``judge_options``."""
    bound = (data.get("judges") or {}).get(judge)
    return copy.deepcopy(bound) if isinstance(bound, dict) else None


def _check_endpoint(where: str, judge: str, options: dict) -> None:
    from repro.evaluate.judges import JUDGES
    from repro.evaluate.judges.chat import OPTIONS, ChatJudge

    if not issubclass(JUDGES.get(judge), ChatJudge):
        raise InputError(f"{where}: judges: {judge}: a mapping binds a chat judge to its endpoint; "
                         f"{judge} runs on a model: bind a models/fetch stage")
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise InputError(f"{where}: judges: {judge}: unknown option {unknown[0]!r}; known: {', '.join(sorted(OPTIONS))}")


def _judge_names() -> list[str]:
    from repro.evaluate.judges import JUDGES

    return JUDGES.names()


def _add(where: str, stages: dict, name: str, stage: dict) -> None:
    if name in stages and stages[name] != stage:
        raise InputError(f"{where}: stage {name!r} is derived twice with different definitions "
                         "(or declared by hand): one name, one definition")
    stages[name] = stage


def _plot(where: str, plot: Any, cols: list[dict]) -> dict:
    """``plot`` with benchmarks (``bench`` = its primary column, ``bench.metric``) as column labels."""
    if not isinstance(plot, dict) or plot.get("kind") not in ("lines", "tradeoff"):
        raise InputError(f"{where}: key 'plot': expected {{kind: lines|tradeoff, ...}}")
    _keys(f"{where}: plot", plot, PLOT_KEYS)

    def column(ref: Any) -> str:
        bench, _, metric = str(ref).partition(".")
        found = [c for c in cols if c["benchmark"] == bench and (c["metric"] == metric or not metric)]
        if not found:
            raise InputError(f"{where}: plot: {ref!r} names no column of this table")
        return found[0]["label"]

    out = {k: str(plot[k]) for k in ("kind", "x_label", "y_label") if plot.get(k) is not None}
    for key in ("dotted", "safety"):
        if plot.get(key) is not None:
            if not isinstance(plot[key], list):
                raise InputError(f"{where}: plot: {key}: expected a list of benchmarks")
            out[key] = [column(r) for r in plot[key]]
    if plot.get("helpfulness") is not None:
        out["helpfulness"] = column(plot["helpfulness"])
    if out["kind"] == "tradeoff" and not (out.get("safety") and out.get("helpfulness")):
        raise InputError(f"{where}: plot tradeoff: needs safety (benchmarks) and helpfulness (a benchmark)")
    return out


def _benchmark_data(path: Path, data: dict, stages: dict) -> None:
    """A stage input naming an undeclared stage that is a benchmark gets that benchmark's data
    stage, built as the profile's ``benchmark_data:`` says (``params.dataset`` = the benchmark)."""
    from repro.evaluate.benchmarks import load_all

    template = data.get("benchmark_data")
    if template is None:
        return
    if not isinstance(template, dict) or not isinstance(template.get("kind"), str):
        raise InputError(f"{path}: key 'benchmark_data': expected {{kind: <data stage kind>, params: ...}}")
    known = load_all()
    for raw in list(stages.values()):
        for up in ((raw.get("inputs") or {}).values() if isinstance(raw, dict) else ()):
            if isinstance(up, str) and up not in stages and up in known:
                stage = copy.deepcopy(template)
                stage["params"] = {"dataset": up, **(stage.get("params") or {})}
                stages[up] = stage


def _keys(where: str, raw: dict, allowed: set[str]) -> None:
    unknown = sorted(set(map(str, raw)) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _text(where: str, raw: dict, key: str) -> str:
    if not isinstance(raw.get(key), str) or not raw[key]:
        raise InputError(f"{where}: key {key!r}: expected a string")
    return raw[key]

