"""The spine: keys, cache hits, atomic publish, status reasons, bad declarations."""

import json

import pytest

from repro.config.load import load_experiment
from repro.errors import InputError
from repro.pipeline import cache
from repro.pipeline.lock import RunLock, RunsDirBusy
from repro.pipeline.runner import Runner
from repro.pipeline.status import experiment_status


def run(experiments, runs, *overrides, name="chain", profile="tiny"):
    exp = load_experiment(name, profile, tuple(overrides), root=experiments)
    log = []
    runner = Runner(runs, echo=log.append)
    return runner.run(exp, tuple(overrides)), log


def statuses(log):
    return {line.split()[1]: line.split()[2] for line in log if line.startswith("[")}


def test_run_then_rerun_is_all_cached(experiments, tmp_path):
    runs = tmp_path / "runs"
    manifest, log = run(experiments, runs)
    assert statuses(log) == {"a": "ran", "b": "ran", "c": "ran"}
    assert (runs / "chain" / "stages" / "c" / "text.txt").read_text() == "hellohello+world"
    _, log = run(experiments, runs)
    assert statuses(log) == {"a": "cached", "b": "cached", "c": "cached"}
    data = json.loads(manifest.read_text())
    assert data["results"]["c"]["metrics"]["length"] == 16.0


def test_changed_param_reruns_exactly_downstream(experiments, tmp_path):
    runs = tmp_path / "runs"
    run(experiments, runs)
    exp = load_experiment("chain", "tiny", ("b.params.text=earth",), root=experiments)
    states = {s.name: (s.state, s.reasons) for s in experiment_status(exp, runs)}
    assert states["a"] == ("done", [])
    assert states["b"][0] == "stale" and states["b"][1] == ["param text: 'world' -> 'earth'"]
    assert states["c"] == ("stale", ["upstream 'b' is not done"])
    _, log = run(experiments, runs, "b.params.text=earth")
    assert statuses(log) == {"a": "cached", "b": "ran", "c": "ran"}


def test_profile_swaps_recipe(experiments):
    tiny = load_experiment("chain", "tiny", root=experiments)
    paper = load_experiment("chain", "paper", root=experiments)
    assert tiny.stages["a"].params["repeat"] == 2 and paper.stages["a"].params["repeat"] == 1000


def test_modified_output_is_rebuilt_not_served(experiments, tmp_path):
    runs = tmp_path / "runs"
    run(experiments, runs)
    target = runs / "chain" / "stages" / "a" / "text.txt"
    target.chmod(0o644)
    target.write_text("tampered")
    _, log = run(experiments, runs)
    assert statuses(log)["a"] == "ran"
    assert any("output file text.txt modified" in line for line in log)
    assert target.read_text() == "hellohello"


def test_failing_stage_publishes_nothing(experiments, tmp_path):
    (experiments / "bad.yaml").write_text(
        "schema: 1\nstages:\n  a: {kind: test/write_text, params: {text: x}}\n"
        "  f: {kind: test/fail_midway, inputs: {a: a}}\n")
    runs = tmp_path / "runs"
    with pytest.raises(InputError, match=r"data.json: row 3: field 'x'"):
        run(experiments, runs, name="bad")
    entries = [p.name for p in (runs / "store").iterdir() if p.name != ".tmp"]
    assert len(entries) == 1  # stage a only
    assert not list((runs / "store" / ".tmp").iterdir())
    assert not (runs / "bad" / "manifest.json").exists()


def test_symlink_output_refused(experiments, tmp_path):
    (experiments / "link.yaml").write_text("schema: 1\nstages:\n  l: {kind: test/write_link}\n")
    with pytest.raises(InputError, match="symbolic link link"):
        run(experiments, tmp_path / "runs", name="link")


