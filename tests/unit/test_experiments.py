"""Every experiment declaration loads in both profiles, maps to the paper, pins its external
inputs, shares stages by identical definitions, derives its evaluation matrix from its tables,
and carries the paper's hyperparameters."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.config.load import experiments_dir, list_experiments, load_experiment
from repro.config.tables import MODEL_FREE_JUDGES, columns, eval_stage
from repro.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = list_experiments()
PAPER_EXPERIMENTS = ["table1", "figure2", "data_filtering", "table2", "layers", "objectives", "merging",
                     "released"]
SAFETY = ("sorry_bench", "wildjailbreak", "xstest", "mm_safetybench", "siuo", "figstep")


def _lock() -> dict:
    return yaml.safe_load((ROOT / "manifest.lock").read_text())


def test_every_paper_experiment_is_declared():
    assert set(PAPER_EXPERIMENTS) | {"all", "smoke", "findings"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("profile", ["tiny", "paper"])
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_loads_and_maps_to_the_paper(name, profile):
    exp = load_experiment(name, profile)
    assert exp.stages and exp.results
    paper = exp.resolved.get("paper")
    assert isinstance(paper, dict) and paper.get("artefact"), f"{name}: no paper: {{artefact: ...}}"


def test_the_declarations_are_short():
    files = [*experiments_dir().glob("*.yaml"), *experiments_dir().glob("_base/*.yaml"),
             *experiments_dir().glob("_base/*/*.yaml")]
    lines = {f.relative_to(experiments_dir()).as_posix(): len(f.read_text().splitlines()) for f in files}
    assert sum(lines.values()) <= 400, lines
    assert all(n <= 60 for f, n in lines.items() if "/" not in f), lines


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
    """Every paper safety evaluation is judged by a model: a fetched checkpoint, or a chat
    endpoint (the official GPT-4-class protocols), never a rule."""
    from repro.evaluate.benchmarks import get_benchmark

    exp = load_experiment(name, "paper")
    for spec in exp.stages.values():
        if spec.kind == "evaluate/benchmark" and spec.params["benchmark"] in SAFETY:
            judge = spec.params.get("judge") or get_benchmark(spec.params["benchmark"]).judge
            if judge in MODEL_FREE_JUDGES:
                assert judge not in ("exact", "keyword_refusal", "xstest_strmatch"), spec.name
            else:
                assert exp.stages[spec.inputs["judge"]].kind == "models/fetch", spec.name


def test_a_paper_safety_benchmark_without_a_judge_model_is_a_load_error(tmp_path):
    root = tmp_path / "experiments"
    (root / "_base").mkdir(parents=True)
    for f in experiments_dir().glob("_base/*.yaml"):
        (root / "_base" / f.name).write_text(f.read_text())
    paper = root / "_base" / "paper.yaml"
    paper.write_text(paper.read_text().replace("wildguard: judge_wildguard", "nothing: judge_wildguard"))
    (root / "t.yaml").write_text("schema: 1\ninclude: ['_base/{profile}.yaml']\n"
                                 "tables: {t: {title: T, suite: text, rows: {A: llm}}}\n")
    with pytest.raises(InputError, match=r"wildjailbreak is judged by 'wildguard', which needs a judge model"):
        load_experiment("t", "paper", root=root)
    assert load_experiment("t", "tiny", root=root).stages  # tiny: the `exact` rule judge needs none


def _paper_copy(tmp_path, judges_line: str) -> Path:
    root = tmp_path / "experiments"
    (root / "_base").mkdir(parents=True)
    for f in experiments_dir().glob("_base/*.yaml"):
        (root / "_base" / f.name).write_text(f.read_text())
    paper = root / "_base" / "paper.yaml"
    text = re.sub(r"(?m)^judges: \{(.*)\}$", lambda m: "judges: {" + m.group(1) + ", " + judges_line + "}",
                  paper.read_text())
    assert judges_line in text
    paper.write_text(text)
    (root / "t.yaml").write_text("schema: 1\ninclude: ['_base/{profile}.yaml']\n"
                                 "tables: {t: {title: T, suite: [siuo, sorry_bench], rows: {A: stage2}}}\n")
    return root


def test_a_chat_judge_is_bound_to_its_endpoint_in_the_profile(tmp_path):
    root = _paper_copy(tmp_path, 'siuo_gpt4v: {base_url: "http://127.0.0.1:8000/v1", model: judge}')
    stages = load_experiment("t", "paper", root=root).stages
    assert stages["eval~stage2~siuo"].params["judge_options"] == {"base_url": "http://127.0.0.1:8000/v1",
                                                                  "model": "judge"}
    assert "judge_options" not in stages["eval~stage2~sorry_bench"].params  # a model judge: untouched
    with pytest.raises(InputError, match=r"judges: siuo_gpt4v: unknown option 'modle'"):
        load_experiment("t", "paper", root=_paper_copy(tmp_path / "b", "siuo_gpt4v: {modle: judge}"))
    root = _paper_copy(tmp_path / "c", "sorry_bench_judge: {model: judge}")
    with pytest.raises(InputError, match=r"sorry_bench_judge runs on a model: bind a models/fetch stage"):
        load_experiment("t", "paper", root=root)


def test_judges_that_need_no_model_are_the_rule_and_chat_judges():
    from repro.evaluate.judges import JUDGES, ModelJudge

    needs_none = {n for n in JUDGES.names() if not issubclass(JUDGES.get(n), ModelJudge)}
    assert needs_none == MODEL_FREE_JUDGES


@pytest.mark.parametrize("profile", ["tiny", "paper"])
def test_a_stage_name_means_one_definition(profile):
    seen: dict[str, tuple] = {}
    # the tiny smoke is a pipeline check at shorter recipes (experiments/_base/tiny/smoke.yaml),
    # checked below; every experiment the claims rest on shares one definition per name
    for name in [n for n in EXPERIMENTS if (profile, n) != ("tiny", "smoke")]:
        for spec in load_experiment(name, profile).stages.values():
            key = (spec.kind, spec.params, spec.inputs, spec.seed)
            assert seen.setdefault(spec.name, key) == key, f"{spec.name} differs in {name}"


def test_the_tiny_smoke_differs_only_in_its_declared_sizes():
    """What tiny/smoke.yaml shortens (the CLIP and its pairs, LLM alignment, stages 1 and 2 and
    their data) and what is built from them differ from `all`; every other stage is `all`'s."""
    smoke, full = load_experiment("smoke", "tiny").stages, load_experiment("all", "tiny").stages
    differ = {n for n, s in smoke.items() if n in full and (s.kind, s.params, s.inputs, s.seed) !=
              (full[n].kind, full[n].params, full[n].inputs, full[n].seed)}
    assert {"clip", "web_pairs", "clip_probe", "llm", "stage1", "stage2", "llava_pretrain", "llava_instruct"} <= differ
    assert {"aligned_chat", "base_llm", "sorry_bench", "mm_safetybench"}.isdisjoint(differ)
    assert smoke["clip"].params["max_steps"] < full["clip"].params["max_steps"]


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


