"""A table's ``second_judge:``: its evaluations scored again by another judge, and the agreement.

    tables:
      table2:
        suite: full
        rows: {LLM B-VL: stage2_b, ...}
        second_judge: {safety: keyword_refusal}     # benchmark or suite -> judge

For every row evaluated on a named benchmark the loader derives the stage
``rejudge~<judge>~<model>~<benchmark>`` (the evaluation's name with ``eval`` replaced by
``rejudge~<judge>``): an ``evaluate/judge`` stage that scores the evaluation's own responses
(nothing is generated again; a swept evaluation's variants are re-judged one by one), with the
benchmark's data (images, the dataset's marker) and, for a model judge, the judge model the
profile's ``judges:`` binds. One ``report/agreement`` stage ``<table>~agreement`` sets each
evaluation beside its re-judging (rates, Cohen's kappa, confusion counts:
``repro/report/agreement.py``) and is a result of the experiment.
"""

from __future__ import annotations

from typing import Any

from repro.config.schema import Row, check_name
from repro.config.tables import SEP, _add, _benchmark, _suite, first_judge, judge_endpoint, judge_model
from repro.errors import InputError


def rejudge_stage(judge: str, evaluation: str) -> str:
    """``eval~<model>~<benchmark>[~<param>]`` re-judged by ``judge``."""
    head, _, rest = evaluation.partition(SEP)
    if head != "eval" or not rest:
        raise ValueError(f"not an evaluation stage name: {evaluation!r}")
    return SEP.join(["rejudge", judge, rest])


def _judges(where: str, raw: Any, suites: dict, data: dict, evaluated: set[str]) -> dict[str, str]:
    """``{benchmark or suite: judge}`` -> ``{benchmark: judge}``: the safety benchmarks a row is
    evaluated on (a suite's others are left out; a benchmark named alone must be one), each
    first judged by another judge."""
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{where}: key 'second_judge': expected a mapping of benchmark or suite -> judge")
    out: dict[str, str] = {}
    for key, judge in raw.items():
        judge = check_name(f"{where}: second_judge", "judge", judge)
        for name in _suite(f"{where}: second_judge", [key], suites):
            bench = _benchmark(f"{where}: second_judge", name)
            if key == name and bench.scorer != "safety":
                raise InputError(f"{where}: second_judge: {name} is scored by extraction, not a judge")
            if key == name and name not in evaluated:
                raise InputError(f"{where}: second_judge: no row of this table is evaluated on {name!r}")
            if bench.scorer != "safety" or name not in evaluated:
                continue
            if first_judge(bench, data) == judge:
                raise InputError(f"{where}: second_judge: {name} is already judged by {judge!r}; "
                                 "name another judge")
            out[name] = judge
    if not out:
        raise InputError(f"{where}: second_judge: names no safety benchmark a row is evaluated on")
    return out


def second_judge(where: str, table: str, title: str, raw: Any, rows: list[Row], suites: dict,
                 data: dict, stages: dict) -> tuple[tuple[str, ...], str]:
    """Add the re-judging stages and the agreement stage to ``stages``; return their names."""
    judges = _judges(where, raw, suites, data, {b for row in rows for b in row.benchmarks})
    rejudged: list[str] = []
    inputs: dict[str, str] = {}
    agreement_rows = []
    for row in rows:
        pairs = []
        for bench in row.benchmarks:
            if bench not in judges:
                continue
            evaluation = row.stages[bench]
            name = rejudge_stage(judges[bench], evaluation)
            stage: dict[str, Any] = {"kind": "evaluate/judge", "params": {"judge": judges[bench]},
                                     "inputs": {"responses": evaluation, "data": bench}}
            model = judge_model(f"{where}: second_judge", bench, judges[bench], data)
            if model is not None:
                stage["inputs"]["judge"] = model
            options = judge_endpoint(data, judges[bench])
            if options is not None:
                stage["params"]["judge_options"] = options
            _add(where, stages, name, stage)
            rejudged.append(name)
            inputs.update({evaluation: evaluation, name: name})
            pairs.append({"benchmark": bench, "first": evaluation, "second": name})
        if pairs:
            agreement_rows.append({"label": row.label, "pairs": pairs})
    agreement = f"{table}{SEP}agreement"
    if agreement in stages:
        raise InputError(f"{where}: a stage named {agreement!r} is declared too")
    stages[agreement] = {"kind": "report/agreement", "gather": True, "inputs": inputs,
                         "params": {"title": f"Judge agreement: {title}", "rows": agreement_rows}}
    return tuple(rejudged), agreement
