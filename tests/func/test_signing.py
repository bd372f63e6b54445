"""Signed runs through the ``repro`` command: a tiny run whose last stage merges two tiny LLaVA
checkpoints, signed with a key from ``repro keys generate`` given by environment variable;
``repro verify --trusted-key`` on it; a statement re-written with recomputed digests; the merged
checkpoint verified by model-signing's own verifier; every statement, envelope payload and
verdict, of this run and of the unsigned tiny reproduction, checked with the official
in-toto-attestation package (tests/attestation.py)."""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from attestation import check_statement, envelope_statement
from conftest import copy_runs, repro, repro_env

PASSPHRASE = "correct horse battery staple 42"
VISION = ("{image_size: 32, patch_size: 8, hidden_size: 64, intermediate_size: 128, "
          "num_hidden_layers: 2, num_attention_heads: 2}")
LLM = "{hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 128, vocab_size: 512}"
EXPERIMENT = f"""schema: 1
description: two tiny LLaVA checkpoints merged (signing tests)
stages:
  corpus: {{kind: data/synthetic, params: {{dataset: aligned_chat}}}}
  llm_a: {{kind: models/tiny_llm, inputs: {{corpus: corpus}}, params: {LLM}}}
  llm_b: {{kind: models/tiny_llm, inputs: {{corpus: corpus}}, seed: 1, params: {LLM}}}
  vlm_a: {{kind: models/assemble_llava, inputs: {{llm: llm_a}}, params: {{vision_config: {VISION}}}}}
  vlm_b: {{kind: models/assemble_llava, inputs: {{llm: llm_b}}, params: {{vision_config: {VISION}}}}}
  merged: {{kind: merge/linear, params: {{weight: 0.5}}, inputs: {{a: vlm_a, b: vlm_b}}}}
results: []
"""


@dataclass
class SignedRun:
    runs: Path
    key: Path
    pub: Path
    output: str

    def stage(self, name: str) -> Path:
        """store/<key>/ of a stage (its statement, envelope, model.sig and out/)."""
        manifest = json.loads((self.runs / "signed" / "manifest.json").read_text())
        return (self.runs / manifest["stages"][name]["statement"]).parent


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> SignedRun:
    base = tmp_path_factory.mktemp("signed")
    (base / "experiments").mkdir()
    (base / "experiments" / "signed.yaml").write_text(EXPERIMENT)
    env = repro_env(REPRO_EXPERIMENTS_DIR=str(base / "experiments"), REPRO_SIGNING_KEY_PASSWORD=PASSPHRASE)
    proc = repro("keys", "generate", "--out", base / "keys", env=env)
    assert proc.returncode == 0, proc.stderr
    key, pub = base / "keys" / "repro-signing.key", base / "keys" / "repro-signing.pub"
    assert key.stat().st_mode & 0o777 == 0o600 and b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    env["REPRO_SIGNING_KEY"] = str(key)  # the key by environment variable
    proc = repro("run", "signed", "--profile", "tiny", "--runs-dir", base / "runs", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return SignedRun(base / "runs", key, pub, proc.stdout + proc.stderr)


def _verify(runs: Path, *args) -> tuple[int, str]:
    proc = repro("verify", runs / "signed", *args)
    return proc.returncode, proc.stdout + proc.stderr


def test_signed_run_verifies_with_the_trusted_key(signed):
    code, out = _verify(signed.runs, "--trusted-key", signed.pub)
    assert code == 0 and out.strip().splitlines()[-1] == "verdict: PASSED", out
    assert "signatures: 7 of 7 files signed by a trusted key" in out
    for stage in ("llm_a", "llm_b", "vlm_a", "vlm_b", "merged"):  # model checkpoints: a model-signing bundle
        assert (signed.stage(stage) / "model.sig").is_file(), stage
    assert not (signed.stage("corpus") / "model.sig").exists()
    # without a trusted key: verifiable as before, the signatures said to be unchecked
    code, out = _verify(signed.runs)
    assert code == 0 and "signatures: 7 of 7 files signed, not checked (no --trusted-key)" in out
    # another key: every file named
    other = signed.pub.parent / "other"
    assert repro("keys", "generate", "--out", other).returncode == 0
    code, out = _verify(signed.runs, "--trusted-key", other / "repro-signing.pub")
    assert code == 1 and out.count("no valid signature by a trusted key") == 7, out


def test_private_key_and_passphrase_are_written_nowhere(signed):
    body = b"".join(signed.key.read_bytes().splitlines()[1:-1])
    needles = [body[:48], body[-48:], PASSPHRASE.encode()]
    for path in signed.runs.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert not any(n in data for n in needles), path
    assert not any(n.decode() in signed.output for n in needles)


def test_rewritten_statement_with_recomputed_digests_fails_naming_it(signed, tmp_path):
    from repro.provenance.digest import digest_tree
    from repro.io import sha256_file
    from repro.provenance.record import seal, subjects
    from repro.io import write_json_atomic

    runs = copy_runs(signed.runs, tmp_path / "runs")
    manifest_path = runs / "signed" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["stages"]["merged"]  # the last stage: no consumer's recorded input to betray it
    statement_path = runs / entry["statement"]
    out = runs / entry["output"]
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(dict(config, note="edited after the run")))  # a changed output ...
    statement = json.loads(statement_path.read_text())
    statement["subject"] = subjects(digest_tree(out))  # ... with its digests recomputed everywhere
    write_json_atomic(statement_path, statement)
    entry["statement_sha256"] = sha256_file(statement_path)
    entry["output_digest"] = statement["subject"][-1]["digest"]["dirHash"]
    write_json_atomic(manifest_path, seal({k: v for k, v in manifest.items() if k != "manifest_sha256"}))
    # unkeyed digests cannot tell ...
    code, out_text = _verify(runs)
    assert code == 0 and out_text.strip().splitlines()[-1] == "verdict: PASSED", out_text
    # ... the signature can: the re-written statement and the re-sealed manifest are named
    code, out_text = _verify(runs, "--trusted-key", signed.pub)
    assert code == 1 and out_text.strip().splitlines()[-1] == "verdict: FAILED"
    failed = [line.strip() for line in out_text.splitlines() if line.strip().startswith("FAIL file")]
    assert failed[0] == (f"FAIL file {statement_path}: signature: re-written after signing "
                         "(the signed payload differs from the file)"), out_text
    assert any(str(manifest_path) in line for line in failed)
    # an envelope removed: named as unsigned
    (statement_path.parent / "statement.dsse.json").unlink()
    code, out_text = _verify(runs, "--trusted-key", signed.pub)
    assert f"FAIL file {statement_path}: signature: unsigned (no DSSE envelope)" in out_text


