"""Bad inputs, through the ``repro`` command: every case exits non-zero with exactly one error
line naming the file/field/value, no traceback, and publishes nothing half-made (no manifest; the
store holds only the stages that finished before the failure, each whole).

Experiments live in a temporary folder (``$REPRO_EXPERIMENTS_DIR``). Dataset cases write a
synthetic dataset in its official layout, corrupt it, and read it through a ``data/fetch`` stage
with ``local_dir`` (the same loaders a real run uses) or ``repro data check``.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from conftest import REPO, copy_runs, repro, repro_env, stage_lines, store_problems

DATASETS = ("sorry_bench", "mm_safetybench", "llava_instruct", "llava_pretrain", "mme")
LLAVA = "llava_v1_5_mix665k.json"
MME = "data/test-00000-of-00001.parquet"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    from repro.data.synthetic import generate

    root = tmp_path_factory.mktemp("pristine")
    for name in DATASETS:
        generate(name, root / name, 0, 1)
    return root


@dataclass
class Workspace:
    root: Path
    pristine: Path

    @property
    def exp(self) -> Path:
        return self.root / "experiments"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def write(self, rel: str, text: str) -> Path:
        path = self.exp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def experiment(self, body: str, name: str = "x") -> list[str]:
        self.write(f"{name}.yaml", "schema: 1\n" + body)
        return ["run", name, "--runs-dir", str(self.runs)]

    def mirror(self, name: str) -> Path:
        dst = self.root / "mirror" / name
        shutil.copytree(self.pristine / name, dst)
        return dst

    def fetch(self, key: str, mirror: Path | str, loader: str | None = None) -> list[str]:
        params = {"dataset": key, "local_dir": str(mirror), "allow_unpinned": True, "extract": {}}
        if loader:
            params["loader"] = loader
        return self.experiment(f"stages:\n  d: {{kind: data/fetch, params: {json.dumps(params)}}}\n")


@pytest.fixture
def ws(tmp_path, pristine) -> Workspace:
    return Workspace(tmp_path, pristine)


def edit_json(path: Path, change: Callable[[list], None]) -> None:
    rows = json.loads(path.read_text())
    change(rows)
    path.write_text(json.dumps(rows))


def edit_jsonl(path: Path, change: Callable[[list[str]], None]) -> None:
    lines = path.read_text().splitlines()
    change(lines)
    path.write_text("\n".join(lines) + "\n")


def edit_parquet(path: Path, column: str, row: int, value) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    values = table.column(column).to_pylist()
    values[row] = value
    idx = table.schema.get_field_index(column)
    table = table.set_column(idx, table.schema.field(idx), pa.array(values, type=table.schema.field(idx).type))
    pq.write_table(table, path)


def llava_case(change: Callable[[list], None], ws_: Workspace) -> list[str]:
    root = ws_.mirror("llava_instruct")
    edit_json(root / LLAVA, change)
    return ws_.fetch("llava_instruct", root)


def set_row(i: int, **fields):
    def change(rows):
        rows[i].update(fields)
    return change


def recipe(body: str, stage: str = "t: {kind: train/text_sft, recipe: r}") -> Callable[[Workspace], list[str]]:
    def build(w: Workspace) -> list[str]:
        w.write("_base/tiny.yaml", "schema: 1\n" + body)
        return w.experiment(f"include: ['_base/{{profile}}.yaml']\nstages:\n  {stage}\n")
    return build


def sorry(change: Callable[[list[str]], None]) -> Callable[[Workspace], list[str]]:
    def build(w: Workspace) -> list[str]:
        root = w.mirror("sorry_bench")
        edit_jsonl(root / "question.jsonl", change)
        return w.fetch("sorry_bench", root)
    return build


def _remove_question(w: Workspace) -> list[str]:
    (root := w.mirror("sorry_bench")).joinpath("question.jsonl").rename(root / "question_fr.jsonl")
    return w.fetch("sorry_bench", root)


def _llava_image(setup: Callable[[Path], str]) -> Callable[[Workspace], list[str]]:
    """Point row 1's image at what ``setup(dataset_root)`` returns."""
    def build(w: Workspace) -> list[str]:
        root = w.mirror("llava_instruct")
        rel = setup(root)
        edit_json(root / LLAVA, set_row(0, image=rel))
        return w.fetch("llava_instruct", root)
    return build


def _zero_byte(root: Path) -> str:
    (root / "coco" / "train2017" / "000000000000.png").write_bytes(b"")
    return "coco/train2017/000000000000.png"


