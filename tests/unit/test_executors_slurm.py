"""The slurm executor: its rendered script (golden file), the submit/wait/collect path through a
stand-in sbatch, cancelling on interrupt; `repro plan` and `repro doctor` for executors."""

import json
import os
import re
import stat
from pathlib import Path

import pytest

from repro.config.load import load_experiment
from repro.executors.base import StageFailed, StageJob
from repro.executors.slurm import SlurmExecutor
from repro.pipeline.runner import Runner
from repro.provenance.record import execution_record, read_json
from stagefns import one_stage_experiments
from test_executors import FakeClient, docker_executor  # noqa: E402  (tests/unit is on sys.path)

ROOT = Path(__file__).resolve().parents[2]


SLURM_SETTINGS = {"runtime": "apptainer", "partition": "gpu", "account": "safety", "qos": None,
                  "time": "48:00:00", "cpus_per_gpu": 8, "mem_per_gpu": "120G", "cpus_no_gpu": 8,
                  "mem_no_gpu": "64G", "setup": ["module load apptainer"],
                  "images": {"train": "/images/repro-train.sif", "eval": "/images/repro-eval.sif"},
                  "hf_cache": "/shared/hf", "sbatch": "sbatch", "tail_lines": 5}


def test_sbatch_script_for_a_paper_stage_matches_golden_file():
    exp = load_experiment("table2", "paper", ())
    spec = exp.stages["stage2_b"]
    runs = Path("/shared/runs")
    key = "0123456789abcdef" * 4
    request = {"experiment": exp.name, "name": spec.name, "kind": spec.kind, "params": spec.params,
               "inputs": {}, "out": f"store/.tmp/{key}.1/out", "seed": 0, "profile": "paper"}
    job = StageJob(request=request, build=runs / "store" / ".tmp" / f"{key}.1", runs=runs, key=key)
    script = SlurmExecutor(SLURM_SETTINGS, "paper").render(job, runs / "logs" / "slurm" / "stage2_b.log")
    golden = ROOT / "tests" / "golden" / "slurm_stage2.sbatch"
    if os.environ.get("REPRO_UPDATE_GOLDEN"):
        golden.write_text(script)
    assert script == golden.read_text()


FAKE_SBATCH = """#!/bin/bash
# A stand-in for sbatch --parsable --wait: runs the script here, prints a job id, exits with it.
script="${@: -1}"
out=$(grep -m1 '^#SBATCH --output=' "$script" | cut -d= -f2-)
echo "4242"
bash "$script" > "$out" 2>&1
"""


def test_slurm_executor_submits_waits_and_records_the_job(tmp_path):
    # the job is a new process: it runs a real stage kind (test/* kinds live in this one only)
    sbatch = tmp_path / "bin" / "sbatch"
    sbatch.parent.mkdir()
    sbatch.write_text(FAKE_SBATCH)
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    venv_bin = Path(os.sys.executable).parent
    conf = dict(SLURM_SETTINGS, runtime="host", sbatch=str(sbatch), setup=[f"export PATH={venv_bin}:$PATH"])
    root = one_stage_experiments(tmp_path / "experiments", "{dataset: llava_pretrain, size: enormous}")
    runs = tmp_path / "runs"
    log = []
    runner = Runner(runs, echo=log.append, executor=SlurmExecutor(conf, "tiny"))
    manifest = runner.run(load_experiment("one", "tiny", (), root=root))
    data = json.loads(manifest.read_text())
    assert list((runs / "one" / "stages" / "world").iterdir())
    record = execution_record(read_json(runs / data["stages"]["world"]["statement"]))
    assert record["executor"] == "slurm" and record["job_id"] == "4242" and record["runtime"] == "host"
    assert "image" not in record and record["accounting"] in ("sacct not available", "sacct returned nothing")
    # a failing job: its log's last lines in the error, nothing published
    with pytest.raises(StageFailed, match=r"SLURM job 4242 exit \d+; nothing was published; (.|\n)*enormous"):
        runner.run(load_experiment("bad", "tiny", (), root=root))
    assert len([p for p in (runs / "store").iterdir() if p.name != ".tmp"]) == 1


