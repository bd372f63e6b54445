"""SLURM as a job graph: the submission graph of a paper experiment (golden file), and a run
through a stand-in cluster (sbatch/squeue/sacct/scancel scripts honouring afterok) where a
failed job's queued dependents are cancelled, the failed stage is named, and `repro status`
shows the job ids."""

import json
import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from repro.config.load import load_experiment
from repro.executors.base import StageFailed
from repro.executors.slurm import SlurmExecutor
from repro.executors.slurm_graph import JOBS_FILE, run_experiment, submit
from repro.pipeline.runner import Runner
from repro.provenance.record import execution_record, read_json
from repro.provenance.verify import verify_manifest
from test_executors_slurm import SLURM_SETTINGS  # noqa: E402  (tests/unit is on sys.path)

ROOT = Path(__file__).resolve().parents[2]


def test_submission_graph_of_a_paper_experiment_matches_golden_file(tmp_path):
    """Every stage submitted at once, afterok on exactly the jobs of its inputs, in order."""
    exp = load_experiment("table2", "paper", ())
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, f"{1000 + len(calls)};cluster\n", "")

    runs = tmp_path / "runs"
    jobs = submit(exp, SlurmExecutor(SLURM_SETTINGS, "paper", run=fake_run), runs, list(exp.stages), lambda s: None)
    lines = []
    for (name, job_id), cmd in zip(jobs.items(), calls):
        script = Path(cmd[-1]).read_text()
        gpus = next((d.split("=")[1] for d in script.splitlines() if d.startswith("#SBATCH --gpus-per-node=")), "0")
        image = "eval" if "repro-eval.sif" in script else "train"
        lines.append(" ".join([job_id, name, exp.stages[name].kind, f"gpus={gpus}", image, *cmd[1:-1]]))
        spec = shlex.quote(f"/workspace/runs/table2/.slurm/{name}.json")
        assert f"repro stage-run --runs-dir /workspace/runs {spec}\n" in script
    text = "\n".join(lines) + "\n"
    golden = ROOT / "tests" / "golden" / "slurm_graph_table2.txt"
    if os.environ.get("REPRO_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    # each job's afterok names the jobs of its own inputs, no more
    for name, cmd in zip(jobs, calls):
        after = next((c.split(":", 1)[1].split(":") for c in cmd if c.startswith("--dependency=")), [])
        assert sorted(after) == sorted({jobs[u] for u in exp.stages[name].inputs.values()})
    assert read_json(runs / "table2" / JOBS_FILE) == jobs


CLUSTER = {
    # state file per job: <state>/<id> holds COMPLETED | FAILED | PENDING | CANCELLED
    "sbatch": r'''#!/bin/bash
set -u
state=%STATE%; deps=""; script="${@: -1}"
for a in "$@"; do case "$a" in --dependency=afterok:*) deps="${a#--dependency=afterok:}";; esac; done
echo "$*" >> "$state/submitted"
id=$(( $(ls "$state" | grep -c '^[0-9]') + 501 ))
echo "$id"
for d in ${deps//:/ }; do
  if [ "$(cat "$state/$d")" != COMPLETED ]; then echo PENDING > "$state/$id"; exit 0; fi
done
out=$(grep -m1 '^#SBATCH --output=' "$script" | cut -d= -f2- | sed "s/%j/$id/")
if SLURM_JOB_ID=$id bash "$script" > "$out" 2>&1; then echo COMPLETED > "$state/$id"; else echo FAILED > "$state/$id"; fi
''',
    "squeue": r'''#!/bin/bash
state=%STATE%; ids="${@: -1}"
for i in ${ids//,/ }; do [ "$(cat "$state/$i")" = PENDING ] && echo "$i PENDING"; done; exit 0
''',
    "sacct": '#!/bin/bash\ncat %STATE%/$2\n',
    "scancel": '#!/bin/bash\necho "scancel $*" >> %STATE%/submitted\nfor i in "$@"; do echo CANCELLED > %STATE%/$i; done\n',
}


def _cluster(tmp_path) -> Path:
    state, bin_ = tmp_path / "cluster", tmp_path / "bin"
    state.mkdir()
    bin_.mkdir()
    for name, text in CLUSTER.items():
        path = bin_ / name
        path.write_text(text.replace("%STATE%", str(state)))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return state


def _experiments(root: Path) -> Path:
    root.mkdir()
    for name, size in (("g", 8), ("gbad", '"enormous"')):
        (root / f"{name}.yaml").write_text(
            "schema: 1\nstages:\n"
            "  world_a: {kind: data/synthetic, params: {dataset: llava_pretrain, size: 8}}\n"
            f"  world_b: {{kind: data/synthetic, params: {{dataset: llava_instruct, size: {size}}}}}\n"
            "  clean_b: {kind: train/filter, inputs: {data: world_b}}\n"
            "results: []\n")
    return root


def test_graph_runs_on_a_stand_in_cluster_and_a_failure_cancels_dependents(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from repro.cli import _register, cli

    state = _cluster(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    venv_bin = Path(os.sys.executable).parent
    conf = dict(SLURM_SETTINGS, runtime="host", graph=True, sbatch=str(tmp_path / "bin" / "sbatch"),
                setup=[f"export PATH={venv_bin}:$PATH"])
    root = _experiments(tmp_path / "experiments")
    runs = tmp_path / "runs"
    log = []
    runner = Runner(runs, echo=log.append, executor=SlurmExecutor(conf, "tiny"))
    manifest = run_experiment(runner, load_experiment("g", "tiny", (), root=root), (), log.append, poll=0.1)
    data = json.loads(manifest.read_text())
    submitted = (state / "submitted").read_text().splitlines()
    assert len(submitted) == 3 and "--dependency=afterok:502 --kill-on-invalid-dep=yes" in submitted[2]
    for name, job in (("world_a", "501"), ("world_b", "502"), ("clean_b", "503")):
        record = execution_record(read_json(runs / data["stages"][name]["statement"]))
        assert record["executor"] == "slurm" and record["graph"] and record["job_id"] == job
    assert any(line.startswith("submitted clean_b") and line.endswith("job 503 after 502") for line in log)
    verdict, _ = verify_manifest(manifest)
    assert verdict.verdict() in ("PASSED", "WARNED"), [c for c in verdict.checks if c.level == "fail"]
    # a failing job: its queued dependent cancelled, the failed stage named, nothing of theirs published
    log.clear()
    with pytest.raises(StageFailed, match=r"stage 'world_b' failed \(SLURM job 504\); 1 stage\(s\) downstream not run(.|\n)*enormous"):
        run_experiment(runner, load_experiment("gbad", "tiny", (), root=root), (), log.append, poll=0.1)
    assert (state / "submitted").read_text().splitlines()[-1] == "scancel 505"
    assert "job 504        world_b                  FAILED" in log and (state / "505").read_text().strip() == "CANCELLED"
    assert len([p for p in (runs / "store").iterdir() if p.name != ".tmp"]) == 3  # world_a served, not rerun
    # repro status names each stage's job
    _register()
    cfg = tmp_path / "executors.yaml"
    cfg.write_text(json.dumps({"slurm": conf}))
    monkeypatch.setattr("repro.config.load.experiments_dir", lambda: root)
    out = CliRunner().invoke(cli, ["status", "gbad", "--runs-dir", str(runs), "--executor", "slurm",
                                   "--executor-config", str(cfg)]).output
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines["world_a"].split() == ["world_a", "done"]  # served: not in gbad's graph
    assert lines["world_b"].endswith("[slurm job 504]") and lines["clean_b"].endswith("[slurm job 505]")
