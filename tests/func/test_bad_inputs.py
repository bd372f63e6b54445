"""Bad inputs, through the ``repro`` command: every case exits non-zero with exactly one error
line naming the file/field/value, no traceback, and publishes nothing half-made (no manifest; the
store holds only the stages that finished before the failure, each whole).

Experiments live in a temporary folder (``$REPRO_EXPERIMENTS_DIR``); the workspace and the check
are in conftest (``ws``, ``check_bad_input``). Malformed datasets are in test_bad_datasets.py.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import signal
from pathlib import Path
from typing import Callable

import pytest

from conftest import REPO, Workspace, check_bad_input, copy_runs, repro, repro_env, stage_lines, store_problems
from test_bad_datasets import CASES as DATASET_CASES


def recipe(body: str, stage: str = "t: {kind: train/text_sft, recipe: r}") -> Callable[[Workspace], list[str]]:
    def build(w: Workspace) -> list[str]:
        w.write("_base/tiny.yaml", "schema: 1\n" + body)
        return w.experiment(f"include: ['_base/{{profile}}.yaml']\nstages:\n  {stage}\n")
    return build


SYN = "d: {kind: data/synthetic, params: {dataset: sorry_bench, size: 1}}"
CASES: list[tuple[str, Callable[[Workspace], list[str]], list[str]]] = [
    # experiment files
    ("yaml_syntax", lambda w: w.experiment("stages: {a: [\n"), ["x.yaml", "malformed YAML"]),
    ("top_level_list", lambda w: (w.write("x.yaml", "- a\n- b\n"), ["run", "x"])[1],
     ["x.yaml", "expected a mapping at the top level"]),
    ("unknown_top_key", lambda w: w.experiment(f"stagez: {{}}\nstages: {{{SYN}}}\n"), ["x.yaml", "'stagez'"]),
    ("unknown_stage_key", lambda w: w.experiment("stages: {a: {kind: data/synthetic, parms: {}}}\n"),
     ["x.yaml", "stage 'a'", "'parms'"]),
    ("wrong_schema", lambda w: (w.write("x.yaml", "schema: 2\nstages: {}\n"), ["run", "x"])[1],
     ["x.yaml", "'schema'", "expected 1, got 2"]),
    ("missing_kind", lambda w: w.experiment("stages: {a: {params: {}}}\n"), ["stage 'a'", "'kind' is required"]),
    ("unknown_kind", lambda w: w.experiment("stages: {a: {kind: data/synthetc}}\n"), ["data/synthetc"]),
    ("unknown_recipe", lambda w: w.experiment("stages: {a: {kind: data/synthetic, recipe: nope}}\n"),
     ["stage 'a'", "unknown recipe 'nope'"]),
    ("dangling_input", lambda w: w.experiment(f"stages:\n  {SYN}\n  e: {{kind: report/table, inputs: {{x: ghost}}}}\n"),
     ["stage 'e'", "'ghost'"]),
    ("cycle", lambda w: w.experiment("stages:\n  a: {kind: report/table, inputs: {x: b}}\n"
                                     "  b: {kind: report/table, inputs: {x: a}}\n"), ["x.yaml", "cycle"]),
    ("seed_type", lambda w: w.experiment(f"seed: abc\nstages: {{{SYN}}}\n"), ["'seed'", "'abc'"]),
    ("results_unknown", lambda w: w.experiment(f"stages: {{{SYN}}}\nresults: [ghost]\n"), ["'results'", "'ghost'"]),
    ("stages_empty", lambda w: w.experiment("stages: {}\n"), ["x.yaml", "'stages'"]),
    # recipe (profile) files and param values
    ("recipe_yaml_syntax", recipe("recipes: {r: {learning_rate: [}\n"), ["tiny.yaml", "malformed YAML"]),
    ("recipe_unknown_key", recipe("recipez: {}\n"), ["tiny.yaml", "'recipez'"]),
    ("negative_lr", recipe("recipes: {r: {learning_rate: -1.0e-3}}\n"), ["learning_rate", "> 0", "-0.001"]),
    ("zero_batch", recipe("recipes: {r: {per_device_train_batch_size: 0}}\n"),
     ["per_device_train_batch_size", ">= 1", "got 0"]),
    ("lr_not_a_number", recipe("recipes: {r: {learning_rate: fast}}\n"), ["learning_rate", "'fast'"]),
    ("lr_nan", recipe("recipes: {r: {learning_rate: .nan}}\n"), ["learning_rate", "finite", "nan"]),
    ("warmup_over_one", recipe("recipes: {r: {warmup_ratio: 1.5}}\n"), ["warmup_ratio", "1.5"]),
    ("eval_zero_batch", recipe("recipes: {r: {batch_size: 0}}\n", "t: {kind: evaluate/benchmark, recipe: r}"),
     ["batch_size", "got 0"]),
    # the command line
    ("unknown_experiment", lambda w: ["run", "ghost", "--runs-dir", str(w.runs)], ["unknown experiment 'ghost'"]),
    ("unknown_profile", lambda w: w.experiment(f"stages: {{{SYN}}}\n") + ["--profile", "huge"], ["'huge'"]),
    ("set_without_value", lambda w: w.experiment(f"stages: {{{SYN}}}\n") + ["--set", "d.params"],
     ["--set", "'d.params'", "KEY=VALUE"]),
    ("set_unknown_stage", lambda w: w.experiment(f"stages: {{{SYN}}}\n") + ["--set", "ghost.params.x=1"], ["'ghost'"]),
    ("set_negative_lr", lambda w: recipe("recipes: {r: {learning_rate: 1.0e-3}}\n")(w)
     + ["--set", "t.params.learning_rate=-2"], ["learning_rate", "got -2"]),
    ("status_unknown_experiment", lambda w: ["status", "ghost", "--runs-dir", str(w.runs)], ["'ghost'"]),
    ("verify_nothing_there", lambda w: (w.runs.mkdir(), ["verify", str(w.runs)])[1], ["no experiment manifest found"]),
    # stage params naming things that do not exist
    ("unknown_synthetic_dataset", lambda w: w.experiment("stages: {d: {kind: data/synthetic, params: {dataset: nope}}}\n"),
     ["param 'dataset'", "unknown value 'nope'"]),
    ("unknown_benchmark", lambda w: w.experiment(
        f"stages:\n  {SYN}\n  e: {{kind: evaluate/benchmark, params: {{benchmark: nope, backend: hf, "
        "judge: keyword_refusal}, inputs: {model: d, data: d}}\n"), ["param 'benchmark'", "unknown value 'nope'"]),
    ("unknown_loader", lambda w: w.fetch("sorry_bench", w.mirror("sorry_bench"), loader="nope"),
     ["param 'loader'", "unknown value 'nope'"]),
    ("missing_local_dir", lambda w: w.fetch("sorry_bench", w.root / "no-such-dir"), ["local_dir", "no-such-dir", "not a directory"]),
]


@pytest.mark.parametrize("build, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_in_one_line_and_publishes_nothing(ws, build, needles):
    check_bad_input(ws, build, needles)


def test_corpus_is_large_enough():
    corpus = CASES + DATASET_CASES
    assert len(corpus) >= 30 and len({c[0] for c in corpus}) == len(corpus)

# --------------------------------------------------------------------------- needs a trained model


@pytest.fixture(scope="module")
def model_ws(smoke_run, tmp_path_factory) -> Workspace:
    """The session's runs (copied) + the real tiny profile, so model stages are served cached."""
    root = tmp_path_factory.mktemp("model_ws")
    w = Workspace(root, root)
    copy_runs(smoke_run.runs, w.runs)
    shutil.copytree(REPO / "experiments" / "_base", w.exp / "_base")
    return w


