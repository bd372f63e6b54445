"""``repro diff`` on real runs of the three-stage ``chain`` experiment (tests/conftest.py): equal
runs, a changed param (the stage and exactly what reads it, with `repro status`'s reasons, and
the metrics that moved), a manifest copied out of its runs dir, JSON, and bad arguments."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from repro.cli.diff import diff_cmd
from repro.config.load import load_experiment
from repro.errors import InputError
from repro.pipeline.diff import diff_runs, format_diff
from repro.pipeline.runner import Runner


def run(experiments, runs, *overrides):
    exp = load_experiment("chain", "tiny", tuple(overrides), root=experiments)
    return Runner(runs, echo=lambda _: None).run(exp)


def test_two_clean_runs_are_identical(experiments, tmp_path):
    run(experiments, tmp_path / "a")
    run(experiments, tmp_path / "b")
    d = diff_runs(tmp_path / "a" / "chain", tmp_path / "b" / "chain")
    assert d["identical"] and {r["state"] for r in d["stages"]} == {"same"}
    assert all(not m["changed"] and m["delta"] == 0 for m in d["metrics"])
    assert "no difference: 3 stages with the same keys and outputs, 3 metrics equal" in format_diff(d)


def test_changed_param_names_downstream_stages_reasons_and_metrics(experiments, tmp_path):
    run(experiments, tmp_path / "a")
    run(experiments, tmp_path / "b", "b.params.text=earthling")
    d = diff_runs(tmp_path / "a" / "chain", tmp_path / "b" / "chain")
    states = {r["stage"]: (r["state"], r["outputs"], r["reasons"]) for r in d["stages"]}
    assert states == {"a": ("same", "same", []),
                      "b": ("changed", "differ", ["param text: 'world' -> 'earthling'"]),
                      "c": ("changed", "differ", ["input y changed"])}
    changed = {(m["stage"], m["metric"]): (m["a"], m["b"], m["delta"]) for m in d["metrics"] if m["changed"]}
    assert changed == {("b", "length"): (5.0, 9.0, 4.0), ("c", "length"): (16.0, 20.0, 4.0)}
    text = format_diff(d)
    assert "stages: 1 same, 2 changed, 0 only in A, 0 only in B" in text
    assert "b  outputs differ  (param text: 'world' -> 'earthling')" in text
    assert "c  length: 16.0000 -> 20.0000  (+4.0000)" in text and "metrics: 2 of 3 changed" in text


def test_manifest_copied_out_of_its_runs_dir_reads_the_other_store(experiments, tmp_path):
    runs = tmp_path / "runs"
    run(experiments, runs)
    before = tmp_path / "before.json"
    shutil.copy(runs / "chain" / "manifest.json", before)
    run(experiments, runs, "a.params.repeat=3")  # same runs dir: the old entries stay in the store
    d = diff_runs(before, runs / "chain")
    states = {r["stage"]: r["reasons"] for r in d["stages"] if r["state"] == "changed"}
    assert states == {"a": ["param repeat: 2 -> 3"], "c": ["input x changed"]}


def test_cli_json_exit_code_and_bad_input(experiments, tmp_path):
    run(experiments, tmp_path / "a")
    run(experiments, tmp_path / "b", "b.params.text=earth")
    cli = CliRunner()
    res = cli.invoke(diff_cmd, [str(tmp_path / "a" / "chain"), str(tmp_path / "b" / "chain"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["identical"] is False and [r["stage"] for r in data["stages"] if r["state"] == "changed"] == ["b", "c"]
    res = cli.invoke(diff_cmd, [str(tmp_path / "a" / "chain"), str(tmp_path / "b" / "chain"), "--exit-code"])
    assert res.exit_code == 1
    res = cli.invoke(diff_cmd, [str(tmp_path / "a" / "chain"), str(tmp_path / "a" / "chain"), "--exit-code"])
    assert res.exit_code == 0 and "no difference" in res.output
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="bad.json: invalid JSON"):
        diff_runs(tmp_path / "bad.json", tmp_path / "a" / "chain")
    with pytest.raises(InputError, match=r"empty[/\\]manifest.json: missing"):
        (tmp_path / "empty").mkdir()
        diff_runs(tmp_path / "empty", tmp_path / "a" / "chain")


def test_text_marks_an_unchanged_verdict_of_a_changed_response():
    d = {"a": {"manifest": "A", "experiment": "e", "manifest_sha256": "a" * 64},
         "b": {"manifest": "B", "experiment": "e", "manifest_sha256": "b" * 64},
         "identical": False, "stages": [], "metrics": [], "samples": [{
             "benchmark": "mme", "stage": "eval~m~mme", "row": "M", "available": True, "n": 2,
             "response_changed": 2, "verdict_changed": 1, "only_a": 0, "only_b": 0, "examples": [
                 {"id": "x", "verdict_a": "wrong", "verdict_b": "wrong", "response_a": "re", "response_b": "It"},
                 {"id": "y", "verdict_a": "wrong", "verdict_b": "correct", "response_a": "reB", "response_b": "Yes"}]}]}
    text = format_diff(d)
    assert 'x: verdict wrong (same); response "re" -> "It"' in text
    assert 'y: verdict wrong -> correct; response "reB" -> "Yes"' in text
