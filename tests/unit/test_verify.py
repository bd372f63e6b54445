"""repro verify: every flipped byte, added or deleted file and edited record is caught and named."""

import json
import random

import pytest

from repro.config.load import load_experiment
from repro.pipeline.runner import Runner
from repro.provenance.verify import find_manifests, verify_manifest, write_verdict


@pytest.fixture
def done_run(experiments, tmp_path):
    runs = tmp_path / "runs"
    exp = load_experiment("chain", "tiny", root=experiments)
    manifest = Runner(runs, echo=lambda _: None).run(exp)
    return runs, manifest


def failures(manifest):
    v, _ = verify_manifest(manifest)
    return v.verdict(), [f"{c.name}: {c.detail}" for c in v.checks if c.level == "fail"]


def test_clean_run_passes_and_writes_verdict(done_run):
    runs, manifest = done_run
    v, _ = verify_manifest(manifest)
    assert v.verdict() == "PASSED", [c for c in v.checks if c.level != "pass"]
    verdict = json.loads(write_verdict(manifest, v, False).read_text())
    assert verdict["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1"
    assert verdict["predicate"]["result"] == "PASSED"
    assert find_manifests(runs) == [manifest]


def _flip(path, rng):
    data = bytearray(path.read_bytes())
    i = rng.randrange(len(data))
    data[i] ^= 1 << rng.randrange(8)
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def test_any_flipped_byte_fails_naming_the_file(done_run):
    runs, manifest = done_run
    rng = random.Random(1234)
    files = sorted(p for p in (runs / "store").rglob("*") if p.is_file()) + [manifest]
    files += sorted((runs / "systems").glob("*.json"))
    originals = {p: p.read_bytes() for p in files}
    for trial in range(40):
        target = rng.choice(files)
        _flip(target, rng)
        verdict, fails = failures(manifest)
        assert verdict == "FAILED", (trial, target)
        named = str(target) if target != manifest else "manifest"
        assert any(named in f or target.name in f for f in fails), (target, fails)
        target.write_bytes(originals[target])
    assert failures(manifest)[0] == "PASSED"


def test_added_and_deleted_files_are_caught(done_run):
    runs, manifest = done_run
    out = runs / "chain" / "stages" / "a"
    (out / "extra.txt").write_text("x")
    assert any("extra.txt" in f and "added" in f for f in failures(manifest)[1])
    (out / "extra.txt").unlink()
    (out / "sub" / "len.json").unlink()
    assert any("len.json" in f and "missing" in f for f in failures(manifest)[1])


def test_broken_chain_is_caught(done_run):
    runs, manifest = done_run
    data = json.loads(manifest.read_text())
    data["stages"]["a"]["output_digest"] = "0" * 64
    from repro.provenance.record import seal

    manifest.write_text(json.dumps(seal(data)))
    verdict, fails = failures(manifest)
    assert verdict == "FAILED" and any("does not match the recorded outputs of 'a'" in f for f in fails)


def test_partial_result_warns(experiments, tmp_path):
    sets = ("c.params.partial=true",)
    exp = load_experiment("chain", "tiny", sets, root=experiments)
    manifest = Runner(tmp_path / "runs", echo=lambda _: None).run(exp, sets)
    v, _ = verify_manifest(manifest)
    assert v.verdict() == "WARNED"
    assert v.verdict(strict=True) == "FAILED"


def test_no_token_in_records(done_run):
    runs, _ = done_run
    for p in runs.rglob("*"):
        if p.is_file():
            assert b"hf_FAKEtoken" not in p.read_bytes(), p


@pytest.mark.parametrize("name, profile", [("table2", "tiny"), ("all", "paper")])
def test_a_recorded_declaration_with_tables_rebuilds_to_the_same_stages(name, profile):
    """Where the experiment file cannot be resolved again, verify rebuilds the experiment from the
    manifest's declaration: derived stages (tables, their eval~ and benchmark data stages) are
    derived again, not refused as declared twice, and a table's rows keep their order although
    the manifest sorts every key. An include's stages no result needs are not expected."""
    from repro.provenance.declaration import _trimmed, rebuild

    exp = load_experiment(name, profile)
    manifest = {"declaration": json.loads(json.dumps(exp.resolved, sort_keys=True)), "profile": profile,
                "declared": {"overrides": []}, "stages": dict.fromkeys(exp.stages, {})}
    again = _trimmed(rebuild(manifest), manifest)
    assert list(again.results) == list(exp.results)
    assert sorted(again.stages) == sorted(exp.stages)
    assert [n for n in exp.stages if again.stages[n] != exp.stages[n]] == []
