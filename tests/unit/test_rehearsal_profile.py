"""The rehearsal profile is the paper profile's declarations with only sizes swapped (issue 18):
every experiment loads, its stage graph beyond the sources (data/*, models/*) is the paper's, and
the params that differ are the size and platform keys docs/rehearsal.md lists."""

from __future__ import annotations

import pytest

from repro.config.load import list_experiments, load_experiment
from repro.errors import InputError

# params the rehearsal may change, per stage kind (docs/rehearsal.md, "What is swapped")
SWAPPED = {
    "train/vl_adapt": {"per_device_train_batch_size", "gradient_accumulation_steps", "expect_global_batch",
                       "max_steps", "save_steps", "launch", "deepspeed"},
    "train/dpo": {"per_device_train_batch_size", "gradient_accumulation_steps", "expect_global_batch",
                  "max_steps", "launch", "deepspeed", "margin_eval_pairs"},
    "train/filter": {"backend", "batch_size"},
    "evaluate/benchmark": {"backend", "batch_size", "sampling", "judge_options"},
}
SOURCES = ("data/", "models/")
# experiments whose rows name checkpoints: the rehearsal's are the paper's schedule scaled down
# (figure2) or stand-ins for the released checkpoints (released); compared apart below
SCHEDULED = {"figure2", "released", "all"}
PAPER_ONLY = {"smoke"}  # the tiny profile's own smoke test has no paper declaration


@pytest.fixture(scope="module")
def loaded():
    names = [n for n in list_experiments() if n not in PAPER_ONLY]
    return {n: (load_experiment(n, "paper"), load_experiment(n, "rehearsal")) for n in names}


def test_every_paper_experiment_loads_under_the_rehearsal(loaded):
    assert {"all", "table1", "figure2", "table2", "merging", "findings"} <= set(loaded)


def test_the_stage_graph_is_the_papers(loaded):
    for name, (paper, rehearsal) in loaded.items():
        if name in SCHEDULED:
            continue
        trained = {s for s, spec in paper.stages.items() if not spec.kind.startswith(SOURCES)}
        assert trained <= set(rehearsal.stages), name
        for stage in trained:
            a, b = paper.stages[stage], rehearsal.stages[stage]
            assert (a.kind, a.inputs) == (b.kind, b.inputs), f"{name}: {stage}"
        # model assembly keeps the paper's inputs (LLM + vision tower) and dtype
        for stage in ("vlm", "vlm_b", "vlm_b_dpo"):
            if stage in paper.stages:
                assert paper.stages[stage].inputs == rehearsal.stages[stage].inputs
                assert paper.stages[stage].params == rehearsal.stages[stage].params


def test_only_sizes_and_platform_params_differ(loaded):
    paper, rehearsal = loaded["all"]
    for stage, a in paper.stages.items():
        b = rehearsal.stages.get(stage)
        if b is None or a.kind.startswith(SOURCES) or a.kind == "report/table":
            continue
        changed = {k for k in set(a.params) | set(b.params) if a.params.get(k) != b.params.get(k)}
        assert changed <= SWAPPED.get(a.kind, set()), f"{stage}: {sorted(changed)}"
        if a.kind == "evaluate/benchmark" and "sampling" in changed:  # only the length is cut
            same = {k: v for k, v in b.params["sampling"].items() if k != "max_new_tokens"}
            assert same == {k: v for k, v in (a.params.get("sampling") or {}).items() if k != "max_new_tokens"}


def test_the_merge_grid_and_figure2_schedule_follow_the_paper(loaded):
    paper, rehearsal = loaded["all"]
    grid = sorted(s for s in paper.stages if s.startswith("merged@"))
    assert grid == sorted(s for s in rehearsal.stages if s.startswith("merged@")) and len(grid) == 11
    rows = [r.label for r in rehearsal.tables["figure2"].rows]
    assert rows == ["LLM A-VL", "final step-4"]  # kept checkpoints, then the final model
    stage2 = rehearsal.stages["stage2"].params
    assert (stage2["max_steps"], stage2["save_steps"]) == (4, 2)
    assert stage2["keep_initial_checkpoint"] and stage2["keep_final_checkpoint"]


def test_chat_judges_get_the_profile_endpoint_and_model_judges_do_not(loaded):
    _, rehearsal = loaded["table1"]
    mmsb = rehearsal.stages["eval~stage2~mm_safetybench"].params
    assert mmsb["judge_options"]["base_url"].startswith("http://127.0.0.1:")
    assert "judge_options" not in rehearsal.stages["eval~stage2~sorry_bench"].params
    assert rehearsal.stages["eval~stage2~sorry_bench"].inputs["judge"] == "judge_sorry"


def test_a_stage_declared_again_with_another_kind_is_replaced(experiments):
    (experiments / "_base" / "rehearsal.yaml").write_text(
        "schema: 1\ninclude: [_base/paper.yaml]\n"
        "stages:\n  a: {kind: test/concat, inputs: {x: b, y: b}}\n  b: {kind: test/write_text, params: {repeat: 3}}\n")
    (experiments / "_base" / "paper.yaml").write_text(
        "schema: 1\nstages:\n  a: {kind: test/write_text, params: {text: paper}}\n"
        "  b: {kind: test/write_text, params: {text: paper}}\n")
    (experiments / "two.yaml").write_text("schema: 1\ninclude: ['_base/{profile}.yaml']\nresults: [a]\n")
    exp = load_experiment("two", "rehearsal", root=experiments)
    assert exp.stages["a"].params == {} and exp.stages["a"].inputs == {"x": "b", "y": "b"}
    assert exp.stages["b"].params == {"text": "paper", "repeat": 3}  # same kind: merged


def test_tiny_clip_is_read_back_as_a_fetched_tower(tmp_path):
    pytest.importorskip("torch")
    from PIL import Image

    from repro.models.llava import _vision_from_dir, clip_stage
    from repro.pipeline.context import StageContext

    out = tmp_path / "clip"
    out.mkdir()
    vision = {"image_size": 336, "patch_size": 14, "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 1}
    ctx = StageContext(experiment="t", name="clip", kind="models/tiny_clip", params={"vision_config": vision},
                       inputs={}, out=out, seed=0, profile="rehearsal")
    clip_stage(ctx)
    assert json_of(out / "metrics.json")["image_tokens"] == 576
    tower, processor = _vision_from_dir(out, None)
    pixels = processor(images=[Image.new("RGB", (32, 32))], return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape[-2:]) == (336, 336) and tower.config.patch_size == 14


def json_of(path):
    import json

    return json.loads(path.read_text())