@pytest.mark.parametrize("executor, train_image", [("docker", "docker image repro-train:dev (train)"),
                                                     ("slurm", "slurm image repro-train.sif (train) via apptainer")])
def test_plan_shows_executor_image_and_launch_command(tmp_path, monkeypatch, executor, train_image):
    """A plan needs no daemon, no cluster and no GPU, even with a runs dir to compare against."""
    from click.testing import CliRunner

    from repro.cli import cli, _register

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    (tmp_path / "bash").symlink_to("/bin/bash")
    monkeypatch.setenv("PATH", str(tmp_path))  # bash, but no sbatch and no apptainer
    _register()
    result = CliRunner().invoke(cli, ["plan", "table2", "--profile", "paper", "--executor", executor,
                                      "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "cache state unknown (executor " in out
    block = out.split("- stage2_b: ")[1].split("\n- ")[0]
    assert f"runs: {train_image}; built from nvidia/cuda:13.0.1-devel-ubuntu24.04" in block
    assert ("launch: python -m accelerate.commands.launch --config_file "
            "configs/launch/accelerate_4gpu.yaml -m repro.train.launch '<spec.json>'") in block
    assert "(eval)" in out and "[unknown] gpus=4" in block
    if executor != "docker":
        return
    assert "runs: docker image repro-eval:dev (eval)" in out
    # the bases of manifest.lock's images, by digest (no Docker daemon needed to say so)
    from repro.provenance import pins

    images = pins.load_lock()["images"]
    for name, built in (("train", "-> repro-train:dev"), ("eval", "-> repro-eval:dev"),
                        ("cpu", "(not used by this plan)")):
        assert re.search(rf"^  {name}: {re.escape(images[name]['ref'])}@sha256:[0-9a-f]{{64}} \[.*\] "
                         rf"{re.escape(built)}$", out, flags=re.M), (name, out[:1500])


def test_interrupted_slurm_wait_cancels_the_job(tmp_path, monkeypatch):
    import io
    import subprocess

    from repro.executors import slurm

    class Submitted:
        def __init__(self, cmd, **kw):
            self.stdout = io.StringIO("77;cluster\n")

        def communicate(self):
            raise KeyboardInterrupt

        def kill(self):
            pass

    calls = []
    monkeypatch.setattr(slurm.subprocess, "Popen", Submitted)
    ex = SlurmExecutor(dict(SLURM_SETTINGS, runtime="host"), "tiny",
                       run=lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", ""))
    with pytest.raises(KeyboardInterrupt):
        ex._submit(tmp_path / "stage.sbatch")
    assert calls == [["scancel", "77"]]


def test_doctor_checks_the_executor_without_pulling(tmp_path):
    from repro.doctor import check_executor

    client = FakeClient()
    lines = [c.line() for c in check_executor("docker", "tiny", executor=docker_executor(client))]
    assert lines[0].startswith("OK   executor   docker daemon gpu-box-1")
    assert any(line.startswith("OK   image      eval: repro-smoke:dev sha256:abab") for line in lines)
    client.known = set()
    checks = check_executor("docker", "paper", executor=docker_executor(
        client, profile="paper", images={"train": "repro-train:dev", "eval": "reg.example/e@sha256:" + "1" * 64}))
    assert [c.level for c in checks] == ["OK", "FAIL", "FAIL"] and client.pulled == []
    sif = tmp_path / "train.sif"
    sif.write_bytes(b"sif")
    slurm = SlurmExecutor(dict(SLURM_SETTINGS, images={"train": str(sif), "eval": str(tmp_path / "no.sif")}), "paper")
    found = {c.detail: c.level for c in check_executor("slurm", "paper", executor=slurm)}
    assert found[f"train: {sif}"] == "OK" and found[f"eval: {tmp_path / 'no.sif'} not found"] == "FAIL"