def _corrupt_image(root: Path) -> str:
    (root / "coco" / "train2017" / "000000000000.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    return "coco/train2017/000000000000.png"


def _symlink_out(w: Workspace) -> list[str]:
    # data check reads the folder in place (a fetch stage would copy the link's target in)
    root = w.mirror("llava_instruct")
    image = next(r["image"] for r in json.loads((root / LLAVA).read_text()) if "image" in r)
    shutil.copy(root / image, w.root / "outside.png")  # any real picture of the world
    (root / "coco").mkdir(exist_ok=True)
    (root / "coco" / "evil.png").symlink_to(w.root / "outside.png")
    edit_json(root / LLAVA, set_row(0, image="coco/evil.png"))
    return ["data", "check", "llava_instruct", str(root)]


def _mmsb_not_parquet(w: Workspace) -> list[str]:
    root = w.mirror("mm_safetybench")
    (root / "data" / "HateSpeech" / "SD.parquet").write_bytes(b"PAR1 not really")
    return w.fetch("mm_safetybench", root)


def _mme(column: str, value) -> Callable[[Workspace], list[str]]:
    def build(w: Workspace) -> list[str]:
        root = w.mirror("mme")
        edit_parquet(root / MME, column, 0, value)
        return w.fetch("mme", root)
    return build


def _pretrain_missing_conversations(w: Workspace) -> list[str]:
    root = w.mirror("llava_pretrain")
    edit_json(root / "blip_laion_cc_sbu_558k.json", lambda rows: rows[1].pop("conversations"))
    return w.fetch("llava_pretrain", root)


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
    # datasets: missing files, malformed rows, empty
    ("sorry_missing_file", _remove_question, ["question.jsonl", "not found"]),
    ("sorry_bad_json_line", sorry(lambda lines: lines.insert(2, "{oops")), ["question.jsonl", "row 3", "invalid JSON"]),
    ("sorry_turns_not_list", sorry(lambda lines: lines.__setitem__(
        0, json.dumps({"question_id": 1, "category": "x", "prompt_style": "base", "turns": "hi"}))),
     ["question.jsonl", "row 1", "'turns'"]),
    ("sorry_empty", sorry(lambda lines: lines.clear()), ["sorry_bench", "no records"]),
    ("llava_bad_role", lambda w: llava_case(lambda rows: rows[2]["conversations"][0].update({"from": "bot"}), w),
     [LLAVA, "row 3", "conversations[0].from", "'bot'"]),
    ("llava_empty", lambda w: llava_case(lambda rows: rows.clear(), w), ["llava_instruct", "no records"]),
    ("pretrain_missing_field", _pretrain_missing_conversations,
     ["blip_laion_cc_sbu_558k.json", "row 2", "'conversations'"]),
    ("image_dotdot", _llava_image(lambda root: "../outside.png"), [LLAVA, "row 1", "'../outside.png'", "escapes"]),
    ("image_absolute", _llava_image(lambda root: "/etc/hostname"), [LLAVA, "row 1", "absolute image path"]),
    ("image_zero_bytes", _llava_image(_zero_byte), [LLAVA, "row 1", "empty (0 bytes)"]),
    ("image_corrupt", _llava_image(_corrupt_image), [LLAVA, "row 1", "corrupt or not an image"]),
    ("image_symlink_escape", _symlink_out, [LLAVA, "row 1", "outside the dataset root"]),
    ("mmsb_not_parquet", _mmsb_not_parquet, ["HateSpeech/SD.parquet", "not a readable parquet"]),
    ("mme_corrupt_image", _mme("image", {"bytes": b"not an image", "path": "x.png"}),
     ["test-00000-of-00001.parquet", "row 1", "corrupt or not an image"]),
    ("mme_missing_question", _mme("question", None), ["test-00000-of-00001.parquet", "row 1", "'question'"]),
]


@pytest.mark.parametrize("build, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_in_one_line_and_publishes_nothing(ws, build, needles):
    args = build(ws)
    proc = repro(*args, env=repro_env(REPRO_EXPERIMENTS_DIR=str(ws.exp)), cwd=ws.root, timeout=300)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.lower().startswith("error")]
    assert len(errors) == 1, proc.stderr
    assert all(n in errors[0] for n in needles), f"{errors[0]!r} lacks one of {needles}"
    assert not list(ws.runs.glob("*/manifest.json"))
    assert not store_problems(ws.runs)
    store = ws.runs / "store"
    published = [p for p in store.iterdir() if p.name != ".tmp"] if store.is_dir() else []
    finished = [s for s in stage_lines(proc.stdout) if s.status == "ran"]
    assert len(published) == len(finished)  # the failing stage left no entry
    leftovers = list((store / ".tmp").iterdir()) if (store / ".tmp").is_dir() else []
    assert not leftovers  # the half-built stage was removed on the way out


def test_corpus_is_large_enough():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)

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
