"""Report rendering on hand-made metrics: tables (plain and swept rows) and their figures
(byte-deterministic PNGs), report.md from a manifest (coverage, references, provenance), and the
GPU-hour cost model."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner

from repro.errors import InputError
from repro.stages.context import StageContext
from repro.pipeline import estimates
from repro.report import figures, report, tables


def _eval_dir(root: Path, name: str, metrics: dict, *, n=10, n_total=10, benchmark="sorry_bench",
              judge: dict | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"benchmark": benchmark, "primary": "asr", "metrics": metrics,
                                                "n": n, "n_total": n_total, "partial": n < n_total}))
    if judge:
        (d / "protocol.json").write_text(json.dumps({"judge": judge}))
    return d


COLUMNS = [{"label": "ASR", "benchmark": "sorry_bench", "metric": "asr", "units": "rate"},
           {"label": "benign refusal", "benchmark": "sorry_bench", "metric": "benign_refusal_rate", "units": "rate"},
           {"label": "MMBench", "benchmark": "mmbench", "metric": "circular_acc", "units": "rate"},
           {"label": "MME", "benchmark": "mme", "metric": "perception", "units": "points"}]
ROWS = [{"label": "LLM A-VL", "cells": {"ASR": "sorry", "benign refusal": "sorry", "MMBench": "mmb", "MME": "mme"}}]


def _swept_inputs(root: Path) -> dict[str, Path]:
    inputs = {}
    for step, asr, refusal, acc, mme in [(20, 0.2, 0.1, 0.5, 0.5), (40, 0.5, 0.2, 0.6, 900.0), (60, 0.8, 0.3, 0.7, 1.0)]:
        inputs[f"sorry@step-{step}"] = _eval_dir(root, f"s{step}", {"asr": asr, "benign_refusal_rate": refusal},
                                                 judge={"judge": "exact"})
        inputs[f"mmb@step-{step}"] = _eval_dir(root, f"m{step}", {"circular_acc": acc}, benchmark="mmbench",
                                               n=5 if step == 60 else 10)
        inputs[f"mme@step-{step}"] = _eval_dir(root, f"e{step}", {"perception": mme}, benchmark="mme")
    return inputs


def _run(tmp_path: Path, inputs: dict, rows=ROWS, columns=COLUMNS, plot=None, name="out") -> Path:
    out = tmp_path / name
    out.mkdir()
    params = {"title": "safety over steps", "columns": columns, "rows": rows, **({"plot": plot} if plot else {})}
    tables.table_stage(StageContext(experiment="e", name="t", kind="report/table", params=params, inputs=inputs,
                                    out=out, seed=0, profile="tiny"))
    return out


def test_swept_rows_table_and_lines_figure_are_deterministic(tmp_path):
    inputs = _swept_inputs(tmp_path / "in")
    plot = {"kind": "lines", "x_label": "step", "y_label": "rate", "dotted": ["benign refusal"]}
    outs = [_run(tmp_path, inputs, plot=plot, name=f"out{k}") for k in range(2)]
    table = json.loads((outs[0] / "table.json").read_text())
    assert [r["label"] for r in table["rows"]] == ["step-20", "step-40", "step-60"]
    assert [r["x"] for r in table["rows"]] == [20.0, 40.0, 60.0]
    metrics = json.loads((outs[0] / "metrics.json").read_text())
    assert metrics["metrics"]["step-40/ASR"] == 0.5 and metrics["partial"] is True
    md = (outs[0] / "table.md").read_text()
    assert "| step-60 | 80.0 | 30.0 | 70.0* | 1.00 |" in md and "no reference" in md
    assert "| step-20 | 20.0 | 10.0 | 50.0 | 0.50 |" in md  # MME in points even below 1: by units, not value
    assert "MME in its own points" in md and "Judges: exact." in md
    assert "step-20,ASR,sorry_bench,asr,rate,0.200000,10,10,False,exact,no reference" in (outs[0] / "table.csv").read_text()
    assert r"\begin{tabular}{lrrrr}" in (outs[0] / "table.tex").read_text()
    png = (outs[0] / "figure.png").read_bytes()
    assert png.startswith(b"\x89PNG") and png == (outs[1] / "figure.png").read_bytes()
    assert b"Software" not in png and b"matplotlib" not in png


def test_plain_and_swept_rows_in_one_table(tmp_path):
    inputs = {"llm": _eval_dir(tmp_path, "llm", {"asr": 0.1, "benign_refusal_rate": 0.0})}
    for w, asr in (("0.0", 0.9), ("1.0", 0.2)):
        inputs[f"merged@{w}"] = _eval_dir(tmp_path, f"m{w}", {"asr": asr, "benign_refusal_rate": 0.5})
    rows = [{"label": "LLM", "cells": {"ASR": "llm"}}, {"label": "merge", "cells": {"ASR": "merged"}}]
    out = _run(tmp_path, inputs, rows=rows, columns=COLUMNS[:1])
    assert [r["label"] for r in json.loads((out / "table.json").read_text())["rows"]] == ["LLM", "merge 0.0", "merge 1.0"]


def test_tradeoff_points_average_the_safety_columns(tmp_path):
    inputs = {}
    for w, a, h in [("0.0", 0.8, 0.7), ("0.5", 0.4, 0.65), ("1.0", 0.1, 0.4)]:
        inputs[f"s@{w}"] = _eval_dir(tmp_path, f"a{w}", {"asr": a, "benign_refusal_rate": a / 2})
        inputs[f"h@{w}"] = _eval_dir(tmp_path, f"h{w}", {"circular_acc": h}, benchmark="mmbench")
    rows = [{"label": "merge", "cells": {"ASR": "s", "benign refusal": "s", "MMBench": "h"}}]
    out = _run(tmp_path, inputs, rows=rows, columns=COLUMNS[:3],
               plot={"kind": "tradeoff", "safety": ["ASR", "benign refusal"], "helpfulness": "MMBench"})
    points = json.loads((out / "tradeoff.json").read_text())
    assert [p["label"] for p in points] == ["0.0", "0.5", "1.0"]
    assert points[1]["asr"] == pytest.approx(0.3) and points[1]["helpfulness"] == 0.65
    assert (out / "figure.png").is_file()


def test_swept_rows_follow_their_numbers_not_the_order_inputs_arrive_in(tmp_path):
    """A stage run in a worker or container reads its inputs back from JSON with sorted keys
    (step-100 before step-50): the table is the one-process run's, byte for byte."""
    inputs = {}
    for step in (0, 50, 100):
        inputs[f"s@step-{step}"] = _eval_dir(tmp_path / "in", f"s{step}", {"asr": step / 100})
    rows = [{"label": "x", "cells": {"ASR": "s"}}]
    declared = _run(tmp_path, inputs, rows=rows, columns=COLUMNS[:1], name="declared")
    resorted = _run(tmp_path, dict(sorted(inputs.items())), rows=rows, columns=COLUMNS[:1], name="resorted")
    labels = [r["label"] for r in json.loads((declared / "table.json").read_text())["rows"]]
    assert labels == ["step-0", "step-50", "step-100"]
    for name in ("table.json", "table.md", "table.csv", "metrics.json"):
        assert (declared / name).read_bytes() == (resorted / name).read_bytes(), name