def test_merged_checkpoint_verifies_with_model_signing(signed, tmp_path):
    from model_signing import verifying

    entry = signed.stage("merged")
    model = tmp_path / "merged"
    shutil.copytree(entry / "out", model)  # as someone who downloaded the checkpoint and its signature
    verifying.Config().use_elliptic_key_verifier(public_key=signed.pub).verify(model, entry / "model.sig")
    weights = next(model.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="Hash mismatch"):
        verifying.Config().use_elliptic_key_verifier(public_key=signed.pub).verify(model, entry / "model.sig")
    # through repro verify: a changed weight fails the statement and the model signature
    runs = copy_runs(signed.runs, tmp_path / "runs")
    target = next((runs / "signed" / "stages" / "merged").resolve().glob("*.safetensors"))
    target.write_bytes(bytes(data))
    code, out = _verify(runs, "--trusted-key", signed.pub)
    assert code == 1 and "model.sig: signature: " in out and "does not verify with model-signing" in out


def test_every_statement_envelope_and_verdict_is_a_valid_attestation(signed, tmp_path):
    runs = copy_runs(signed.runs, tmp_path / "runs")
    code, out = _verify(runs, "--trusted-key", signed.pub, "--signing-key", signed.key)
    assert code == 2 and "an encrypted key needs $REPRO_SIGNING_KEY_PASSWORD" in out  # no passphrase here
    env = repro_env(REPRO_SIGNING_KEY_PASSWORD=PASSPHRASE)
    proc = repro("verify", runs / "signed", "--trusted-key", signed.pub, "--signing-key", signed.key, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checked = 0
    for path in sorted((runs / "store").glob("*/statement.json")):
        check_statement(json.loads(path.read_text()))
        envelope = json.loads((path.parent / "statement.dsse.json").read_text())
        assert envelope_statement(envelope) == json.loads(path.read_text())
        check_statement(envelope_statement(envelope))
        checked += 2
    for path in sorted((runs / "store").glob("*/model.sig")):
        bundle = json.loads(path.read_text())  # model-signing's own in-toto statement
        check_statement(envelope_statement(bundle["dsseEnvelope"]), known_predicate=False)
        checked += 1
    verdict = json.loads((runs / "signed" / "verification.json").read_text())
    check_statement(verdict)
    assert verdict["predicate"]["result"] == "PASSED"
    signed_verdict = json.loads((runs / "signed" / "verification.dsse.json").read_text())
    assert envelope_statement(signed_verdict) == verdict
    manifest_envelope = json.loads((runs / "signed" / "manifest.dsse.json").read_text())
    assert base64.b64decode(manifest_envelope["payload"]) == (runs / "signed" / "manifest.json").read_bytes()
    assert checked == 6 * 2 + 5  # five model checkpoints: two LLMs, two LLaVAs, the merge
    # a later verdict written without a key leaves no envelope over an earlier one
    assert _verify(runs)[0] == 0 and not (runs / "signed" / "verification.dsse.json").exists()


def test_every_statement_and_the_verdict_of_the_smoke_run_are_valid_attestations(smoke_run):
    # the unsigned tiny reproduction (17 stages, every stage kind of the slice): read only
    from repro.verify.records import verdict_statement, verify_manifest

    statements = sorted((smoke_run.runs / "store").glob("*/statement.json"))
    assert len(statements) == 17
    for path in statements:
        check_statement(json.loads(path.read_text()))
    manifest = smoke_run.runs / "smoke" / "manifest.json"
    v, _ = verify_manifest(manifest)
    verdict = verdict_statement(manifest, v, strict=False)
    check_statement(json.loads(json.dumps(verdict)))
    assert verdict["predicate"]["result"] == "PASSED"
