"""Quiet training logs, a 2-process (DDP over gloo) tiny SFT, launch configs, the GPU bench (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from repro.errors import InputError
from test_train import TINY, make_ctx  # noqa: E402  (tests/unit is on sys.path)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def text_world(tmp_path_factory) -> dict[str, Path]:
    from repro.models.tiny import build_tiny_llm

    root = tmp_path_factory.mktemp("launch")
    build_tiny_llm(root / "llm", ["[INST] Say hello. [/INST] Hello there. </s>"] * 3, seed=0, template="llama2_nosys")
    data = root / "chat"
    data.mkdir()
    rows = [{"id": f"c{i}", "conversations": [{"from": "human", "value": f"Say hello {i}."},
                                               {"from": "gpt", "value": "Hello there."}]} for i in range(8)]
    (data / "aligned_chat.json").write_text(json.dumps(rows))
    (data / "DATASET.json").write_text(json.dumps({"dataset": "aligned_chat", "source": "local"}))
    return {"llm": root / "llm", "data": data}


def test_training_is_quiet_but_for_log_every_lines(text_world, tmp_path, capfd):
    from repro.train.sft import text_sft_stage

    ctx = make_ctx(tmp_path, "train/text_sft", {**TINY, "log_every": 2}, {"model": text_world["llm"],
                                                                           "data": text_world["data"]})
    capfd.readouterr()
    text_sft_stage(ctx)
    out, err = capfd.readouterr()
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert [ln.split(" loss=")[0] for ln in lines] == ["[train] step 2/4", "[train] step 4/4"]
    assert json.loads((ctx.out / "metrics.json").read_text())["logged_losses"] == 4  # history intact


@pytest.mark.slow  # spawns two fresh interpreters (~20 s); deselect with -m "not slow"
def test_two_process_sft_runs_with_world_size_2(text_world, tmp_path):
    from repro.train.launch import run_launched

    ctx = make_ctx(tmp_path, "train/text_sft", {**TINY, "max_steps": 3},
                   {"model": text_world["llm"], "data": text_world["data"]})
    run_launched(ctx, config=None, num_processes=2, cpu=True)
    m = json.loads((ctx.out / "metrics.json").read_text())
    # two ranks x 2 per device: each step consumes 4 samples, the Trainer's sampler shards them
    assert (m["world_size"], m["effective_global_batch"], m["steps"], m["data_order_samples"]) == (2, 4, 3, 12)
    assert m["zero_stage"] is None  # plain DDP: no DeepSpeed
    assert m["last_train_loss"] < m["first_train_loss"]
    assert ctx.protocol_choices["launch"]["world_size"] == 2
    assert ctx.protocol_choices["chat_template"]["name"] == "llama2_nosys"  # rank 0's records came back
    assert (ctx.out / "model.safetensors").is_file() and (ctx.out / "repro_model.json").is_file()


def test_launch_configs_and_commands(tmp_path):
    from repro.train.launch import accelerate_command

    for name, processes, machines in (("accelerate_1gpu", 1, 1), ("accelerate_4gpu", 4, 1),
                                      ("accelerate_multinode", 8, 2)):
        cfg = yaml.safe_load((ROOT / "configs" / "launch" / f"{name}.yaml").read_text())
        assert (cfg["num_processes"], cfg["num_machines"]) == (processes, machines)
    cmd = accelerate_command(tmp_path / "spec.json", config="accelerate_4gpu")
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and cmd[-3:] == ["-m", "repro.train.launch", str(tmp_path / "spec.json")]
    with pytest.raises(InputError, match="launch: 'accelerate_9gpu'"):
        accelerate_command(tmp_path / "spec.json", config="accelerate_9gpu")
    sbatch = (ROOT / "scripts" / "slurm" / "train.sbatch").read_text()
    assert "accelerate_multinode" in sbatch and "--profile paper" in sbatch


def test_gpu_bench_runs_tiny_on_cpu(tmp_path):
    from repro.bench.train_gpu import main

    result = main(["--tiny", "--json", str(tmp_path / "bench.json")])
    assert result["loss_finite"] and result["tokens_per_s_per_gpu"] > 0
    assert result["paper_stage2_steps"] == 83_125  # 665K samples, tiny batch 2 x 4 GPUs
    assert result["extrapolated_step_s_32_layers"] > 0 and result["paper_stage2_wall_h_4gpu"] > 0
    assert json.loads((tmp_path / "bench.json").read_text())["seq_len"] == 64


def test_diverged_run_fails_instead_of_publishing(text_world, tmp_path):
    from repro.train.sft import text_sft_stage

    ctx = make_ctx(tmp_path, "train/text_sft", {**TINY, "learning_rate": 1e30, "max_steps": 3},
                   {"model": text_world["llm"], "data": text_world["data"]})
    with pytest.raises(InputError, match=r"training: (loss|weights): .*diverged"):
        text_sft_stage(ctx)
    assert not (ctx.out / "model.safetensors").exists()


def test_launch_failure_names_the_ranks_own_error():
    from repro.train.launch import failure_line

    out = ("[rank0]: Traceback (most recent call last):\n"
           "repro.errors.InputError: params: deepspeed: 'zero3' needs the deepspeed package, not installed\n"
           "  File \".../torch/distributed/elastic/multiprocessing/errors/__init__.py\", line 367\n"
           "    raise ChildFailedError(\n"
           "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
           "============================================================\n")
    assert failure_line(out) == ("repro.errors.InputError: params: deepspeed: 'zero3' needs the "
                                 "deepspeed package, not installed")
    assert failure_line("killed\n=====\n") == "killed"
    assert failure_line("") == "no output"
