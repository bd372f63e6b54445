"""Functional tests drive the real ``repro`` command in subprocesses, as a user would.

One tiny reproduction (``repro run smoke --profile tiny``) runs once per test session
(``smoke_run``) and is shared, read-only, by the smoke, determinism and security tests; a test
that must change a run works on a copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REPRO_BIN = Path(sys.executable).with_name("repro")
# A planted token: no file under a runs dir and no line of output may ever contain it.
FAKE_TOKEN = "hf_FAKEfuncTOKENfuncTOKENfuncTOKEN0000"
STAGE_LINE = re.compile(r"^\[(\d+)/(\d+)\]\s+(\S+)\s+(ran|cached)\s+([\d.]+)s\s+(\S+)")


def repro_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("REPRO_EXPERIMENTS_DIR", None)
    env.update(HF_TOKEN=FAKE_TOKEN, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env.update(extra)
    return env


def repro_cmd(*args) -> list[str]:
    head = [str(REPRO_BIN)] if REPRO_BIN.exists() else [sys.executable, "-m", "repro"]
    return head + [str(a) for a in args]


def repro(*args, env: dict | None = None, cwd: Path | None = None,
          timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(repro_cmd(*args), capture_output=True, text=True,
                          env=env or repro_env(), cwd=cwd or REPO, timeout=timeout)


@dataclass
class StageLine:
    index: int
    name: str
    status: str  # "ran" | "cached"
    seconds: float


def stage_lines(stdout: str) -> list[StageLine]:
    out = []
    for line in stdout.splitlines():
        m = STAGE_LINE.match(line)
        if m:
            out.append(StageLine(int(m.group(1)), m.group(3), m.group(4), float(m.group(5))))
    return out


def manifest_digests(runs: Path, experiment: str = "smoke") -> dict[str, str]:
    manifest = json.loads((runs / experiment / "manifest.json").read_text())
    return {name: entry["output_digest"] for name, entry in manifest["stages"].items()}


def store_problems(runs: Path) -> list[str]:
    """Everything published must be whole: each store entry has a statement whose subjects match
    its files byte for byte, and each manifest is complete and sealed. Returns what is not."""
    from repro.provenance.digest import digest_tree
    from repro.provenance.record import seal_ok, subject_files

    problems = []
    store = runs / "store"
    for entry in sorted(store.iterdir()) if store.is_dir() else []:
        if entry.name == ".tmp":
            continue
        try:
            statement = json.loads((entry / "statement.json").read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"store/{entry.name}: statement unreadable ({exc.__class__.__name__})")
            continue
        if not (entry / "out").is_dir():
            problems.append(f"store/{entry.name}: out/ missing")
        elif digest_tree(entry / "out") != subject_files(statement):
            problems.append(f"store/{entry.name}: outputs differ from the statement")
    for manifest in sorted(runs.glob("*/manifest.json")):
        try:
            ok = seal_ok(json.loads(manifest.read_text()))
        except (OSError, ValueError):
            ok = False
        if not ok:
            problems.append(f"{manifest}: incomplete or unsealed")
    return problems


def copy_runs(src: Path, dst: Path) -> Path:
    """A writable copy of a runs dir (links kept relative, so it verifies on its own)."""
    shutil.copytree(src, dst, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(dst):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o200)
    return dst


@dataclass
class SmokeRun:
    runs: Path
    cwd: Path
    stdout: str
    stderr: str
    seconds: float
    timeline: list[StageLine] = field(default_factory=list)

    @property
    def digests(self) -> dict[str, str]:
        return manifest_digests(self.runs)

    def duration(self, stage: str) -> float:
        return next(s.seconds for s in self.timeline if s.name == stage)

    def index(self, stage: str) -> int:
        return next(s.index for s in self.timeline if s.name == stage)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """The tiny reproduction, run once per session with a planted token in the environment."""
    base = tmp_path_factory.mktemp("smoke")
    cwd = base / "cwd"  # an empty working directory: the run must write nothing here
    cwd.mkdir()
    runs = base / "runs"
    t0 = time.perf_counter()
    proc = repro("run", "smoke", "--profile", "tiny", "--runs-dir", runs, cwd=cwd)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"\n[smoke_run] tiny reproduction: {seconds:.1f}s wall")
    return SmokeRun(runs, cwd, proc.stdout, proc.stderr, seconds, stage_lines(proc.stdout))


# A small experiment with a checkpointing training stage, for the disk-full and kill-during-export
# tests: the tiny profile's `aligned_chat` and `base_llm` (same params, so a copy of the session
# run serves them), a fresh synthetic SORRY-Bench (`sorry`) and `sft`, 6 steps of text SFT
# keeping a checkpoint every 2 steps.
MINI = "mini"
MINI_TRAINING = {"max_steps": 6, "save_steps": 2}


def write_mini(root: Path) -> Path:
    import yaml

    tiny = yaml.safe_load((REPO / "experiments" / "_base" / "tiny.yaml").read_text())
    stages = {"sorry": {"kind": "data/synthetic", "params": {"dataset": "sorry_bench", "size": 3}},
              "aligned_chat": tiny["stages"]["aligned_chat"], "base_llm": tiny["stages"]["base_llm"],
              "sft": {"kind": "train/text_sft", "recipe": "align_llm", "params": MINI_TRAINING,
                      "inputs": {"model": "base_llm", "data": "aligned_chat"}}}
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{MINI}.yaml").write_text(yaml.safe_dump(
        {"schema": 1, "seed": 0, "recipes": tiny["recipes"], "stages": stages, "results": ["sft"]},
        sort_keys=False))
    return root


@dataclass
class MiniRun:
    experiments: Path
    runs: Path
    digests: dict[str, str]

    def env(self) -> dict[str, str]:
        return repro_env(REPRO_EXPERIMENTS_DIR=str(self.experiments))


@pytest.fixture(scope="session")
def mini_run(smoke_run, tmp_path_factory) -> MiniRun:
    """The mini experiment, run once without faults in a copy of the session run: the reference
    digests every faulted-then-resumed run must publish."""
    base = tmp_path_factory.mktemp("mini")
    experiments = write_mini(base / "experiments")
    runs = copy_runs(smoke_run.runs, base / "runs")
    proc = repro("run", MINI, "--runs-dir", runs, env=repro_env(REPRO_EXPERIMENTS_DIR=str(experiments)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = [s.name for s in stage_lines(proc.stdout) if s.status == "ran"]
    assert ran == ["sorry", "sft"], proc.stdout  # the rest came from the session run
    return MiniRun(experiments, runs, manifest_digests(runs, MINI))


# --------------------------------------------------------------------------- bad inputs
# Shared by test_bad_inputs.py and test_bad_datasets.py: experiments in a temporary folder
# (``$REPRO_EXPERIMENTS_DIR``), datasets mirrored from pristine synthetic copies.

BAD_INPUT_DATASETS = ("sorry_bench", "mm_safetybench", "llava_instruct", "llava_pretrain", "mme")


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> Path:
    """Each dataset in its official layout, generated once; cases corrupt a mirrored copy."""
    from repro.data.synthetic import generate

    root = tmp_path_factory.mktemp("pristine")
    for name in BAD_INPUT_DATASETS:
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


def check_bad_input(ws: Workspace, build, needles: list[str]) -> None:
    """The command ``build(ws)`` returns exits non-zero with exactly one error line holding every
    needle, no traceback, and publishes nothing half-made."""
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