def test_a_rate_with_no_parsed_judgement_is_na_never_zero(tmp_path):
    """All of an evaluation's judgements unparsed (unparsed=exclude): no number, shown as n/a in
    every rendering, no tradeoff point, and a reference check on it fails; a metric missing with no
    parse failures is still a binding error."""
    from repro.report.references import check_references

    inputs = {"s@0.0": _eval_dir(tmp_path, "a0", {"asr": 0.5, "benign_refusal_rate": 0.1}),
              "s@1.0": _eval_dir(tmp_path, "a1", {"benign_refusal_rate": 0.2}),
              "h@0.0": _eval_dir(tmp_path, "h0", {"circular_acc": 0.6}, benchmark="mmbench"),
              "h@1.0": _eval_dir(tmp_path, "h1", {"circular_acc": 0.4}, benchmark="mmbench")}
    data = json.loads((inputs["s@1.0"] / "metrics.json").read_text())
    (inputs["s@1.0"] / "metrics.json").write_text(json.dumps({**data, "parse_failures": 10}))
    rows = [{"label": "merge", "cells": {"ASR": "s", "MMBench": "h"}}]
    cols = [COLUMNS[0], COLUMNS[2]]
    out = _run(tmp_path, inputs, rows=rows, columns=cols,
               plot={"kind": "tradeoff", "safety": ["ASR"], "helpfulness": "MMBench"})
    md = (out / "table.md").read_text()
    assert "| 1.0 | n/a | 40.0 |" in md and "n/a: no number (1.0 / ASR: 10 of 10 judgements unparsed" in md
    assert "1.0,ASR,sorry_bench,asr,rate,n/a," in (out / "table.csv").read_text()
    assert [p["label"] for p in json.loads((out / "tradeoff.json").read_text())] == ["0.0"]
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["1.0/ASR"] is None and metrics["0.0/ASR"] == 0.5
    manifest = {"experiment": "x", "results": {"t": {"metrics": {"1.0/ASR": None}}}}
    with mock.patch("repro.report.references.load_references",
                    return_value=[{"experiment": "x", "stage": "t", "metric": "1.0/ASR", "value": 0.3,
                                   "tolerance": 0.05}]):
        assert [c[0] for c in check_references(manifest)] == ["fail"]
    (inputs["s@1.0"] / "metrics.json").write_text(json.dumps(data))  # no parse failures: a wrong binding
    with pytest.raises(InputError, match="metric 'asr' not found"):
        _run(tmp_path, inputs, rows=rows, columns=cols, name="again")


