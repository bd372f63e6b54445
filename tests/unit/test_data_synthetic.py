"""The synthetic tiny world: byte-determinism per seed, the stage entry point, size handling."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from repro.data.synthetic import GENERATOR_VERSION, GENERATORS, generate, run_stage
from repro.errors import InputError
from repro.stages.context import StageContext


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_seed_same_bytes(tmp_path, name):
    start = time.perf_counter()
    generate(name, tmp_path / "a", seed=3)
    assert time.perf_counter() - start < 2.0  # default size stays small
    generate(name, tmp_path / "b", seed=3)
    generate(name, tmp_path / "c", seed=4)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_marker_and_scaling(tmp_path):
    generate("aligned_chat", tmp_path / "tiny", seed=0, size="tiny")
    generate("aligned_chat", tmp_path / "x3", seed=0, size=3)
    marker = json.loads((tmp_path / "tiny" / "DATASET.json").read_text())
    assert marker["dataset"] == "aligned_chat" and marker["source"] == "synthetic"
    assert marker["generator_version"] == GENERATOR_VERSION
    big = json.loads((tmp_path / "x3" / "aligned_chat.json").read_text())
    assert len(big) == 3 * len(json.loads((tmp_path / "tiny" / "aligned_chat.json").read_text()))


@pytest.mark.parametrize("size", ["huge", 0, -1, True, "1.5"])
def test_bad_size(tmp_path, size):
    with pytest.raises(InputError, match="param size"):
        generate("mme", tmp_path, seed=0, size=size)


def test_unknown_dataset(tmp_path):
    with pytest.raises(InputError, match="unknown synthetic dataset 'coco'"):
        generate("coco", tmp_path, seed=0)


def test_run_stage(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    ctx = StageContext(experiment="e", name="data", kind="data/synthetic",
                       params={"dataset": "sorry_bench", "size": "tiny"}, inputs={}, out=out, seed=7,
                       profile="tiny")
    run_stage(ctx)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["records"] == 10
    assert ctx.protocol_choices["synthetic_world"]["generator_version"] == GENERATOR_VERSION
    assert (out / "question.jsonl").is_file() and (out / "DATASET.json").is_file()
    assert str(tmp_path) not in "".join(p.read_text() for p in out.glob("*.json*"))


def test_run_stage_needs_dataset(tmp_path):
    ctx = StageContext(experiment="e", name="data", kind="data/synthetic", params={}, inputs={},
                       out=tmp_path, seed=0, profile="tiny")
    with pytest.raises(InputError, match="missing param 'dataset'"):
        run_stage(ctx)
