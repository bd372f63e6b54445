"""Every statement the kit writes, from every executor's record shape, and the verdict, parse
strictly with the official in-toto-attestation package and pass its validators and the spec's
rules (tests/attestation.py). The old shapes are shown to fail the same checks."""

import hashlib
import json
import os
from pathlib import Path

import pytest
from google.protobuf.json_format import ParseError

from attestation import Invalid, check_descriptor, check_statement
from repro.config.load import load_experiment
from repro.executors.local import probe
from repro.executors.slurm import SlurmExecutor
from repro.pipeline.runner import Runner
from repro.provenance.digest import DIR_HASH, dir_digest
from repro.provenance.purl import docker_purl
from repro.provenance.record import builder, output_digest, read_json
from repro.provenance.verify import verify_manifest, write_verdict
from test_executors import CPU_BASE, LOCK, FakeClient, docker_executor  # noqa: E402  (tests/unit is on sys.path)
from test_executors_slurm import SLURM_SETTINGS

def statements(runs: Path) -> list[dict]:
    found = [read_json(p) for p in sorted((runs / "store").glob("*/statement.json"))]
    assert found
    return found


def image_probe(base: str | None = None) -> dict:
    """What `repro stage-probe` prints in the kit's CPU image: its environment names the base it
    was built on and its Python lock (REPRO_IMAGE, REPRO_PYTHON_LOCK_SHA256)."""
    found = probe()
    found["environment"].update(image=base or f"{CPU_BASE['ref']}@{CPU_BASE['digest']}",
                                python_lock_sha256=LOCK["python_locks"]["requirements/cpu.txt"]["sha256"])
    return found


def _slurm(runtime: str, image: str, tmp_path: Path, base: str | None = None) -> SlurmExecutor:
    """A slurm executor whose sbatch runs the job's `repro stage-exec` in this process (the
    test/* stage kinds exist only here) and whose probe answers as the image would."""
    conf = dict(SLURM_SETTINGS, runtime=runtime, images={"train": image, "eval": image}, hf_cache=None)
    ex = SlurmExecutor(conf, "tiny", run=lambda cmd, **kw: _Done(json.dumps(image_probe(base))))

    def submit(script):
        from repro.cli import main

        main(["stage-exec", "--runs-dir", str(script.parents[3]), str(script.parent / "request.json")])
        return "4242", 0, ""

    ex._submit = submit
    return ex


class _Done:
    def __init__(self, stdout):
        self.returncode, self.stdout, self.stderr = 0, stdout, ""


def _executors(tmp_path):
    sif = tmp_path / "repro-smoke.sif"
    sif.write_bytes(b"a sif image")
    return {
        "local": None,
        "docker": docker_executor(FakeClient()),
        "slurm-host": _slurm("host", "unused", tmp_path),
        "slurm-apptainer-sif": _slurm("apptainer", str(sif), tmp_path),
        "slurm-apptainer-uri": _slurm("apptainer", "docker://ghcr.io/org/repro-smoke:dev", tmp_path),
        # enroot/pyxis URIs: the executor records image id None (configs/executors.yaml)
        "slurm-enroot-tag": _slurm("enroot", "nvcr.io#nvidia/cuda:13.0.1-devel-ubuntu24.04", tmp_path),
        "slurm-enroot-digest": _slurm("enroot", "docker://nvcr.io#nvidia/cuda@sha256:" + "7d" * 32, tmp_path),
        "slurm-foreign-base": _slurm("apptainer", str(sif), tmp_path, base="debian:12@sha256:" + "00" * 32),
    }


@pytest.mark.parametrize("name", ["local", "docker", "slurm-host", "slurm-apptainer-sif",
                                  "slurm-apptainer-uri", "slurm-enroot-tag", "slurm-enroot-digest",
                                  "slurm-foreign-base"])
def test_every_executor_writes_statements_a_verifier_accepts(experiments, tmp_path, name):
    executor = _executors(tmp_path)[name]
    runs = tmp_path / "runs"
    exp = load_experiment("chain", "tiny", (), root=experiments)
    manifest = Runner(runs, echo=lambda _: None, executor=executor).run(exp)
    for statement in statements(runs):
        check_statement(statement)
        record_builder = statement["predicate"]["runDetails"]["builder"]
        executor_name = name.split("-")[0]
        assert record_builder["id"] == f"https://repro-kit.invalid/builder/{executor_name}/v1"
    v, _ = verify_manifest(manifest)  # no AttributeError on an image without an ID
    if name == "slurm-foreign-base":  # the image's own environment names another base
        assert any(c.level == "fail" and "built on base sha256:0000" in c.detail for c in v.checks)
    else:  # images built on manifest.lock's pins: PASSED, not WARNED
        assert v.verdict() == "PASSED", [c for c in v.checks if c.level != "pass"]
    check_statement(read_json(write_verdict(manifest, v, strict=False)))
    deps = statements(runs)[0]["predicate"]["runDetails"]["builder"].get("builderDependencies", [])
    if name == "slurm-apptainer-sif":
        assert deps[0]["digest"] == {"sha256": hashlib.sha256(b"a sif image").hexdigest()}
        assert "uri" not in deps[0]
    elif name == "slurm-enroot-tag":
        assert "digest" not in deps[0]
        assert deps[0]["uri"] == "pkg:docker/nvidia/cuda@13.0.1-devel-ubuntu24.04?repository_url=nvcr.io"
    elif name == "slurm-enroot-digest":
        assert deps[0]["uri"] == "pkg:docker/nvidia/cuda@sha256:" + "7d" * 32 + "?repository_url=nvcr.io"