def test_table_errors_are_one_line(tmp_path):
    inputs = _swept_inputs(tmp_path)
    del inputs["mmb@step-40"]
    with pytest.raises(InputError, match="'mmb@step-40' not bound"):
        _run(tmp_path, inputs)
    bad = [dict(COLUMNS[0], metric="nope")]
    with pytest.raises(InputError, match="metric 'nope' not found"):
        _run(tmp_path, _swept_inputs(tmp_path / "b"), rows=[{"label": "r", "cells": {"ASR": "sorry"}}], columns=bad,
             name="o2")
    with pytest.raises(InputError, match="carry no number"):
        table = {"title": "t", "columns": [], "rows": [{"label": "base", "x": None, "cells": {}}]}
        figures.lines_figure(table, tmp_path / "f.png", title="", x_label="", y_label="", dotted=[])


def test_latex_escapes_every_special_character():
    label = r"\input{/etc/passwd} $x$ #1 ^2 _a ~b %c &d"
    tex = tables.to_latex({"title": "t", "columns": [label], "units": {label: "rate"},
                           "rows": [{"label": label, "cells": {}}]})
    escaped = r"\textbackslash{}input\{/etc/passwd\} \$x\$ \#1 \textasciicircum{}2 \_a \textasciitilde{}b \%c \&d"
    rest = escaped
    for seq in (r"\textbackslash{}", r"\textasciicircum{}", r"\textasciitilde{}", r"\{", r"\}", r"\$", r"\#",
                r"\_", r"\%", r"\&"):
        rest = rest.replace(seq, "")
    assert not set(rest) & set("\\{}$#^_~%&")  # nothing TeX would interpret is left
    assert r"\textbackslash{}input\{/etc/passwd\} \$x\$ \#1 \textasciicircum{}2 \_a \textasciitilde{}b \%c \&d" in tex


