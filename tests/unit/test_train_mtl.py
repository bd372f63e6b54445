"""Safety SFT on VLGuard and MTL (LLaVA-Instruct ∪ VLGuard) through ``train/vl_adapt``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.errors import InputError
from test_train import TINY, make_ctx, tensors  # noqa: E402  (tests/unit is on sys.path)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    from repro.data.synthetic import generate
    from repro.models.tiny import make_tiny_llava

    root = tmp_path_factory.mktemp("mtl")
    generate("vlguard", root / "vlguard", 0, "tiny")
    generate("llava_instruct", root / "instruct", 0, "tiny")
    make_tiny_llava(root / "llava", seed=0, template="llama2_nosys")
    return {"vlguard": root / "vlguard", "instruct": root / "instruct", "llava": root / "llava"}


def test_safety_sft_on_vlguard_is_one_conversation_per_image(world, tmp_path):
    from repro.data import open_dataset
    from repro.train.vl_adapt import run_stage

    records = open_dataset(world["vlguard"]).records()
    assert {len(r.turns) for r in records} == {2, 4}  # unsafe image: 1 turn; safe image: 2 turns
    ctx = make_ctx(tmp_path, "train/vl_adapt", {**TINY, "mode": "sft", "max_steps": 8},
                   {"model": world["llava"], "data": world["vlguard"]})
    run_stage(ctx)
    m = json.loads((ctx.out / "metrics.json").read_text())
    # 20 images, one conversation each (a safe image's two instructions are two turns of one)
    assert m["samples_used"] == len(records) == 20 and m["samples_with_image"] == 20
    assert m["data_sources"] == {"data": {"dataset": "vlguard", "records": 20, "split": None}}
    # convert_to_llava_format.py writes "<image>instruction": preprocess_multimodal moves every one
    assert m["image_token_moved"] == 20
    assert m["last_train_loss"] < m["first_train_loss"]
    before, after = tensors(world["llava"]), tensors(ctx.out)
    assert all(before[k].equal(after[k]) for k in before if "vision_tower" in k)
    assert "data_mixing" not in ctx.protocol_choices  # one source: no mixing


def test_mtl_trains_on_the_recorded_union(world, tmp_path):
    from repro.train.mix import MIXING_RULE
    from repro.train.vl_adapt import run_stage

    inputs = {"model": world["llava"], "data": world["instruct"], "data_2": world["vlguard"]}
    params = {**TINY, "mode": "sft", "max_steps": 3}
    ctx = make_ctx(tmp_path, "train/vl_adapt", params, inputs)
    run_stage(ctx)
    m = json.loads((ctx.out / "metrics.json").read_text())
    src = m["data_sources"]
    assert src["data"]["dataset"] == "llava_instruct" and src["data_2"]["dataset"] == "vlguard"
    assert src["data"]["records"] == 40 and src["data_2"]["records"] == 20
    assert src["data"]["samples_used"] + src["data_2"]["samples_used"] == m["samples_used"] == 60
    assert ctx.protocol_choices["data_mixing"] == MIXING_RULE
    with pytest.raises(InputError, match="needs input 'extra'"):
        run_stage(make_ctx(tmp_path, "train/vl_adapt", {**params, "data_roles": ["data", "extra"]}, inputs))


def test_mixture_is_concatenate_then_seeded_shuffle(world, tmp_path):
    from repro.train.common import load_conversations
    from repro.train.mix import load_mixture

    inputs = {"data": world["instruct"], "data_2": world["vlguard"]}
    mixed, record = load_mixture(make_ctx(tmp_path, "t", {}, inputs, seed=3), load_conversations)
    again, _ = load_mixture(make_ctx(tmp_path, "t", {}, inputs, seed=3), load_conversations)
    other, _ = load_mixture(make_ctx(tmp_path, "t", {}, inputs, seed=4), load_conversations)
    ids = [s.id for s in mixed]
    assert ids == [s.id for s in again] and ids != [s.id for s in other]
    assert sorted(ids) == sorted([f"data:{s.id}" for s in load_conversations(world["instruct"], None)]
                                 + [f"data_2:{s.id}" for s in load_conversations(world["vlguard"], None)])
    assert record["rule"].startswith("concatenate")
    # the same union listed by data_roles (mixed in the listed order) is the same mixture
    named, _ = load_mixture(make_ctx(tmp_path, "t", {"data_roles": ["data", "data_2"]}, inputs, seed=3),
                            load_conversations)
    assert [s.id for s in named] == ids
