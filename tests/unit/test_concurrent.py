"""The concurrent scheduler (`repro run --jobs/--gpus`, repro/pipeline/concurrent.py) on a fake
4-GPU allocation (environment only: CUDA_VISIBLE_DEVICES=0,1,2,3, no GPU): stages run in worker
processes, no two concurrent stages share a GPU, a 4-GPU stage runs alone; a failure stops new
stages and either lets the running ones finish or cancels them."""

import json
from pathlib import Path

import pytest

import gpukinds  # noqa: F401  (declares the test/gpu_* kinds here; workers import it by name)
from repro.config.load import load_experiment
from repro.errors import InputError
from repro.executors.workers import KIND_MODULES, WorkerExecutor
from repro.pipeline.concurrent import run_concurrent, visible_gpus
from repro.pipeline.runner import Runner

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def workers_env(monkeypatch):
    monkeypatch.setenv(KIND_MODULES, "gpukinds")
    monkeypatch.setenv("PYTHONPATH", str(TESTS))


def _write(root: Path, name: str, stages: str) -> Path:
    root.mkdir(exist_ok=True)
    (root / f"{name}.yaml").write_text(f"schema: 1\nstages:\n{stages}results: []\n")
    return root


def _run(tmp_path, name, jobs, gpus, on_failure="finish"):
    runs = tmp_path / "runs"
    log = []
    runner = Runner(runs, echo=log.append, executor=WorkerExecutor(runs))
    try:
        return runs, log, run_concurrent(runner, load_experiment(name, "tiny", (), root=tmp_path / "exp"), (),
                                         jobs, gpus, on_failure)
    finally:
        runner.close()


def test_fake_four_gpus_no_gpu_shared_and_a_four_gpu_stage_alone(tmp_path, monkeypatch, workers_env):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    room = tmp_path / "room"
    room.mkdir()
    one = "{{kind: test/gpu_one, params: {{room: '%s', meet: 4, sleep: 0.3, tag: '{i}'}}}}" % room
    _write(tmp_path / "exp", "g4", "".join(f"  a{i}: {one.format(i=i)}\n" for i in range(4))
           + "  big: {kind: test/gpu_launch, params: {launch: accelerate_4gpu, sleep: 0.5}}\n"
           + "".join(f"  e{i}: {{kind: test/gpu_one, inputs: {{model: big}}, params: {{sleep: 0.3, tag: '{i}'}}}}\n"
                     for i in range(3))
           + "  cpu: {kind: test/cpu_probe, inputs: {model: big}}\n")
    gpus = visible_gpus()
    assert gpus == [0, 1, 2, 3]
    runs, log, manifest = _run(tmp_path, "g4", jobs=8, gpus=gpus)
    ran = {n: json.loads((runs / "g4" / "stages" / n / "ran.json").read_text())
           for n in json.loads(manifest.read_text())["stages"]}
    given = {n: set(r["cvd"].split(",")) - {""} for n, r in ran.items()}
    assert given["big"] == {"0", "1", "2", "3"} and given["cpu"] == set()
    assert all(len(given[n]) == 1 for n in ran if n[0] in "ae")
    # a0-a3 met (each waited for all four): four one-GPU stages at once, on four distinct GPUs
    assert {g for n in ("a0", "a1", "a2", "a3") for g in given[n]} == {"0", "1", "2", "3"}
    for x in ran:
        for y in ran:
            overlap = ran[x]["start"] < ran[y]["end"] and ran[y]["start"] < ran[x]["end"]
            if x < y and overlap:
                assert not given[x] & given[y], (x, y, given[x], given[y])
                assert "big" not in (x, y) or not (given[x] and given[y]), ("big overlapped", x, y)
    assert any(line.startswith("start big") and line.split("(")[0].endswith("on GPU 0,1,2,3  ") for line in log)
    assert any(line.startswith("[9/9] ") and line.endswith("(running 0, done 9/9, left 0)") for line in log)


def test_a_stage_needing_more_gpus_than_given_fails_before_anything_runs(tmp_path, workers_env):
    _write(tmp_path / "exp", "big", "  big: {kind: test/gpu_launch, params: {launch: accelerate_4gpu}}\n")
    with pytest.raises(InputError, match=r"stage 'big' \(test/gpu_launch\) needs 4 GPU\(s\); --gpus gives 2 \(0,1\)"):
        _run(tmp_path, "big", jobs=2, gpus=[0, 1])
    assert not (tmp_path / "runs" / "store").exists() or not [
        p for p in (tmp_path / "runs" / "store").iterdir() if p.name != ".tmp"]


@pytest.mark.parametrize("policy", ["finish", "cancel"])
def test_failure_stops_new_stages_and_finishes_or_cancels_the_running(tmp_path, workers_env, policy):
    _write(tmp_path / "exp", "f", "  slow: {kind: test/cpu_probe, params: {sleep: 6.0}}\n"
           "  bad: {kind: test/fail, params: {sleep: 1.0}}\n"
           "  after_bad: {kind: test/cpu_probe, inputs: {model: bad}}\n"
           "  after_slow: {kind: test/cpu_probe, inputs: {model: slow}, params: {tag: x}}\n")
    runs = tmp_path / "runs"
    log = []
    runner = Runner(runs, echo=log.append, executor=WorkerExecutor(runs))
    with pytest.raises(InputError, match="stage bad: failed on purpose"):
        run_concurrent(runner, load_experiment("f", "tiny", (), root=tmp_path / "exp"), (), 2, None, policy)
    runner.close()
    assert "FAILED bad: stage bad: failed on purpose" in log
    verb = "1 running finish first: slow" if policy == "finish" else "cancelling 1 running: slow"
    assert f"stopping: no new stages start; {verb}" in log
    published = {json.loads((p / "statement.json").read_text())["predicate"]["buildDefinition"]
                 ["externalParameters"]["stage"] for p in (runs / "store").iterdir() if p.name != ".tmp"}
    # finish: `slow` was running when `bad` failed, so it finishes and is published; cancel: it is
    # stopped and publishes nothing. Nothing new starts either way (after_slow, after_bad).
    assert published == ({"slow"} if policy == "finish" else set())
    assert not (runs / "f" / "manifest.json").exists() and not list((runs / "store" / ".tmp").iterdir())


def test_stages_with_one_key_build_once(tmp_path, workers_env):
    """Two stages that are the same computation: one builds, the other waits and is served."""
    _write(tmp_path / "exp", "twins", "  x: {kind: test/cpu_probe, params: {sleep: 0.5}}\n"
           "  y: {kind: test/cpu_probe, params: {sleep: 0.5}}\n")
    runs, log, manifest = _run(tmp_path, "twins", jobs=2, gpus=None)
    stages = json.loads(manifest.read_text())["stages"]
    assert stages["x"]["key"] == stages["y"]["key"]
    assert sorted(line.split()[2] for line in log if line.startswith("[")) == ["cached", "ran"]


def test_threads_writing_one_record_at_once_each_finish(tmp_path):
    """The scheduler's threads may write the same record (a system description) together: each
    atomic write uses its own temp file, so none loses its rename."""
    import threading

    from repro.provenance.record import read_json, write_json_atomic

    errors = []

    def write(i):
        try:
            for _ in range(100):
                write_json_atomic(tmp_path / "system.json", {"same": True})
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert read_json(tmp_path / "system.json") == {"same": True}
    assert [p.name for p in tmp_path.iterdir()] == ["system.json"]