def _manifest(root: Path) -> dict:
    table_out = root / "store" / "k1" / "out"
    table_out.mkdir(parents=True)
    (table_out / "table.md").write_text("### Safety\n\n| model | SORRY |\n|---|---|\n| LLM | 60.0 |\n")
    (table_out / "table.csv").write_text("model\n")
    return {
        "experiment": "table1", "profile": "tiny", "manifest_sha256": "ab" * 32, "system_sha256": "cd" * 32,
        "lock": {"sha256": "ef" * 32}, "result_stages": ["table1"],
        "declaration": {"description": "LLM vs LVLM", "paper": {"artefact": "Table 1"}},
        "system": {"accelerator_model_name": "none (CPU only)", "host_processor_core_count": 2,
                   "other_software_stack": {"torch": "2.13.0"}, "library_versions": {"cuda": "none (CPU only)"}},
        "stages": {
            "ev": {"kind": "evaluate/benchmark", "key": "1" * 64, "output": "store/k0/out", "output_digest": "2" * 64,
                   "inputs": {"model": "llm"}, "protocol_choices": {"judge": {"judge": "exact"}}},
            "table1": {"kind": "report/table", "key": "3" * 64, "output": "store/k1/out", "output_digest": "4" * 64,
                       "inputs": {"llm": "ev"}, "protocol_choices": {}},
        },
        "results": {"ev": {"benchmark": "sorry_bench", "n": 5, "n_total": 10, "partial": True, "metrics": {"asr": 0.6}},
                    "table1": {"metrics": {"LLM/SORRY": 0.6}, "partial": True}},
    }


def test_report_md_summarises_the_manifest(tmp_path):
    manifest = _manifest(tmp_path)
    (tmp_path / "table1").mkdir()
    (tmp_path / "table1" / "manifest.json").write_text(json.dumps(manifest))
    path = report.write_report(tmp_path / "table1")
    text = path.read_text()
    assert "#### Safety" in text and "| LLM | 60.0 |" in text and "[table.csv](stages/table1/table.csv)" in text
    assert "No reference" in text
    assert "| ev | sorry_bench | llm | 5 / 10 | **partial** |" in text
    assert "none (CPU only)" in text and "| torch | 2.13.0 |" in text
    assert '| judge | {"judge": "exact"} | ev |' in text
    assert "ab" * 32 in text and "`" + "3" * 16 + "`" in text
    assert report.write_report(tmp_path / "table1").read_text() == text  # same manifest, same bytes


def test_report_shows_delta_and_verdict_where_a_reference_exists(tmp_path, monkeypatch):
    ref = {"experiment": "table1", "stage": "table1", "metric": "LLM/SORRY", "value": 0.5, "tolerance": 0.05,
           "source": {"paper": "arXiv 2410.07571v2", "table": "1", "row": "LLM", "column": "SORRY"}}
    monkeypatch.setattr(report, "load_references", lambda: [ref])
    text = "\n".join(report.references_section(_manifest(tmp_path)))
    assert "| table1 | LLM/SORRY | 0.6000 | 0.5000 | +0.1000 | ±0.05 | OUTSIDE |" in text


def test_report_needs_a_manifest(tmp_path):
    with pytest.raises(InputError, match="manifest.json: missing"):
        report.write_report(tmp_path / "nothing")


