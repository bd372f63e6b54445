"""The paper's arms that experiments/ does not declare yet (issue 16, items 8-10), run through the
pipeline from an experiment file written here: LLaMA-2-Chat-VL safety SFT and MTL, safety DPO on
the text-only LLM before VL adaptation (DPO -> assemble -> stage 1 -> stage 2), and Figure 2's
step 0 (the stage-1 output) and final step as evaluated checkpoints of stage 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TRAIN = "{learning_rate: 1.0e-3, per_device_train_batch_size: 4, max_length: 256, max_steps: 2}"
EVAL = "{benchmark: sorry_bench, judge: exact, backend: hf, batch_size: 16, sampling: {max_new_tokens: 4}}"
VISION = "{image_size: 32, patch_size: 8, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 2}"
ARMS = f"""\
schema: 1
description: "issue 16 arms at toy size"
seed: 0
stages:
  aligned_chat:   {{kind: data/synthetic, params: {{dataset: aligned_chat, size: tiny}}}}
  llava_pretrain: {{kind: data/synthetic, params: {{dataset: llava_pretrain, size: tiny}}}}
  llava_instruct: {{kind: data/synthetic, params: {{dataset: llava_instruct, size: tiny}}}}
  vlguard:        {{kind: data/synthetic, params: {{dataset: vlguard, size: tiny}}}}
  pku_saferlhf:   {{kind: data/synthetic, params: {{dataset: pku_saferlhf, size: tiny}}}}
  sorry_bench:    {{kind: data/synthetic, params: {{dataset: sorry_bench, size: tiny}}}}
  # LLM A (LLaMA-2-Chat's role, llama2 template = LLaVA's system prompt)
  llm:    {{kind: models/tiny_llm, params: {{template: llama2, num_hidden_layers: 1}}, inputs: {{corpus: aligned_chat}}}}
  vlm:    {{kind: models/assemble_llava, params: {{vision_config: {VISION}}}, inputs: {{llm: llm}}}}
  stage1: {{kind: train/vl_adapt, params: {{mode: pretrain, <<: {TRAIN}}}, inputs: {{model: vlm, data: llava_pretrain}}}}
  stage2: {{kind: train/vl_adapt, params: {{mode: finetune, <<: {TRAIN}, max_steps: 3, save_steps: 2,
          keep_initial_checkpoint: true, keep_final_checkpoint: true}}, inputs: {{model: stage1, data: llava_instruct}}}}
  sft_a:  {{kind: train/vl_adapt, params: {{mode: sft, <<: {TRAIN}}}, inputs: {{model: stage2, data: vlguard}}}}
  mtl_a:  {{kind: train/vl_adapt, params: {{mode: sft, <<: {TRAIN}}},
          inputs: {{model: stage1, data: llava_instruct, data_2: vlguard}}}}
  ev_ckpt: {{kind: evaluate/benchmark, params: {EVAL}, sweep: {{checkpoint: [step-0, step-2, step-3]}},
           inputs: {{model: stage2, data: sorry_bench}}}}
  # LLM B (Tulu-2's role): safety DPO before VL adaptation, then stages 1 and 2 from it
  llm_b:        {{kind: models/tiny_llm, params: {{template: tulu, num_hidden_layers: 1}}, seed: 1,
                inputs: {{corpus: aligned_chat}}}}
  dpo_b:        {{kind: train/dpo, params: {{<<: {TRAIN}, max_length: 128, margin_eval_pairs: 2}},
                inputs: {{model: llm_b, data: pku_saferlhf}}}}
  vlm_dpo_b:    {{kind: models/assemble_llava, params: {{vision_config: {VISION}}}, inputs: {{llm: dpo_b}}}}
  stage1_dpo_b: {{kind: train/vl_adapt, params: {{mode: pretrain, <<: {TRAIN}}}, inputs: {{model: vlm_dpo_b, data: llava_pretrain}}}}
  stage2_dpo_b: {{kind: train/vl_adapt, params: {{mode: finetune, <<: {TRAIN}}}, inputs: {{model: stage1_dpo_b, data: llava_instruct}}}}
results: [ev_ckpt, sft_a, mtl_a, stage2_dpo_b]
"""


@pytest.fixture(scope="module")
def arms(tmp_path_factory) -> Path:
    from repro.config.load import load_experiment
    from repro.pipeline.runner import Runner

    root = tmp_path_factory.mktemp("arms")
    (root / "experiments").mkdir()
    (root / "experiments" / "arms.yaml").write_text(ARMS)
    exp = load_experiment("arms", "tiny", root=root / "experiments")
    runner = Runner(root / "runs", echo=lambda line: None)
    try:
        runner.run(exp)
    finally:
        runner.close()
    return root / "runs" / "arms" / "stages"


def _metrics(stage: Path) -> dict:
    return json.loads((stage / "metrics.json").read_text())


def _card(model: Path) -> dict:
    return json.loads((model / "repro_model.json").read_text())


def test_stage2_keeps_step_0_and_the_final_step_and_figure2_evaluates_them(arms):
    stage2 = arms / "stage2"
    assert _metrics(stage2)["kept_checkpoints"] == [0, 2, 3]
    # step 0 is the stage-1 output itself, the last step the final model (hard links, same bytes)
    for step, model in (("step-0", arms / "stage1"), ("step-3", stage2)):
        assert (stage2 / "checkpoints" / step / "model.safetensors").read_bytes() == \
            (model / "model.safetensors").read_bytes()
        assert not (stage2 / "checkpoints" / step / "metrics.json").exists()
    evaluated = sorted(p.name for p in arms.glob("ev_ckpt*"))
    assert len(evaluated) == 3 and all(_metrics(arms / name)["n"] == 10 for name in evaluated)


def test_llama2_chat_vl_safety_sft_and_mtl(arms):
    from repro.models.templates import SYSTEM_PROMPTS

    for name, sources in (("sft_a", {"vlguard"}), ("mtl_a", {"llava_instruct", "vlguard"})):
        m = _metrics(arms / name)
        assert {s["dataset"] for s in m["data_sources"].values()} == sources and m["steps"] == 2
        assert _card(arms / name)["template"] == "llama2"
    stage2 = json.loads((arms / "stage2" / "repro_model.json").read_text())
    assert stage2 == {**stage2, "architecture": "llava", "template": "llama2"}
    assert SYSTEM_PROMPTS["llava"]  # the llama2 template carries LLaVA's system prompt


def test_dpo_before_vl_adaptation(arms):
    dpo = arms / "dpo_b"
    assert _card(dpo) == {"architecture": "causal_lm", "template": "tulu"}
    assert _metrics(dpo)["steps"] == 2
    assert _card(arms / "vlm_dpo_b")["architecture"] == "llava" and _card(arms / "vlm_dpo_b")["template"] == "tulu"
    for stage in ("stage1_dpo_b", "stage2_dpo_b"):
        assert _card(arms / stage)["template"] == "tulu" and _metrics(arms / stage)["steps"] == 2
    # stage 1 in LLaVA's plain format; stage 2 with its conversation template, images first
    assert _metrics(arms / "stage1_dpo_b")["image_token_moved"] == 0
