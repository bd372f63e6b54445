"""The paper's findings at tiny scale, on 3 seeds (issues 10 and 20; docs/experiments.md,
"Findings at tiny scale"): `repro findings` runs the `findings` experiment (the same stages, trainers,
evaluations and `exact` judge as `make reproduce-all PROFILE=tiny`) once per seed and checks each
finding with the margins of repro/report/findings.py; these tests assert its verdicts.

A finding that does not hold at tiny scale is marked ``xfail(strict=True)`` with the measured
numbers in docs/experiments.md: it is reported, not tuned away, and the mark must go when it
starts to hold. ``REPRO_FINDINGS_RUNS_DIR`` reuses a runs directory (e.g. the one of ``make
reproduce-all``, which already holds every stage).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import repro

pytestmark = pytest.mark.slow  # 3 seeds x ~100 tiny stages: `make test-slow` (CI), not `make test`
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    runs = Path(os.environ.get("REPRO_FINDINGS_RUNS_DIR") or tmp_path_factory.mktemp("runs"))
    proc = repro("findings", "--profile", "tiny", "--runs-dir", runs, "--seeds", ",".join(map(str, SEEDS)))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = (runs / "findings" / "findings.md").read_text()
    print("\n" + report)
    data = json.loads((runs / "findings" / "findings.json").read_text())
    assert sorted(data["scores"]) == [str(s) for s in SEEDS]
    for seed in SEEDS:  # each seed has its own verified manifest
        assert (runs / f"findings-seed{seed}" / "manifest.json").is_file()
    for key in data["findings"]:
        assert f"| {key} | claim" in report  # each finding stands beside the paper's claim
    assert "(chance " in report  # helpfulness is printed beside its chance level
    return runs, data


@pytest.fixture(scope="module")
def findings(run) -> dict:
    return run[1]["findings"]


def test_tiny_clip_features_carry_what_the_benchmarks_ask(run):
    """The tiny CLIP (one artefact for every seed, as the paper's CLIP): a linear probe on the
    features LLaVA reads reaches >= 0.9 on held-out pictures for colour, shape and the cross."""
    runs = run[0]
    manifest = json.loads((runs / "findings-seed0" / "manifest.json").read_text())
    clip = manifest["stages"]["clip"]
    probe = json.loads((runs / clip["output"] / "metrics.json").read_text())["probe"]
    for attr in ("color", "shape", "crossed"):
        assert probe[attr] >= 0.9 and probe[attr] > probe[f"{attr}_chance"], (attr, probe)


def test_vl_adapted_helpfulness_is_clearly_above_chance(run):
    """Issue 20's goal: helpfulness >= 0.6 where chance is <= 0.35, on every seed."""
    for seed, rows in run[1]["scores"].items():
        vl = rows["VL-adapted"]
        assert vl["helpful_chance"] <= 0.35 and vl["helpful"] >= 0.6, (seed, vl)


def held_on_every_seed(findings, key):
    v = findings[key]
    assert v["holds"] and v["held_on"] == list(SEEDS), v


def test_1_vl_adaptation_raises_asr(findings):
    held_on_every_seed(findings, "1")


def test_2_safety_sft_lowers_asr_at_a_cost(findings):
    held_on_every_seed(findings, "2-sft")


def test_2_dpo_lowers_asr_at_a_cost(findings):
    held_on_every_seed(findings, "2-dpo")


@pytest.mark.xfail(strict=True, reason="measured: holds on seeds 0 and 2; on seed 1 MTL keeps VLGuard's "
                   "safety (asr 0.17) and the safe merge (w=0.5) scores 0.52 against MTL's 0.64 (docs/experiments.md)")
def test_3_merging_beats_mtl_on_the_tradeoff(findings):
    held_on_every_seed(findings, "3")


@pytest.mark.xfail(strict=True, reason="measured: holds on seed 0; the first merges that restore safety "
                   "score 0.52 (seed 1) and 0.49 (seed 2) against VL-adapted 0.67 / 0.71 (docs/experiments.md)")
def test_4_a_merge_ratio_keeps_helpfulness_and_restores_safety(findings):
    held_on_every_seed(findings, "4")