def test_tables_derive_one_evaluation_per_row_and_benchmark():
    t1 = load_experiment("table1", "paper")
    llm_a = t1.tables["table1"].row("LLM A")
    assert llm_a.benchmarks == ("sorry_bench", "wildjailbreak", "xstest")
    assert t1.tables["table1"].row("LLM A-VL").benchmarks == (*SAFETY, "mmbench", "mme", "seed_bench")
    ev = t1.stages[eval_stage("stage2", "siuo")]
    assert ev.name == "eval~stage2~siuo" and ev.params["benchmark"] == "siuo"
    assert ev.inputs == {"model": "stage2", "data": "siuo"}  # the official protocol: a chat judge
    fig = t1.stages[eval_stage("stage2", "figstep")]
    assert fig.inputs == {"model": "stage2", "data": "figstep", "judge": "judge_vision"}
    assert t1.stages["eval~stage2~mme"].inputs == {"model": "stage2", "data": "mme"}  # no judge
    assert t1.stages["siuo"].kind == "data/fetch"  # the profile's benchmark_data
    report = t1.stages["table1"]
    assert report.kind == "report/table" and set(report.inputs.values()) <= set(t1.stages)


def test_the_swept_stages_expand():
    f2 = load_experiment("figure2", "tiny")
    base = "eval~stage2~sorry_bench~checkpoint"
    assert {s for s in f2.stages if s.startswith(f"{base}@")} == {f"{base}@step-{n}" for n in (0, 50, 100, 150, 200)}
    assert f"{base}@step-150" in f2.stages["figure2"].inputs
    merging = load_experiment("merging", "paper")
    assert len([s for s in merging.stages if s.startswith("merged@")]) == 11
    assert len([s for s in merging.stages if s.startswith("eval~merged~mmbench@")]) == 11


@pytest.mark.parametrize("profile", ["tiny", "paper"])
def test_findings_rows_exist_in_every_profile(profile):
    from repro.report.findings import ROWS, chain

    exp = load_experiment("findings", profile)
    assert set(chain(exp.tables["findings"])) == set(ROWS)
    for label in ROWS:
        for stage in exp.tables["findings"].row(label).stages.values():
            assert stage in exp.stages or any(s.startswith(f"{stage}@") for s in exp.stages), stage


def test_every_benchmark_declares_its_columns():
    from repro.evaluate.benchmarks import load_all

    for bench in load_all().values():
        cols = columns(bench)
        assert cols[0]["metric"] == bench.primary and all(c["units"] in ("rate", "points") for c in cols)


def test_declarations_load_without_torch():
    code = ("import sys; from click.testing import CliRunner; from repro.cli import cli, _register; _register()\n"
            "for args in (['list'], ['plan', 'all', '--profile', 'paper'], ['ls', 'stages']):\n"
            "    r = CliRunner().invoke(cli, args); assert r.exit_code == 0, r.output\n"
            "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_make_targets_cover_every_experiment():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^reproduce-all:", make, re.M)
    assert "reproduce-%" in make


def test_set_reaches_derived_stages_and_recipes():
    exp = load_experiment("smoke", "tiny", ("eval~stage2~sorry_bench.params.limit=5",
                                            "recipes.helpful_eval.batch_size=4"))
    assert exp.stages["eval~stage2~sorry_bench"].params["limit"] == 5
    assert "limit" not in exp.stages["eval~llm~sorry_bench"].params
    t1 = load_experiment("table1", "paper", ("recipes.safety_eval.backend=hf",))
    assert {s.params["backend"] for s in t1.stages.values() if s.params.get("benchmark") in SAFETY} == {"hf"}
    assert {s.params["backend"] for s in t1.stages.values() if s.params.get("benchmark") == "mme"} == {"vllm"}
