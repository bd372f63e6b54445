"""DeepSpeed ZeRO on two CPU ranks (torchrun, gloo): ZeRO-3 LLaVA stage 2 and ZeRO-2 DPO train,
publish full (gathered) weights, and DeepSpeed really ran (its per-rank checkpoint shards).

Needs the ``deepspeed`` package (the ``deepspeed`` extra, which ``make`` installs); without it
every test here is skipped, saying so. The first run on a machine compiles DeepSpeed's CPU comm op
with the C++ compiler (about a minute, cached in ``~/.cache/torch_extensions``); docs/training.md."""

from __future__ import annotations

import json
import os
from importlib.util import find_spec
from pathlib import Path

import pytest

from test_train import TINY, instruct_dir, llava_dir, make_ctx, tensors  # noqa: F401  (fixtures)
from test_train_dpo import FAST, world  # noqa: F401  (fixture)

# `make test` sets this when it installed the deepspeed extra: a missing install then fails here
REQUIRE = os.environ.get("REPRO_REQUIRE_DEEPSPEED", "") not in ("", "0")

pytestmark = [
    pytest.mark.slow,  # each test spawns two fresh ranks (~15-25 s)
    pytest.mark.skipif(find_spec("deepspeed") is None and not REQUIRE,
                       reason="deepspeed is not installed (pip install -e '.[deepspeed]'); "
                              "the DeepSpeed ZeRO tests need it"),
]


@pytest.fixture
def cpu_ranks(monkeypatch):
    """The launched ranks inherit this environment: DeepSpeed on its CPU accelerator."""
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")


def _launch(ctx) -> dict:
    from repro.train.launch import run_launched

    run_launched(ctx, config=None, num_processes=2, cpu=True)
    return json.loads((ctx.out / "metrics.json").read_text())


def _zero_stage(trainer_dir: Path, step: int) -> int:
    """The ZeRO stage DeepSpeed's own checkpoint records; one optimizer shard per rank."""
    import torch

    ckpt = trainer_dir / f"checkpoint-{step}" / f"global_step{step}"
    shards = sorted(p.name for p in ckpt.glob("*zero_pp_rank_*_optim_states.pt"))
    assert [s.split("zero_pp_rank_")[1][0] for s in shards] == ["0", "1"], shards
    states = torch.load(next(ckpt.glob("*model_states.pt")), map_location="cpu", weights_only=True)
    return states["ds_config"]["zero_optimization"]["stage"]


def test_zero3_llava_stage2_on_two_ranks(cpu_ranks, llava_dir, instruct_dir, tmp_path):
    from repro.models.llava import load_llava

    steps = 6
    ctx = make_ctx(tmp_path, "train/vl_adapt",
                   {**TINY, "mode": "finetune", "max_steps": steps, "save_steps": steps, "deepspeed": "zero3"},
                   {"model": llava_dir, "data": instruct_dir}, scratch=tmp_path / "scratch")
    m = _launch(ctx)
    assert (m["world_size"], m["effective_global_batch"], m["steps"]) == (2, 4, steps)
    assert m["zero_stage"] == 3  # as the accelerator ran it
    assert m["last_train_loss"] < 0.95 * m["first_train_loss"]
    assert _zero_stage(tmp_path / "scratch" / "trainer", steps) == 3
    before, after = tensors(llava_dir), tensors(ctx.out)
    # gathered on save: every weight at full shape (ZeRO-3 ranks hold empty placeholders)
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert all(before[k].equal(after[k]) for k in before if "vision_tower" in k)
    assert any(not before[k].equal(after[k]) for k in before if k.startswith("language_model"))
    model, _ = load_llava(ctx.out)
    full = sum(p.numel() for p in load_llava(llava_dir)[0].parameters())
    assert sum(p.numel() for p in model.parameters()) == full
    assert sum(g["trainable"] + g["frozen"] for g in m["trainable_parameters"].values()) == full
    assert ctx.protocol_choices["launch"]["world_size"] == 2


def test_zero2_text_dpo_on_two_ranks(cpu_ranks, world, tmp_path):
    steps = 6
    ctx = make_ctx(tmp_path, "train/dpo", {**FAST, "max_steps": steps, "save_steps": steps, "deepspeed": "zero2"},
                   {"model": world["llm"], "data": world["pku"]}, scratch=tmp_path / "scratch")
    m = _launch(ctx)
    assert (m["world_size"], m["effective_global_batch"], m["steps"]) == (2, 4, steps)
    assert m["zero_stage"] == 2  # as the accelerator ran it
    assert _zero_stage(tmp_path / "scratch" / "trainer", steps) == 2
    # step 1 is measured before any update: policy == reference, margin exactly 0
    assert m["reward_margin_first"] == 0.0 and m["first_dpo_loss"] == pytest.approx(0.6931, abs=1e-3)
    assert m["pairs_reward_margin"] > 0.3 and m["pairs_reward_accuracy"] >= 0.75
    assert m["last_dpo_loss"] < m["first_dpo_loss"]
    before, after = tensors(world["llm"]), tensors(ctx.out)
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert ctx.protocol_choices["launch"]["world_size"] == 2
