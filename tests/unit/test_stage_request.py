"""The one request format (repro/stages/request.py) and the shared file helpers (repro/io.py)."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from repro.errors import InputError
from repro.io import read_json, sha256_bytes, sha256_file, sha256_text, timestamp, write_json_atomic
from repro.stages.request import StageRequest


def request(runs):
    return StageRequest(experiment="e", name="sft", kind="train/sft", params={"learning_rate": 1e-3},
                        inputs={"model": runs / "store" / "k1" / "out", "data": runs / "store" / "k2" / "out"},
                        out=runs / "store" / ".tmp" / "k3.1" / "out", seed=3, profile="tiny",
                        scratch=runs / "store" / ".scratch" / "k3")


def test_request_crosses_to_another_runs_directory_relative_to_it(tmp_path):
    """Written relative to the runs directory here, read against the runs directory as the
    other process sees it (a container's /workspace/runs)."""
    here, there = tmp_path / "runs", tmp_path / "mounted"
    path = tmp_path / "request.json"
    request(here).write(path, here)
    data = json.loads(path.read_text())
    assert data["out"] == "store/.tmp/k3.1/out" and data["inputs"]["model"] == "store/k1/out"
    assert StageRequest.read(path, there) == request(there)


def test_request_for_ranks_keeps_absolute_paths_and_rebuilds_the_context(tmp_path):
    path = tmp_path / "spec.json"
    request(tmp_path).write(path)  # root=None: the launcher's ranks share this file system
    again = StageRequest.read(path)
    assert again == request(tmp_path)
    ctx = again.context(out=tmp_path / "rank1")
    assert ctx.out == tmp_path / "rank1" and ctx.inputs == again.inputs and ctx.param("learning_rate") == 1e-3


def test_request_outside_the_runs_directory_or_incomplete_is_refused(tmp_path):
    with pytest.raises(InputError, match="outside the runs directory"):
        request(tmp_path / "elsewhere").write(tmp_path / "r.json", tmp_path / "runs")
    (tmp_path / "bad.json").write_text(json.dumps({"experiment": "e", "name": "n"}))
    with pytest.raises(InputError, match=r"bad.json: stage request lacks kind, params, inputs, out, seed, profile"):
        StageRequest.read(tmp_path / "bad.json", tmp_path)


def test_io_helpers_hash_write_and_stamp(tmp_path):
    path = tmp_path / "record.json"
    write_json_atomic(path, {"b": 1, "a": "é"})
    assert path.read_text(encoding="utf-8") == '{\n  "a": "é",\n  "b": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temp file left
    assert read_json(path) == {"a": "é", "b": 1}
    assert sha256_file(path) == sha256_bytes(path.read_bytes()) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sha256_text("é") == hashlib.sha256("é".encode("utf-8")).hexdigest()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", timestamp())
