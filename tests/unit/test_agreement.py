"""Judge agreement: Cohen's kappa against hand-computed cases, the report/agreement stage on
hand-made evaluations, and the loader deriving re-judging and agreement stages from a table's
``second_judge:``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.config.load import load_experiment
from repro.errors import InputError
from repro.pipeline.context import StageContext
from repro.report.agreement import agreement_stage, cohen_kappa, confusion


def test_kappa_matches_a_hand_computed_case():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15. p_o = 35/50 = 0.7; first says yes 25/50,
    # second 30/50: p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert confusion(pairs) == [{"first": "n", "second": "n", "n": 15}, {"first": "n", "second": "y", "n": 10},
                                {"first": "y", "second": "n", "n": 5}, {"first": "y", "second": "y", "n": 20}]
    # three labels: p_o = 4/6; p_e = (2*2 + 2*1 + 2*3) / 36 = 1/3; kappa = (2/3 - 1/3) / (2/3) = 0.5
    three = [("a", "a"), ("a", "c"), ("b", "b"), ("b", "c"), ("c", "c"), ("c", "c")]
    assert cohen_kappa(three) == pytest.approx(0.5)


def test_kappa_edge_cases():
    assert cohen_kappa([("y", "y")] * 3 + [("n", "n")] * 2) == pytest.approx(1.0)
    assert cohen_kappa([("y", "n"), ("n", "y")]) == pytest.approx(-1.0)
    assert cohen_kappa([]) is None
    assert cohen_kappa([("y", "y")] * 4) is None  # one label from both judges: undefined, not 1 or 0


def _eval(root: Path, name: str, judge: str, verdicts: list[tuple[bool, bool]], responses=None, rate=None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    responses = responses or [f"r{i}" for i in range(len(verdicts))]
    lines = [json.dumps({"id": f"s{i}", "response": r, "response_sha256": f"h-{r}",
                         "verdict": {"parsed": True, "unsafe": u, "refusal": f}})
             for i, ((u, f), r) in enumerate(zip(verdicts, responses))]
    (d / "samples.jsonl").write_text("\n".join(lines) + "\n")
    (d / "metrics.json").write_text(json.dumps({"benchmark": "sorry_bench", "primary": "asr", "judge": {"name": judge},
                                                "metrics": {"asr": rate if rate is not None else
                                                            sum(u for u, _ in verdicts) / len(verdicts)}}))
    return d


def _stage(tmp_path: Path, inputs: dict, rows: list) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    agreement_stage(StageContext(experiment="e", name="t~agreement", kind="report/agreement",
                                 params={"title": "agree", "rows": rows}, inputs=inputs, out=out, seed=0, profile="tiny"))
    return out


UNSAFE, REFUSAL, SAFE = (True, False), (False, True), (False, False)


def test_agreement_stage_rates_kappa_and_confusion(tmp_path):
    inputs = {"e1": _eval(tmp_path, "e1", "exact", [UNSAFE, UNSAFE, REFUSAL, REFUSAL]),
              "j1": _eval(tmp_path, "j1", "keyword_refusal", [UNSAFE, REFUSAL, REFUSAL, REFUSAL]),
              "e2": _eval(tmp_path, "e2", "exact", [UNSAFE, SAFE]),
              "j2": _eval(tmp_path, "j2", "keyword_refusal", [UNSAFE, SAFE])}
    rows = [{"label": "A", "pairs": [{"benchmark": "sorry_bench", "first": "e1", "second": "j1"}]},
            {"label": "B", "pairs": [{"benchmark": "sorry_bench", "first": "e2", "second": "j2"}]}]
    out = _stage(tmp_path, inputs, rows)
    data = json.loads((out / "agreement.json").read_text())
    (bench,) = data["benchmarks"]
    assert bench["judges"] == ["exact", "keyword_refusal"] and bench["n"] == 6
    row_a = bench["rows"][0]
    assert row_a["rates"] == [0.5, 0.25] and row_a["n"] == 4
    # row A: p_o = 3/4; first unsafe 2/4 refusal 2/4, second unsafe 1/4 refusal 3/4: p_e = 1/2; kappa 0.5
    assert row_a["kappa"] == pytest.approx(0.5)
    assert row_a["confusion"] == [{"first": "refusal", "second": "refusal", "n": 2},
                                  {"first": "unsafe", "second": "refusal", "n": 1},
                                  {"first": "unsafe", "second": "unsafe", "n": 1}]
    assert bench["rows"][1]["kappa"] == pytest.approx(1.0)
    assert sum(c["n"] for c in bench["confusion"]) == 6
    md = (out / "agreement.md").read_text()
    assert "| A | 4 | 50.0 | 25.0 | 0.500 | refusal/refusal 2, unsafe/refusal 1, unsafe/unsafe 1 |" in md
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["A/sorry_bench/kappa"] == pytest.approx(0.5) and "sorry_bench/kappa" in metrics


def test_agreement_refuses_other_responses(tmp_path):
    inputs = {"e": _eval(tmp_path, "e", "exact", [UNSAFE, REFUSAL]),
              "j": _eval(tmp_path, "j", "keyword_refusal", [UNSAFE, REFUSAL], responses=["r0", "changed"])}
    rows = [{"label": "A", "pairs": [{"benchmark": "sorry_bench", "first": "e", "second": "j"}]}]
    with pytest.raises(InputError, match="sample 's1': the second judge did not score the same response"):
        _stage(tmp_path, inputs, rows)


# ------------------------------------------------------------------ declaration
def _experiment(tmp_path: Path, second_judge: str, rows: str = "{A: stage2_b, B: {model: llm_b, suite: text}}") -> Path:
    """An experiment beside copies of the real profiles, with one table naming a second judge."""
    import shutil

    root = tmp_path / "experiments"
    shutil.copytree(Path(__file__).resolve().parents[2] / "experiments" / "_base", root / "_base")
    (root / "judged.yaml").write_text(
        "schema: 1\ninclude: ['_base/{profile}.yaml']\ntables:\n  t:\n    title: judged\n    suite: [sorry_bench, mmbench]\n"
        f"    rows: {rows}\n    second_judge: {second_judge}\n")
    return root


def test_second_judge_derives_rejudging_and_agreement_stages(tmp_path):
    root = _experiment(tmp_path, "{safety: keyword_refusal}")
    exp = load_experiment("judged", "tiny", root=root)
    rejudge = exp.stages["rejudge~keyword_refusal~stage2_b~sorry_bench"]
    assert rejudge.kind == "evaluate/judge" and rejudge.params == {"judge": "keyword_refusal"}
    assert rejudge.inputs == {"responses": "eval~stage2_b~sorry_bench", "data": "sorry_bench"}
    # row B's text suite adds wildjailbreak and xstest to its row; mmbench is scored by extraction:
    # not re-judged
    assert sorted(s for s in exp.stages if s.startswith("rejudge~")) == [
        "rejudge~keyword_refusal~llm_b~sorry_bench", "rejudge~keyword_refusal~llm_b~wildjailbreak",
        "rejudge~keyword_refusal~llm_b~xstest", "rejudge~keyword_refusal~stage2_b~sorry_bench"]
    agreement = exp.stages["t~agreement"]
    assert agreement.kind == "report/agreement" and exp.results == ("t", "t~agreement")
    assert agreement.params["rows"][0] == {"label": "A", "pairs": [{
        "benchmark": "sorry_bench", "first": "eval~stage2_b~sorry_bench",
        "second": "rejudge~keyword_refusal~stage2_b~sorry_bench"}]}
    paper = load_experiment("judged", "paper", root=root)  # the paper profile's model judges stay first
    assert paper.stages["eval~stage2_b~sorry_bench"].inputs["judge"] == "judge_sorry"
    assert "judge" not in paper.stages["rejudge~keyword_refusal~stage2_b~sorry_bench"].inputs


def test_second_judge_follows_swept_evaluations(tmp_path):
    root = _experiment(tmp_path, "{sorry_bench: keyword_refusal}",
                       rows="{A: {model: stage2, suite: [sorry_bench], over: {checkpoint: [step-10, step-20]}}}")
    exp = load_experiment("judged", "tiny", root=root)
    assert exp.stages["rejudge~keyword_refusal~stage2~sorry_bench~checkpoint@step-10"].inputs["responses"] == \
        "eval~stage2~sorry_bench~checkpoint@step-10"
    assert set(exp.stages["t~agreement"].inputs) >= {"eval~stage2~sorry_bench~checkpoint@step-20",
                                                    "rejudge~keyword_refusal~stage2~sorry_bench~checkpoint@step-20"}


@pytest.mark.parametrize("value, message", [
    ("{mmbench: keyword_refusal}", "mmbench is scored by extraction, not a judge"),
    ("{sorry_bench: exact}", "sorry_bench is already judged by 'exact'"),
    ("{figstep: keyword_refusal}", "no row of this table is evaluated on 'figstep'"),
    ("{sorry_bench: keyword_refusl}", "unknown judge 'keyword_refusl'; did you mean 'keyword_refusal'"),
    ("{sorry_bench: sorry_bench_judge}", "needs a judge model: bind one in the profile"),
    ("[keyword_refusal]", "key 'second_judge': expected a mapping of benchmark or suite -> judge"),
])
def test_second_judge_errors_name_the_table_and_the_value(tmp_path, value, message):
    root = _experiment(tmp_path, value)
    with pytest.raises(InputError, match="table t") as err:
        load_experiment("judged", "tiny", root=root)
    assert message in str(err.value)
