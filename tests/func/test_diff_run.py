"""`repro diff` after one learning rate changes (`--set`): it names exactly the stages downstream
of the change (the stage by its param, the rest by their changed input), the metrics that moved
with both values and the delta, and the samples whose response or verdict changed."""

from __future__ import annotations

import json
import shutil

from conftest import copy_runs, repro

DOWNSTREAM = ["stage2", "eval~stage2~sorry_bench", "eval~stage2~mm_safetybench", "table"]


def test_diff_after_a_changed_learning_rate(smoke_run, tmp_path):
    runs = copy_runs(smoke_run.runs, tmp_path / "runs")
    before = tmp_path / "before.json"
    shutil.copy(runs / "smoke" / "manifest.json", before)
    proc = repro("run", "smoke", "--profile", "tiny", "--runs-dir", runs, "--set", "stage2.params.learning_rate=1e-5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = repro("diff", before, runs / "smoke", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    changed = {r["stage"]: r for r in d["stages"] if r["state"] != "same"}
    assert sorted(changed) == sorted(DOWNSTREAM) and list(changed)[0] == "stage2"  # in run order
    assert changed["stage2"]["reasons"] == ["param learning_rate: 0.002 -> 1e-05"]
    assert all(changed[s]["reasons"] == ["input model changed"] for s in DOWNSTREAM[1:3])
    assert changed["table"]["reasons"] == ["input eval~stage2~mm_safetybench changed", "input eval~stage2~sorry_bench changed"]
    moved = {(m["stage"], m["metric"]) for m in d["metrics"] if m["changed"]}
    assert moved and {stage for stage, _ in moved} <= set(DOWNSTREAM)
    assert all(m["delta"] == m["b"] - m["a"] for m in d["metrics"] if m["changed"] and m["delta"] is not None)
    samples = {s["stage"]: s for s in d["samples"]}
    assert set(samples) <= set(DOWNSTREAM[1:3]) and all(s["available"] for s in samples.values())
    assert sum(s["response_changed"] for s in samples.values()) > 0
    text = repro("diff", before, runs / "smoke").stdout
    assert "stage2" in text and "param learning_rate: 0.002 -> 1e-05" in text and "no difference" not in text
