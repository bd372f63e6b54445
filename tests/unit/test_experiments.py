"""Every experiment declaration loads in both profiles, maps to the paper, pins its external
inputs, shares stages by identical definitions, and carries the paper's hyperparameters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from repro.config.load import experiments_dir, list_experiments, load_experiment

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = list_experiments()
PAPER_EXPERIMENTS = ["table1", "figure2", "data_filtering", "table2", "layers", "objectives", "merging",
                     "released"]
NEW_KINDS = {"report/sweep": "repro.report.figures:sweep_stage"}


@pytest.fixture(autouse=True, scope="module")
def _kinds():
    """The stage kinds of repro/report/ that repro/stages.py may not list yet (same targets)."""
    from repro.stages import STAGE_KINDS

    for kind, target in NEW_KINDS.items():
        if kind not in STAGE_KINDS:
            STAGE_KINDS.register(kind, target)


def _lock() -> dict:
    return yaml.safe_load((ROOT / "manifest.lock").read_text())


def test_every_paper_experiment_is_declared():
    assert set(PAPER_EXPERIMENTS) | {"all", "smoke"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("profile", ["tiny", "paper"])
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_loads_and_maps_to_the_paper(name, profile):
    exp = load_experiment(name, profile)
    assert exp.stages and exp.results
    paper = exp.resolved.get("paper")
    assert isinstance(paper, dict) and paper.get("artefact"), f"{name}: no paper: {{artefact: ...}}"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_declaration_is_short(name):
    lines = (experiments_dir() / f"{name}.yaml").read_text().splitlines()
    assert len(lines) <= 60, f"{name}.yaml has {len(lines)} lines"


def test_mapping_is_documented_once():
    doc = (ROOT / "docs" / "experiments.md").read_text()
    for name in PAPER_EXPERIMENTS + ["all"]:
        assert f"`{name}`" in doc and f"reproduce-{name}" in doc, name
        artefact = load_experiment(name, "tiny").resolved["paper"]["artefact"]
        assert artefact in doc, f"{name}: paper artefact {artefact!r} not in docs/experiments.md"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_paper_inputs_come_through_pinned_fetch_stages(name):
    lock = _lock()
    exp = load_experiment(name, "paper")
    for spec in exp.stages.values():
        assert spec.kind not in ("data/synthetic", "models/tiny_llm"), f"{name}: {spec.name} is a tiny stand-in"
        if spec.kind == "models/fetch":
            assert spec.params["model"] in lock["models"], f"{spec.name}: {spec.params['model']}"
        if spec.kind == "data/fetch":
            assert spec.params["dataset"] in lock["datasets"], f"{spec.name}: {spec.params['dataset']}"
        if spec.kind == "models/assemble_llava":
            assert "vision" in spec.inputs, f"{spec.name}: a paper LLaVA needs the fetched CLIP tower"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_paper_safety_evaluations_bind_a_judge_model(name):
    exp = load_experiment(name, "paper")
    for spec in exp.stages.values():
        if spec.kind == "evaluate/benchmark" and spec.params.get("benchmark") in (
                "sorry_bench", "wildjailbreak", "mm_safetybench", "siuo", "figstep"):
            judge = exp.stages[spec.inputs["judge"]]
            assert judge.kind == "models/fetch", spec.name


@pytest.mark.parametrize("profile", ["tiny", "paper"])
def test_a_stage_name_means_one_definition(profile):
    seen: dict[str, tuple] = {}
    for name in EXPERIMENTS:
        for spec in load_experiment(name, profile).stages.values():
            key = (spec.kind, spec.params, spec.inputs, spec.seed)
            assert seen.setdefault(spec.name, key) == key, f"{spec.name} differs in {name}"


@pytest.mark.parametrize("profile", ["tiny", "paper"])
def test_all_is_the_union_of_the_paper_experiments(profile):
    union = {}
    for name in PAPER_EXPERIMENTS:
        union.update(load_experiment(name, profile).stages)
    everything = load_experiment("all", profile)
    assert set(everything.stages) == set(union)
    assert set(everything.results) == {r for n in PAPER_EXPERIMENTS for r in load_experiment(n, profile).results}


def test_paper_recipes_carry_the_paper_numbers():
    t2 = load_experiment("table2", "paper").stages
    s2 = t2["stage2_b"].params
    assert (s2["learning_rate"], s2["expect_global_batch"], s2["num_train_epochs"]) == (2e-5, 64, 1)
    assert s2["per_device_train_batch_size"] * s2["gradient_accumulation_steps"] * 4 == 64
    assert (s2["warmup_ratio"], s2["lr_scheduler_type"], s2["max_length"], s2["bf16"]) == (0.03, "cosine", 2048, True)
    for name in ("dpo_pku", "dpo_spa"):
        d = t2[name].params
        assert (d["learning_rate"], d["expect_global_batch"], d["beta"]) == (5e-7, 32, 0.1)
        assert (d["lr_scheduler_type"], d["warmup_ratio"], d["num_train_epochs"]) == ("linear", 0.1, 3)
        assert (d["per_device_train_batch_size"], d["gradient_accumulation_steps"]) == (1, 8)
        assert (d["max_length"], d["bf16"]) == (2048, True)
    s1 = t2["stage1_b"].params
    assert (s1["learning_rate"], s1["expect_global_batch"]) == (1e-3, 256)
    for name in ("sft_vlguard", "mtl"):  # [choice]: safety SFT and MTL follow stage 2
        p = t2[name].params
        assert (p["learning_rate"], p["expect_global_batch"], p["mode"]) == (2e-5, 64, "sft")


def test_the_swept_stages_expand():
    f2 = load_experiment("figure2", "tiny")
    assert {s for s in f2.stages if s.startswith("ev_ckpt_sorry@")} == {
        "ev_ckpt_sorry@step-10", "ev_ckpt_sorry@step-20", "ev_ckpt_sorry@step-30", "ev_ckpt_sorry@step-40"}
    assert "sorry@step-30" in f2.stages["figure2"].inputs
    merging = load_experiment("merging", "paper")
    assert len([s for s in merging.stages if s.startswith("merged@")]) == 11


def test_make_targets_cover_every_experiment():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^reproduce-all:", make, re.M)
    assert "reproduce-%" in make