def test_estimate_of_paper_stage2_follows_the_cost_model():
    from repro.config.load import load_experiment

    exp = load_experiment("table1", "paper")
    est = estimates.estimate(exp, exp.stages["stage2"])
    items, per_item = estimates.DATASETS["llava_instruct"]
    params = (estimates.MODEL_PARAMS_B["llama2_7b_chat"] + estimates.LLAVA_EXTRA_B) * 1e9
    flops = 6 * params * items * per_item
    assert est.gpus == 4
    assert est.gpu_hours == pytest.approx(flops / (989e12 * 0.35) / 3600)
    assert 10 < est.gpu_hours < 40  # order of magnitude of LLaVA-1.5's published stage-2 cost
    dpo = load_experiment("table2", "paper")
    assert estimates.estimate(dpo, dpo.stages["dpo_pku"]).gpus == 4  # 32 = 1 x 4 GPUs x 8
    ev = estimates.estimate(exp, exp.stages["eval~stage2~sorry_bench"])
    assert ev.gpus == 1 and "judge 7.2B" in ev.note
    assert estimates.estimate(load_experiment("table1", "tiny"), exp.stages["stage2"]).gpus == 0


def test_plan_shows_cache_state_gpus_and_hours(tmp_path):
    from repro.cli import cli, _register

    _register()
    result = CliRunner().invoke(cli, ["plan", "table2", "--profile", "paper", "--runs-dir", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    assert "[missing] gpus=4 estimate=" in result.output and "learning_rate: 5e-07" in result.output
    assert "total: 156 stages, 0 cached" in result.output  # 119 + 36 re-judgings + their agreement
    assert not (tmp_path / "none").exists()  # plan creates nothing


@pytest.mark.parametrize("profile", ["tiny", "paper"])
def test_findings_scores_every_model_of_its_declaration(tmp_path, profile):
    """`repro findings --profile paper` reads the rows of its own table: no stage name is built
    from strings, so the paper's 11 merge ratios are found as the tiny profile's 5 are."""
    from repro.config.load import load_experiment
    from repro.report import findings

    exp = load_experiment("findings", profile)
    metrics = {"asr": 0.5, "benign_refusal_rate": 0.1, "circular_acc": 0.4, "acc": 0.6}
    stages = {}
    sample = {"id": "1", "group": "1", "options": {"A": "red", "B": "blue"}}  # 2 options
    for name, spec in exp.stages.items():
        if spec.kind == "evaluate/benchmark":
            _eval_dir(tmp_path, name, metrics)
            (tmp_path / name / "samples.jsonl").write_text(json.dumps(sample) + "\n")
            stages[name] = {"output": name}
    scores = findings.scores(tmp_path, {"stages": stages}, exp.tables[findings.TABLE])
    merges = [m for m in scores if m.startswith("merge ")]
    assert len(merges) == (11 if profile == "paper" else 5)
    assert scores["VL-adapted"]["helpful"] == pytest.approx((0.4 + 0.6 + 0.6) / 3)  # circular MMBench
    # chance: MMBench circular (1/2)^2, MME 1/2 (yes/no), SEED 1/2 (two options)
    assert scores["merge 0.5" if profile == "tiny" else merges[0]]["helpful_chance"] == pytest.approx(1.25 / 3)
    assert set(scores["aligned LLM"]) == {"asr_text", "over_refusal"}


def test_a_plain_row_takes_its_x_from_its_label(tmp_path):
    """figure2 can add the stage-1 model as "step-0" next to the swept stage-2 checkpoints."""
    inputs = {"s1": _eval_dir(tmp_path, "s1", {"asr": 0.0, "benign_refusal_rate": 0.0})}
    for step in (10, 20):
        inputs[f"s2@step-{step}"] = _eval_dir(tmp_path, f"s2-{step}", {"asr": 0.5, "benign_refusal_rate": 0.1})
    rows = [{"label": "step-0", "cells": {"ASR": "s1"}}, {"label": "stage 2", "cells": {"ASR": "s2"}}]
    out = _run(tmp_path, inputs, rows=rows, columns=COLUMNS[:1], plot={"kind": "lines", "x_label": "step"})
    table = json.loads((out / "table.json").read_text())
    assert [(r["label"], r["x"]) for r in table["rows"]] == [("step-0", 0.0), ("stage 2 step-10", 10.0),
                                                             ("stage 2 step-20", 20.0)]
    assert (out / "figure.png").is_file()
