"""Shared helpers of the fetch tests (test_fetch.py, test_fetch_cli.py): lock entries, stage
contexts, a tiny LLM to fetch from a mirror. No network anywhere."""

import hashlib
import json
from pathlib import Path

import pytest

from repro.data.synthetic import generate
from repro.stages.context import StageContext


FAKE_TOKEN = "hf_FAKEtokenFAKEtokenFAKEtokenFAKE0000"  # planted by tests/conftest.py
REV = "1" * 40


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entry(repo_id, revision=REV, files=None, gated=False, host=None):
    e = {"id": repo_id, "revision": revision, "status": "pinned" if revision else "unpinned",
         "license": None, "gated": gated, "files": dict(files or {}), "source": "https://example.org/x"}
    if host:
        e["host"] = host
    return e


def make_lock(models=None, datasets=None):
    return {"schema": 1, "images": {}, "python_locks": {}, "models": models or {}, "datasets": datasets or {}}


def ctx_for(tmp_path, kind, params, lock):
    return StageContext(experiment="e", name="fetch", kind=kind, params=params, inputs={},
                        out=tmp_path / "build" / "out", seed=0, profile="paper", lock=lock)


def run_stage(tmp_path, kind, params, lock):
    from repro.data.fetch import fetch_dataset_stage
    from repro.models.fetch import fetch_model_stage

    ctx = ctx_for(tmp_path, kind, params, lock)
    (fetch_model_stage if kind == "models/fetch" else fetch_dataset_stage)(ctx)
    return ctx


def one_line(exc_info, *needles):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, msg
    return msg



@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    from repro.models.tiny import build_tiny_llm

    root = tmp_path_factory.mktemp("tiny_llm")
    build_tiny_llm(root, ["[INST] hello there [/INST] hi </s>"] * 8, seed=0, template="llama2")
    return root


def traversal_vlguard(root: Path) -> Path:
    generate("vlguard", root, seed=0, size="tiny")
    rows = json.loads((root / "train.json").read_text())
    rows[0]["image"] = "../../etc/passwd"
    (root / "train.json").write_text(json.dumps(rows))
    return root