def test_builder_without_an_image_id_is_a_uri_only_descriptor():
    record = {"executor": "slurm", "image": {"ref": "nvcr.io#nvidia/pytorch:24.01-py3", "id": None,
                                             "lock_image": "train"}}
    dep = builder(record)["builderDependencies"][0]
    assert dep == {"name": "image:train", "uri": "pkg:docker/nvidia/pytorch@24.01-py3?repository_url=nvcr.io",
                   "annotations": {"ref": "nvcr.io#nvidia/pytorch:24.01-py3", "repoDigests": [], "labels": {}}}
    check_descriptor(dep, "builderDependencies[0]")


@pytest.mark.parametrize("ref, image_id, purl", [
    ("repro-smoke:dev", "sha256:" + "ab" * 32, "pkg:docker/repro-smoke@sha256:" + "ab" * 32),
    ("python:3.11-slim-bookworm", None, "pkg:docker/python@3.11-slim-bookworm"),
    ("nvidia/cuda:13.0.1-devel-ubuntu24.04@sha256:" + "7d" * 32, None, "pkg:docker/nvidia/cuda@sha256:" + "7d" * 32),
    ("nvcr.io/nvidia/cuda:13.0.1-runtime-ubuntu24.04", "sha256:" + "c3" * 32,
     "pkg:docker/nvidia/cuda@sha256:" + "c3" * 32 + "?repository_url=nvcr.io"),
    ("localhost:5000/team/eval:1", None, "pkg:docker/team/eval@1?repository_url=localhost:5000"),
    ("docker://user@nvcr.io#nvidia/cuda:13.0.1", None, "pkg:docker/nvidia/cuda@13.0.1?repository_url=nvcr.io"),
])
def test_image_refs_become_canonical_docker_purls(ref, image_id, purl):
    assert docker_purl(ref, image_id) == purl
    check_descriptor({"uri": purl}, ref)  # parses with packageurl-python, canonical form


def test_old_record_shapes_fail_these_checks(experiments, tmp_path):
    # each of the issue's findings, as the kit wrote it before: the checks must reject it
    runs = tmp_path / "runs"
    manifest = Runner(runs, echo=lambda _: None).run(load_experiment("chain", "tiny", (), root=experiments))
    good = statements(runs)[0]

    def broken(edit):
        st = json.loads(json.dumps(good))
        edit(st)
        return st

    run_details = lambda st: st["predicate"]["runDetails"]  # noqa: E731
    bad = {
        "execution without uri/digest/content": broken(lambda st: run_details(st)["byproducts"][1].pop("digest")),
        "builder.id not a URI": broken(lambda st: run_details(st)["builder"].update(id="repro-kit@0.1.0")),
        "dirHash1": broken(lambda st: st["subject"][-1].update(digest={"dirHash1": "ab" * 32})),
        "raw docker ref as uri": broken(lambda st: run_details(st)["builder"].update(builderDependencies=[
            {"name": "image:cpu", "uri": "repro-smoke:dev", "digest": {"sha256": "ab" * 32}}])),
        "unknown field": broken(lambda st: st["subject"][0].update(value=1)),
        "short digest": broken(lambda st: st["subject"][0].update(digest={"sha256": "abc"})),
    }
    for what, statement in bad.items():
        with pytest.raises((Invalid, ParseError)):
            check_statement(statement)
        print(what, "rejected")
    v, _ = verify_manifest(manifest)
    verdict = read_json(write_verdict(manifest, v, strict=False))
    verdict["predicate"]["configuration"] = [{"name": "strict", "value": False}]  # the old verdict
    with pytest.raises(ParseError, match="value"):
        check_statement(verdict)


def test_old_manifests_with_dirhash1_still_verify(experiments, tmp_path):
    from repro.provenance.digest import sha256_file
    from repro.provenance.record import seal, write_json_atomic

    runs = tmp_path / "runs"
    manifest = Runner(runs, echo=lambda _: None).run(load_experiment("chain", "tiny", (), root=experiments))
    data = json.loads(manifest.read_text())
    for name, entry in data["stages"].items():
        path = runs / entry["statement"]
        text = path.read_text().replace(f'"{DIR_HASH}"', '"dirHash1"')
        path.write_text(text)
        assert '"dirHash1"' in text and output_digest(json.loads(text)) == entry["output_digest"]
        entry["statement_sha256"] = sha256_file(path)
    write_json_atomic(manifest, seal({k: v for k, v in data.items() if k != "manifest_sha256"}))
    v, _ = verify_manifest(manifest)
    assert v.verdict() == "PASSED", [c for c in v.checks if c.level != "pass"]
    assert dir_digest({"dirHash1": "x"}) == "x" == dir_digest({"dirHash": "x"})
    # and a rerun serves them from the store (their keys did not change)
    log = []
    Runner(runs, echo=log.append).run(load_experiment("chain", "tiny", (), root=experiments))
    assert all(" cached " in line for line in log if line.startswith("["))
    assert os.environ.get("REPRO_SIGNING_KEY") is None
