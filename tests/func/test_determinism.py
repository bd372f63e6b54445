"""Two clean tiny reproductions, in separate runs dirs, produce identical outputs for every stage.

Only statement metadata (``runDetails.metadata``: invocation id, timestamps), the manifest's
``invocation`` and the digests over those may differ; everything else (keys, params, protocol choices, every file digest)
must be equal.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import repro


def _statements(runs: Path) -> dict[str, dict]:
    manifest = json.loads((runs / "smoke" / "manifest.json").read_text())
    return {name: json.loads((runs / entry["statement"]).read_text())
            for name, entry in manifest["stages"].items()}


def _without_metadata(statement: dict) -> dict:
    s = copy.deepcopy(statement)
    s["predicate"]["runDetails"].pop("metadata")
    return s


@pytest.fixture(scope="module")
def second_run(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("determinism") / "runs"
    proc = repro("run", "smoke", "--profile", "tiny", "--runs-dir", runs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return runs


def test_every_stage_output_is_identical(smoke_run, second_run):
    first, second = _statements(smoke_run.runs), _statements(second_run)
    assert sorted(first) == sorted(second)
    differ = {}
    for name in first:
        a = {s["name"]: s["digest"] for s in first[name]["subject"]}
        b = {s["name"]: s["digest"] for s in second[name]["subject"]}
        if a != b:
            differ[name] = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))[:5]
    assert not differ, f"non-deterministic stages (stage: differing files): {differ}"


def test_statements_differ_only_in_metadata(smoke_run, second_run):
    first, second = _statements(smoke_run.runs), _statements(second_run)
    keys_a = {n: s["predicate"]["buildDefinition"]["internalParameters"]["cache_key"] for n, s in first.items()}
    keys_b = {n: s["predicate"]["buildDefinition"]["internalParameters"]["cache_key"] for n, s in second.items()}
    if keys_a != keys_b:
        pytest.fail("cache keys differ between the two runs: repro/ or the environment changed "
                    "between them (keys hash the code), so the statements cannot be compared")
    for name in first:
        assert _without_metadata(first[name]) == _without_metadata(second[name]), name
        meta = first[name]["predicate"]["runDetails"]["metadata"]
        assert set(meta) == {"invocationId", "startedOn", "finishedOn"}


def test_manifests_differ_only_in_invocation(smoke_run, second_run):
    a = json.loads((smoke_run.runs / "smoke" / "manifest.json").read_text())
    b = json.loads((second_run / "smoke" / "manifest.json").read_text())
    for m in (a, b):
        m.pop("invocation")
        m.pop("manifest_sha256")
        for entry in m["stages"].values():
            entry.pop("statement_sha256")  # a digest over the statement, metadata included
    assert a == b


def test_repro_diff_finds_no_difference(smoke_run, second_run):
    proc = repro("diff", smoke_run.runs / "smoke", second_run / "smoke", "--exit-code")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no difference: 17 stages with the same keys and outputs" in proc.stdout
