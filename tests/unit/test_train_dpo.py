"""Safety DPO (``train/dpo``): TRL's DPOTrainer on text pairs (tiny LLM) and image pairs (tiny
LLaVA) raises the chosen-minus-rejected reward margin; flipped labels lower it; params recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.errors import InputError
from test_train import make_ctx, tensors  # noqa: E402  (tests/unit is on sys.path)

FAST = {"learning_rate": 5e-4, "max_steps": 6, "per_device_train_batch_size": 2,
        "max_length": 128, "warmup_ratio": 0.0, "margin_eval_pairs": 8}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    from repro.data import open_dataset
    from repro.data.synthetic import generate
    from repro.models.tiny import build_tiny_llm, make_tiny_llava

    root = tmp_path_factory.mktemp("dpo")
    generate("pku_saferlhf", root / "pku", 0, "tiny")
    generate("spa_vl", root / "spa", 0, "tiny")
    texts = [t for p in open_dataset(root / "pku").records() for t in (p.prompt, p.chosen, p.rejected)]
    build_tiny_llm(root / "llm", texts, seed=0, template="llama2_nosys")
    make_tiny_llava(root / "llava", seed=0, template="llama2_nosys")
    # the same pairs with chosen and rejected swapped
    flipped = root / "pku_flipped"
    (flipped / "data" / "Alpaca-7B").mkdir(parents=True)
    for split in ("train", "test"):
        rows = [json.loads(line) for line in
                (root / "pku" / "data" / "Alpaca-7B" / f"{split}.jsonl").read_text().splitlines()]
        for row in rows:
            row["safer_response_id"] = 1 - row["safer_response_id"]
        (flipped / "data" / "Alpaca-7B" / f"{split}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows))
    (flipped / "DATASET.json").write_text(json.dumps({"dataset": "pku_saferlhf", "source": "local"}))
    return {"root": root, "pku": root / "pku", "flipped": flipped, "spa": root / "spa",
            "llm": root / "llm", "llava": root / "llava"}


def _metrics(ctx) -> dict:
    return json.loads((ctx.out / "metrics.json").read_text())


def test_text_dpo_raises_margin_and_flipped_pairs_lower_it(world, tmp_path):
    from repro.train.dpo import run_dpo

    ctx = make_ctx(tmp_path, "train/dpo", FAST, {"model": world["llm"], "data": world["pku"]})
    run_dpo(ctx)
    m = _metrics(ctx)
    # step 1 is measured before any update: policy == reference, margin exactly 0
    assert m["reward_margin_first"] == 0.0 and m["first_dpo_loss"] == pytest.approx(0.6931, abs=1e-3)
    assert m["pairs_reward_margin"] > 0.3 and m["pairs_reward_accuracy"] >= 0.75
    assert m["last_dpo_loss"] < m["first_dpo_loss"] and m["steps"] == 6
    # default pair_selection safe_vs_unsafe: the 15 harmful prompts (safe refusal vs unsafe
    # compliance) of the 20; the 5 benign ones have two safe answers and are left out
    assert m["pairs_used"] == m["pairs_total"] == 15 and m["effective_global_batch"] == 2
    assert m["data_sources"]["data"]["pairs_read"] == 20 and m["data_sources"]["data"]["pairs_kept"] == 15
    assert ctx.protocol_choices["pair_selection"]["rule"] == "safe_vs_unsafe"
    # "safer" orients every pair by safer_response_id: a file with it flipped trains the other way
    flipped = make_ctx(tmp_path, "train/dpo", {**FAST, "pair_selection": "safer"},
                       {"model": world["llm"], "data": world["flipped"]})
    run_dpo(flipped)
    # its margin is measured with its own (swapped) labels: on the original orientation it is
    # the negative, i.e. training on flipped pairs pushed the original margin below 0
    assert -_metrics(flipped)["pairs_reward_margin"] < 0.0 < m["pairs_reward_margin"]
    dpo = ctx.protocol_choices["dpo"]
    assert dpo["beta"] == 0.1 and dpo["reference_model"] == "frozen input model" and dpo["max_length"] == 128
    assert json.loads((ctx.out / "repro_model.json").read_text())["architecture"] == "causal_lm"


def test_prompts_are_the_evaluation_prompts_with_one_bos(world):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl.data_utils import _tokenize

    from repro.data import open_dataset
    from repro.models.templates import prompt_text
    from repro.train.dpo import build_rows

    tokenizer = AutoTokenizer.from_pretrained(world["llm"])
    pairs = open_dataset(world["pku"]).records()[:3]
    rows, vision = build_rows(pairs, "llama2_nosys", tokenizer, is_llava=False, batch=1)
    assert not vision and not rows[0]["prompt"].endswith(" ")
    assert rows[0]["chosen"] == f" {pairs[0].chosen} </s>"
    ids = _tokenize(tokenizer, rows[0]["prompt"])["input_ids"]  # what TRL's text path feeds
    assert ids == tokenizer(prompt_text("llama2_nosys", pairs[0].prompt), add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.bos_token_id) == 1
    spa = open_dataset(world["spa"]).records()[:2]
    rows, vision = build_rows(spa, "llama2_nosys", tokenizer, is_llava=True, batch=1)
    assert vision and rows[0]["prompt"].startswith("<s>[INST] <image>\n") and len(rows[0]["images"]) == 1
    with pytest.raises(InputError, match="causal_lm"):
        build_rows(spa, "llama2_nosys", tokenizer, is_llava=False, batch=1)
    with pytest.raises(InputError, match="need batch 1"):
        build_rows(spa + pairs, "llama2_nosys", tokenizer, is_llava=True, batch=2)
    Dataset.from_list(rows)  # the rows are a valid datasets table


def test_image_dpo_on_llava_trains_lm_and_projector_only(world, tmp_path):
    from repro.models.llava import load_llava
    from repro.train.dpo import run_dpo
    from repro.train.trainer_args import read_params

    params = {**FAST, "per_device_train_batch_size": 1, "max_steps": 6, "margin_eval_pairs": 6}
    ctx = make_ctx(tmp_path, "train/dpo", params, {"model": world["llava"], "data": world["spa"]})
    run_dpo(ctx)
    m = _metrics(ctx)
    assert m["pairs_with_image"] == 20 and m["reward_margin_first"] == 0.0
    assert m["pairs_reward_margin"] > 0.0
    before, after = tensors(world["llava"]), tensors(ctx.out)
    assert before.keys() == after.keys()  # vLLM key layout kept (vision_tower.vision_model.*)
    assert all(before[k].equal(after[k]) for k in before if "vision_tower" in k)
    assert any(not before[k].equal(after[k]) for k in before if k.startswith("language_model"))
    # max_length applies to image pairs too; none of these prompts reach it, so none is dropped
    assert ctx.protocol_choices["dpo"]["max_length"] == 128 and m["pairs_dropped_prompt_too_long"] == 0
    load_llava(ctx.out)
    # paper recipe defaults (declared with the kind, repro/stages/train.py) when a stage gives none
    defaults = read_params(make_ctx(tmp_path, "train/dpo", {}, {}))
    assert {k: defaults[k] for k in ("learning_rate", "lr_scheduler_type", "warmup_ratio", "num_train_epochs",
                                     "per_device_train_batch_size", "max_length", "beta")} == {
        "learning_rate": 5e-7, "lr_scheduler_type": "linear", "warmup_ratio": 0.1, "num_train_epochs": 3.0,
        "per_device_train_batch_size": 1, "max_length": 2048, "beta": 0.1}


def test_text_pairs_on_llava_train_the_language_model_without_images(world, tmp_path):
    from repro.train.dpo import run_dpo

    ctx = make_ctx(tmp_path, "train/dpo", {**FAST, "max_steps": 3, "margin_eval_pairs": 4},
                   {"model": world["llava"], "data": world["pku"]})
    run_dpo(ctx)
    m = _metrics(ctx)
    assert m["pairs_with_image"] == 0 and m["steps"] == 3 and m["pairs_reward_margin"] > 0.0
    before, after = tensors(world["llava"]), tensors(ctx.out)
    assert all(before[k].equal(after[k]) for k in before if not k.startswith("language_model"))
    assert any(not before[k].equal(after[k]) for k in before if k.startswith("language_model"))
    assert ctx.protocol_choices["dpo"]["max_length"] == 128  # text pairs: keep_start truncation


def _pku_pair(pid, safe0, safe1, safer, better):
    from repro.data.records import PreferencePair

    # the loader orients a pair by safer_response_id (repro.data.preference)
    texts, safe = ("answer 0", "answer 1"), (safe0, safe1)
    return PreferencePair(id=pid, prompt="q", chosen=texts[safer], rejected=texts[1 - safer],
                          meta={"chosen_id": safer, "safer_response_id": safer, "better_response_id": better,
                                "chosen_safe": safe[safer], "rejected_safe": safe[1 - safer]})


def test_pku_pair_selection_rules():
    from repro.train.pairs import select_pairs

    pairs = [_pku_pair("one_safe", False, True, 1, 0), _pku_pair("both_safe", True, True, 0, 1),
             _pku_pair("none_safe", False, False, 1, 1),
             # a label disagreement: the safer id names the unsafe answer
             _pku_pair("odd", True, False, 1, 1)]
    kept = select_pairs(pairs, "safe_vs_unsafe")
    assert [(p.id, p.chosen, p.rejected) for p in kept] == [("one_safe", "answer 1", "answer 0"),
                                                           ("odd", "answer 0", "answer 1")]
    assert all(p.meta["chosen_safe"] and not p.meta["rejected_safe"] for p in kept)
    assert [p.chosen for p in select_pairs(pairs, "safer")] == ["answer 1", "answer 0", "answer 1", "answer 1"]
    assert [p.chosen for p in select_pairs(pairs, "better")] == ["answer 0", "answer 1", "answer 1", "answer 1"]
    with pytest.raises(InputError, match="pair_selection: 'all'"):
        select_pairs(pairs, "all")


def test_image_pairs_keep_every_image_token_under_max_length(world):
    from repro.data import open_dataset
    from repro.models.llava import load_llava
    from repro.train.dpo import ImageFileCollator, build_rows, drop_long_prompts
    from repro.train.tokenize import image_tokens_of

    _, processor = load_llava(world["llava"])
    image = image_tokens_of(processor)
    pairs = open_dataset(world["spa"]).records()[:4]
    rows, vision = build_rows(pairs, "llama2_nosys", processor.tokenizer, is_llava=True, batch=1)
    prompt_lengths = [len(processor.tokenizer(r["prompt"].replace("<image>", image.token * image.count),
                                              add_special_tokens=False)["input_ids"]) for r in rows]
    limit = sorted(prompt_lengths)[1] + 1  # one or two prompts fit, the others reach the limit
    kept, dropped = drop_long_prompts(rows, processor, limit)
    assert vision and dropped == sum(n >= limit for n in prompt_lengths) > 0 and len(kept) == 4 - dropped
    batch = ImageFileCollator(processor, max_length=limit)(kept[:1])
    ids = batch["input_ids"][0].tolist()
    # the sequence was cut at max_length, inside the completion: all image tokens survive
    assert len(ids) <= limit and ids.count(image.token_id) == image.count
    assert batch["completion_mask"][0].sum() >= 1
