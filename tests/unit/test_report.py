"""Report rendering on hand-made metrics: sweep tables and figures (byte-deterministic PNGs),
report.md from a manifest (coverage, references, provenance), and the GPU-hour cost model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.errors import InputError
from repro.report import estimates, figures, report


def _eval_dir(root: Path, name: str, metrics: dict, *, n=10, n_total=10, benchmark="sorry_bench") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"benchmark": benchmark, "primary": "asr", "metrics": metrics,
                                                "n": n, "n_total": n_total, "partial": n < n_total}))
    return d


def _sweep_inputs(root: Path) -> dict[str, Path]:
    inputs = {}
    for step, asr, refusal, acc in [(20, 0.2, 0.1, 0.5), (40, 0.5, 0.2, 0.6), (60, 0.8, 0.3, 0.7)]:
        inputs[f"sorry@step-{step}"] = _eval_dir(root, f"s{step}", {"asr": asr, "benign_refusal_rate": refusal})
        inputs[f"mmb@step-{step}"] = _eval_dir(root, f"m{step}", {"circular_acc": acc}, benchmark="mmbench",
                                               n=5 if step == 60 else 10)
    return inputs


COLUMNS = [{"label": "ASR", "role": "sorry", "metric": "asr"},
           {"label": "benign refusal", "role": "sorry", "metric": "benign_refusal_rate", "style": "dotted"},
           {"label": "MMBench", "role": "mmb", "metric": "circular_acc"}]


def test_sweep_table_and_lines_figure_are_deterministic(tmp_path):
    inputs = _sweep_inputs(tmp_path / "in")
    sweep = figures.build_sweep(inputs, COLUMNS, "safety over steps")
    assert [r["x"] for r in sweep["rows"]] == [20.0, 40.0, 60.0]
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        out.mkdir()
        metrics = figures.render(sweep, out, {"plot": "lines", "x_label": "step", "y_label": "rate"})
        outs.append(out)
    assert metrics["metrics"]["step-40/ASR"] == 0.5 and metrics["partial"] is True
    md = (outs[0] / "sweep.md").read_text()
    assert "| step-60 | 80.0 | 30.0 | 70.0* |" in md and "no reference" in md
    assert "step-20,ASR,sorry_bench,asr,0.200000,10,10,False" in (outs[0] / "sweep.csv").read_text()
    assert r"\begin{tabular}{lrrr}" in (outs[0] / "sweep.tex").read_text()
    png = (outs[0] / "figure.png").read_bytes()
    assert png.startswith(b"\x89PNG") and png == (outs[1] / "figure.png").read_bytes()
    assert b"Software" not in png and b"matplotlib" not in png


def test_tradeoff_points_average_the_safety_roles(tmp_path):
    inputs = {}
    for w, a, b, h in [("0.0", 0.8, 0.6, 0.7), ("0.5", 0.4, 0.2, 0.65), ("1.0", 0.1, 0.1, 0.4)]:
        inputs[f"s1@{w}"] = _eval_dir(tmp_path, f"a{w}", {"asr": a})
        inputs[f"s2@{w}"] = _eval_dir(tmp_path, f"b{w}", {"asr": b})
        inputs[f"h@{w}"] = _eval_dir(tmp_path, f"h{w}", {"acc": h}, benchmark="seed_bench")
    cols = [{"label": "A", "role": "s1"}, {"label": "B", "role": "s2"}, {"label": "H", "role": "h", "metric": "acc"}]
    sweep = figures.build_sweep(inputs, cols, "merge")
    out = tmp_path / "out"
    out.mkdir()
    figures.render(sweep, out, {"plot": "tradeoff", "safety": ["s1", "s2"], "helpfulness": "h"})
    points = json.loads((out / "tradeoff.json").read_text())
    assert [p["label"] for p in points] == ["0.0", "0.5", "1.0"]
    assert points[1]["asr"] == pytest.approx(0.3) and points[1]["helpfulness"] == 0.65
    assert (out / "figure.png").is_file()


def test_sweep_errors_are_one_line(tmp_path):
    inputs = _sweep_inputs(tmp_path)
    del inputs["mmb@step-40"]
    with pytest.raises(InputError, match="role 'mmb' lacks variant"):
        figures.build_sweep(inputs, COLUMNS, "t")
    with pytest.raises(InputError, match="metric 'nope' not found"):
        figures.build_sweep(_sweep_inputs(tmp_path / "b"), [{"label": "x", "role": "sorry", "metric": "nope"}], "t")
    with pytest.raises(InputError, match="carry no number"):
        sweep = {"title": "t", "columns": [], "styles": {}, "rows": [{"label": "base", "x": None, "cells": {}}]}
        figures.lines_figure(sweep, tmp_path / "f.png", title="", x_label="", y_label="")


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
    ev = estimates.estimate(exp, exp.stages["ev_stage2_sorry"])
    assert ev.gpus == 1 and "judge 7.2B" in ev.note
    assert estimates.estimate(load_experiment("table1", "tiny"), exp.stages["stage2"]).gpus == 0


def test_plan_shows_cache_state_gpus_and_hours(tmp_path):
    from repro.cli import cli, _register

    _register()
    result = CliRunner().invoke(cli, ["plan", "table2", "--profile", "paper", "--runs-dir", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    assert "[missing] gpus=4 estimate=" in result.output and "learning_rate: 5e-07" in result.output
    assert "total: 68 stages, 0 cached" in result.output
    assert not (tmp_path / "none").exists()  # plan creates nothing


def test_tradeoff_names_a_shared_role_by_its_column_label(tmp_path):
    # WildJailbreak feeds two columns (ASR and benign refusal): its role alone is ambiguous
    inputs = {}
    for w, asr, benign, h in [("0.0", 0.9, 0.1, 0.7), ("1.0", 0.2, 0.8, 0.4)]:
        inputs[f"wjb@{w}"] = _eval_dir(tmp_path, f"w{w}", {"asr": asr, "benign_refusal_rate": benign})
        inputs[f"h@{w}"] = _eval_dir(tmp_path, f"h{w}", {"acc": h}, benchmark="seed_bench")
    cols = [{"label": "WJB ASR", "role": "wjb", "metric": "asr"},
            {"label": "WJB benign refusal", "role": "wjb", "metric": "benign_refusal_rate"},
            {"label": "H", "role": "h", "metric": "acc"}]
    sweep = figures.build_sweep(inputs, cols, "merge")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match="'wjb' feeds 2 columns"):
        figures.render(sweep, out, {"plot": "tradeoff", "safety": ["wjb"], "helpfulness": "h"})
    figures.render(sweep, out, {"plot": "tradeoff", "safety": ["WJB ASR"], "helpfulness": "h"})
    points = json.loads((out / "tradeoff.json").read_text())
    assert [p["asr"] for p in points] == [0.9, 0.2]