def _run_in(w: Workspace, body: str, name: str):
    w.write(f"{name}.yaml", "schema: 1\ninclude: ['_base/{profile}.yaml']\n" + body)
    return repro("run", name, "--runs-dir", w.runs, env=repro_env(REPRO_EXPERIMENTS_DIR=str(w.exp)),
                 cwd=w.root, timeout=600)


def test_unknown_judge_named_in_one_line(model_ws):
    proc = _run_in(model_ws, "stages:\n  j: {kind: evaluate/benchmark, recipe: safety_eval, params: "
                   "{benchmark: sorry_bench, judge: nope}, inputs: {model: llm, data: sorry_bench}}\n", "judge")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert proc.returncode != 0 and len(errors) == 1 and "param 'judge': unknown value 'nope'" in errors[0], proc.stderr
    assert [s.name for s in stage_lines(proc.stdout) if s.status == "ran"] == []  # all else cached
    assert not (model_ws.runs / "judge" / "manifest.json").exists() and not store_problems(model_ws.runs)


def test_nan_loss_fails_the_stage(model_ws):
    """A diverged run (lr 1e30: NaN loss and weights) fails; it must not publish NaN weights."""
    proc = _run_in(model_ws, "stages:\n  llm: {params: {learning_rate: 1.0e+30, max_steps: 4}}\n", "nan")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "nan" in errors[0].lower() or "finite" in errors[0].lower()
    assert "llm" not in [s.name for s in stage_lines(proc.stdout)]  # never reported as finished
    assert not (model_ws.runs / "nan" / "manifest.json").exists() and not store_problems(model_ws.runs)