@pytest.mark.parametrize("text, message", [
    ("schema: 1\nstages: {a: {kind: test/write_text, params: {text: x}, colour: red}}\n", "unknown key 'colour'"),
    ("schema: 1\nstages: {a: {kind: test/nope}}\n", "unknown stage kind 'test/nope'"),
    ("schema: 1\nstages: {a: {kind: test/concat, inputs: {x: zz}}}\n", "input 'x' names no stage 'zz'"),
    ("schema: 1\nstages: {a: {kind: test/concat, inputs: {x: b}}, b: {kind: test/concat, inputs: {x: a}}}\n", "cycle"),
    ("schema: 1\nstages: {a: {kind: train/text_sft, params: {learning_rate: -1}}}\n", "'learning_rate': must be > 0"),
    ("schema: 1\nstages: {a: {kind: train/text_sft, params: {per_device_train_batch_size: 0}}}\n", "must be >= 1"),
    ("schema: 1\nstages: {a: {kind: train/text_sft, params: {learning_rate: fast}}}\n", "expected a number"),
    ("schema: 1\nstages: {a: {kind: train/text_sft, params: {warmup_ratio: 1.0}}}\n", "'warmup_ratio': must be in [0,1)"),
    ("schema: 1\nstages: {a: {kind: test/write_text, params: {text: x, txet: y}}}\n", "unknown param 'txet'"),
    ("schema: 1\nstages: {a: {kind: test/write_text, recipe: nope}}\n", "unknown recipe 'nope'"),
    ("schema: 2\nstages: {a: {kind: test/write_text}}\n", "key 'schema'"),
    ("schema: 1\nstages: [a, b]\n", "key 'stages'"),
    ("schema: 1\nstages: {a: {kind: test/write_text}\n", "malformed YAML"),
    ("schema: 1\nsurprise: 1\nstages: {a: {kind: test/write_text}}\n", "unknown key 'surprise'"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_bad_declarations_name_file_and_key(experiments, text, message):
    (experiments / "broken.yaml").write_text(text)
    with pytest.raises(InputError) as err:
        load_experiment("broken", "tiny", root=experiments)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_experiment_profile_and_override(experiments):
    with pytest.raises(InputError, match="unknown experiment 'nope'.*known: chain"):
        load_experiment("nope", "tiny", root=experiments)
    with pytest.raises(InputError, match="unknown profile 'huge'"):
        load_experiment("chain", "huge", root=experiments)
    with pytest.raises(InputError, match="no stage or key named 'zz'"):
        load_experiment("chain", "tiny", ("zz.params.x=1",), root=experiments)
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        load_experiment("chain", "tiny", ("novalue",), root=experiments)


def test_second_run_on_same_runs_dir_is_refused(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunsDirBusy, match=r"in use by another repro run \(pid \d+ on host"):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):  # released: taken again
        pass


def test_key_is_pinned_for_fixed_components():
    # Golden: changing how keys are serialised must fail this on purpose.
    comps = {"key_schema": 1, "kind": "test/x", "code": "0" * 64, "params": {"b": 1, "a": [1.5, "x"]},
             "seed": 0, "inputs": {"m": "f" * 64}, "environment": {"python": "3.11.7"}}
    assert cache.stage_key(comps) == "99cb514c316be2bffbdfbdb257e6652818c5cd38ef66f49a15dbe04364f06031"


def test_sweep_expands_propagates_and_gathers(experiments, tmp_path):
    (experiments / "sw.yaml").write_text(
        "schema: 1\nstages:\n"
        "  a: {kind: test/write_text, params: {text: x}, sweep: {repeat: [1, 3]}}\n"
        "  b: {kind: test/concat, inputs: {x: a}}\n"
        "  c: {kind: test/concat, inputs: {y: b}, gather: true}\n")
    exp = load_experiment("sw", "tiny", root=experiments)
    assert list(exp.stages) == ["a@1", "a@3", "b@1", "b@3", "c"]
    assert exp.stages["a@3"].params == {"text": "x", "repeat": 3}
    assert exp.stages["b@3"].inputs == {"x": "a@3"}
    assert exp.stages["c"].inputs == {"y@1": "b@1", "y@3": "b@3"}
    manifest, _ = run(experiments, tmp_path / "runs", name="sw")
    assert (tmp_path / "runs" / "sw" / "stages" / "c" / "text.txt").read_text() == "x+xxx"
    (experiments / "sw2.yaml").write_text(
        "schema: 1\nstages:\n  a: {kind: test/write_text, sweep: {repeat: 2}}\n")
    with pytest.raises(InputError, match="sweep 'repeat': expected a non-empty list"):
        load_experiment("sw2", "tiny", root=experiments)


def test_lock_of_a_killed_run_is_taken_over(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from repro.pipeline.lock import RunLock; lock = RunLock(Path(sys.argv[1])).__enter__(); "
         "print('held', flush=True); time.sleep(60)", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunsDirBusy, match=rf"pid {holder.pid} on host"):
            with RunLock(tmp_path):
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        t0 = time.perf_counter()
        with RunLock(tmp_path):  # the dead holder's record is left behind; the lock is free
            assert time.perf_counter() - t0 < 5
    finally:
        if holder.poll() is None:
            holder.kill()
