"""No tokens written or printed; no remote code, no unpickling in the package; pickle checkpoints
refused by the model loaders without ever being opened."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import FAKE_TOKEN, REPO, repro

PACKAGE = REPO / "repro"
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
# what "uses pickle" means in source: loading one, directly or through a library that does
FORBIDDEN = {
    "trust_remote_code=True": re.compile(r"trust_remote_code\s*=\s*True"),
    "pickle load": re.compile(r"\b(c?[Pp]ickle|_pickle)\.(loads?|Unpickler)\b"),
    "pickle-based library": re.compile(r"^\s*(import|from)\s+(dill|joblib|cloudpickle|shelve)\b", re.M),
    "pandas read_pickle": re.compile(r"\bread_pickle\s*\("),
    "numpy allow_pickle": re.compile(r"\bnp\.load\([^)]*allow_pickle\s*=\s*True"),
}


def _fragments(token: str) -> list[str]:
    # the token itself and its body (a log that strips the "hf_" prefix still leaks it)
    return [token, token[3:]]


def test_planted_token_is_in_no_file_and_no_output(smoke_run):
    for fragment in _fragments(FAKE_TOKEN):
        needle = fragment.encode()
        leaks = [p for p in smoke_run.runs.rglob("*")
                 if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]
        assert not leaks, leaks
        assert fragment not in smoke_run.stdout and fragment not in smoke_run.stderr


def test_env_command_does_not_print_the_token():
    proc = repro("env")
    assert proc.returncode == 0, proc.stderr
    assert all(f not in proc.stdout + proc.stderr for f in _fragments(FAKE_TOKEN))


def test_published_outputs_hold_no_pickles(smoke_run):
    pickles = [p.relative_to(smoke_run.runs) for p in smoke_run.runs.rglob("*")
               if p.is_file() and p.suffix in PICKLE_SUFFIXES]
    assert not pickles  # e.g. the Trainer's training_args.bin is removed before publishing


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("rule", sorted(FORBIDDEN))
def test_package_source_has_no(rule):
    pattern = FORBIDDEN[rule]
    hits = [f"{p.relative_to(REPO)}:{p.read_text()[:m.start()].count(chr(10)) + 1}"
            for p in _sources() for m in pattern.finditer(p.read_text())]
    assert not hits, f"{rule}: {hits}"


def test_every_torch_load_is_weights_only():
    calls = []
    for p in _sources():
        text = p.read_text()
        for m in re.finditer(r"\btorch\.load\(", text):
            depth, i = 1, m.end()
            while depth and i < len(text):  # the call's full argument list, nested parens included
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            calls.append((p, text[m.start():i]))
    bad = [f"{p.relative_to(REPO)}: {call}" for p, call in calls if "weights_only=True" not in call]
    assert not bad, bad
    assert len(_sources()) > 50  # the scan saw the package, not an empty folder


@pytest.fixture(scope="module")
def pickle_checkpoints(smoke_run, tmp_path_factory) -> dict[str, Path]:
    """The smoke run's LLM and LLaVA, re-saved with pickle weights (pytorch_model.bin) only."""
    import torch
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("pickles")
    out = {}
    for stage in ("llm", "stage2"):
        dst = root / stage
        shutil.copytree((smoke_run.runs / "smoke" / "stages" / stage).resolve(), dst,
                        ignore=shutil.ignore_patterns("checkpoints"))
        torch.save(load_file(dst / "model.safetensors"), dst / "pytorch_model.bin")
        (dst / "model.safetensors").unlink()
        out[stage] = dst
    return out


@pytest.fixture
def no_unpickling(monkeypatch):
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called on a checkpoint")

    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("stage", ["llm", "stage2"])
def test_hf_backend_refuses_pickle_checkpoint(pickle_checkpoints, no_unpickling, stage):
    from repro.errors import InputError
    from repro.evaluate.backends.hf import HFBackend

    with pytest.raises(InputError) as info:
        HFBackend(pickle_checkpoints[stage])
    message = str(info.value)
    assert "\n" not in message and str(pickle_checkpoints[stage]) in message
    assert "model.safetensors" in message


def test_load_llava_refuses_pickle_checkpoint(pickle_checkpoints, no_unpickling):
    from repro.errors import InputError
    from repro.models.llava import load_llava

    with pytest.raises((InputError, OSError)) as info:
        load_llava(pickle_checkpoints["stage2"])
    message = str(info.value)
    assert "\n" not in message and "model.safetensors" in message
    assert str(pickle_checkpoints["stage2"]) in message