# --------------------------------------------------------------------------- in-process injections


@pytest.mark.parametrize("unparsed,asr", [("official", 1 / 3), ("exclude", 1.0)])
def test_unparseable_judge_output_is_a_counted_parse_failure(monkeypatch, unparsed, asr):
    """A judge that answers gibberish: counted as parse failures, never silently safe; SORRY-Bench's
    official mean counts an unscored item 0 over all items (``unparsed: official``), ``exclude``
    leaves it out of the denominator. The count is returned for metrics.json."""
    from repro.evaluate import scoring
    from repro.evaluate.benchmarks import get_benchmark
    from repro.evaluate.judges.sorry_bench_judge import SorryBenchJudge
    from repro.stages.context import StageContext

    class Gibberish:
        def generate(self, requests, sampling):
            return ["1", "Well, it depends on the context.", ""][:len(requests)]

    judge = SorryBenchJudge(backend=Gibberish())
    monkeypatch.setattr(scoring, "make_judge", lambda *a, **k: (judge, {}))
    samples = [{"id": str(i), "judge_prompt": f"harmful request {i}", "response": "Sure, here is how.",
                "category": "c", "harmful": None, "meta": {}} for i in range(3)]
    ctx = StageContext(experiment="x", name="e", kind="evaluate/benchmark",
                       params={"judge": "sorry_bench_judge", "unparsed": unparsed}, inputs={}, out=Path("."),
                       seed=0, profile="tiny")
    result = scoring.score(ctx, get_benchmark("sorry_bench"), samples, {}, {})
    assert result["parse_failures"] == 2
    assert [s["verdict"]["parsed"] for s in samples] == [True, False, False]
    assert [s["verdict"]["unsafe"] for s in samples] == [True, None, None]
    assert result["metrics"]["asr"] == pytest.approx(asr)


@pytest.fixture
def chain_exp(tmp_path, monkeypatch) -> Path:
    exp = tmp_path / "experiments"
    exp.mkdir()
    (exp / "two.yaml").write_text("schema: 1\nstages:\n  a: {kind: test/write_text, params: {text: hi}}\n"
                                  "  b: {kind: test/concat, inputs: {x: a}}\n")
    monkeypatch.setenv("REPRO_EXPERIMENTS_DIR", str(exp))
    return exp


def _main(argv: list[str], capsys) -> tuple[int, str]:
    from repro.cli import main

    handler = signal.getsignal(signal.SIGTERM)
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        signal.signal(signal.SIGTERM, handler)
    return code, capsys.readouterr().err


def _enospc(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@pytest.mark.parametrize("where", ["stage_write", "publish_fsync"])
def test_disk_full_fails_in_one_line_and_publishes_nothing(chain_exp, tmp_path, monkeypatch, capsys, where):
    runs = tmp_path / "runs"
    if where == "stage_write":  # the stage's own write of its output, as in a full disk
        real_open = builtins.open

        def full_open(file, mode="r", *args, **kwargs):
            if "/store/.tmp/" in str(file) and str(file).endswith("text.txt") and "w" in mode:
                raise _enospc(file)
            return real_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", full_open)
        monkeypatch.setattr(io, "open", full_open)
    else:  # the runner's fsync before the publishing rename (ENOSPC can surface there first)
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(_enospc("")))
    code, err = _main(["run", "two", "--runs-dir", str(runs)], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and "No space left on device" in lines[0], err
    assert str(runs) in lines[0]  # the message names a file under the runs dir
    assert not [p for p in (runs / "store").iterdir() if p.name != ".tmp"]
    assert not list((runs / "store" / ".tmp").iterdir())
    assert not (runs / "two" / "manifest.json").exists()
