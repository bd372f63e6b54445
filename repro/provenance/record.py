"""Stage statements (in-toto Statement v1 + SLSA Provenance v1) and experiment manifests.

A stage statement's subjects are the stage's output files (per-file sha256) plus the output
directory (dirHash1). Metadata that may differ between identical runs (timestamps, host,
invocation id) lives only in ``runDetails.metadata`` and in the manifest's ``invocation``;
verification treats those as metadata, never as results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from repro import __version__
from repro.errors import InputError
from repro.provenance.digest import dir_hash, sha256_json

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PREDICATE = "https://slsa.dev/provenance/v1"
TEST_RESULT_PREDICATE = "https://in-toto.io/attestation/test-result/v0.1"
BUILD_TYPE = "https://repro-kit.invalid/stage/v1"  # our own build type; no public URL exists
BUILDER_ID = f"repro-kit@{__version__}"
RECORD_SCHEMA = 1
OUT_PREFIX = "out/"


def subjects(files: dict[str, str]) -> list[dict]:
    subs = [{"name": OUT_PREFIX + rel, "digest": {"sha256": files[rel]}} for rel in sorted(files, key=str.encode)]
    subs.append({"name": OUT_PREFIX, "digest": {"dirHash1": dir_hash(files)}})
    return subs


def subject_files(statement: dict) -> dict[str, str]:
    return {s["name"][len(OUT_PREFIX):]: s["digest"]["sha256"]
            for s in statement["subject"] if s["name"] != OUT_PREFIX}


def output_digest(statement: dict) -> str:
    for s in statement["subject"]:
        if s["name"] == OUT_PREFIX:
            return s["digest"]["dirHash1"]
    raise KeyError("statement has no output directory subject")


def stage_statement(*, experiment: str, stage: str, kind: str, profile: str, params: dict,
                    seed: int, key: str, components: dict, files: dict[str, str],
                    inputs: list[dict], dependencies: list[dict], protocol: dict,
                    code: dict, lock_sha256: str | None, system_sha256: str,
                    started: str, finished: str, invocation: str,
                    execution: dict | None = None) -> dict:
    resolved = list(inputs) + list(dependencies) + [
        {"name": "code:repro", "digest": {"sha256": components["code"]},
         "annotations": {"gitCommit": code.get("commit"), "dirty": code.get("dirty"), "version": __version__}},
        {"name": "environment", "digest": {"sha256": sha256_json(components["environment"])},
         "annotations": components["environment"]},
    ]
    if lock_sha256:
        resolved.append({"name": "manifest.lock", "digest": {"sha256": lock_sha256}})
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects(files),
        "predicateType": SLSA_PREDICATE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"experiment": experiment, "stage": stage, "kind": kind,
                                       "profile": profile, "params": params},
                "internalParameters": {"record_schema": RECORD_SCHEMA, "seed": seed, "cache_key": key,
                                       "key_components": components, "protocol_choices": protocol},
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": builder(execution),
                "metadata": {"invocationId": invocation, "startedOn": started, "finishedOn": finished},
                "byproducts": [{"name": "system", "digest": {"sha256": system_sha256}},
                               {"name": "execution", "annotations": execution or {"executor": "local"}}],
            },
        },
    }


def builder(execution: dict | None) -> dict:
    """SLSA builder: the kit, plus the container image the stage ran in (by image ID), if any."""
    out: dict[str, Any] = {"id": BUILDER_ID}
    image = (execution or {}).get("image")
    if image:
        algo, _, hexdigest = image["id"].partition(":")
        out["builderDependencies"] = [{"name": f"image:{image.get('lock_image')}", "uri": image["ref"],
                                       "digest": {algo: hexdigest},
                                       "annotations": {"repoDigests": image.get("repo_digests", []),
                                                       "labels": image.get("labels", {})}}]
    return out


def execution_record(statement: dict) -> dict:
    for item in statement["predicate"]["runDetails"].get("byproducts", []):
        if item.get("name") == "execution":
            return item.get("annotations") or {}
    return {}


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so the file appears complete or not at all (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        with open(tmp, "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename:
            raise
        # write/fsync errors (ENOSPC) name no file; add it so the one-line message says where
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc.__class__.__name__})") from None


def seal(manifest: dict) -> dict:
    """Add a digest over the manifest body so any edit to it is caught."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return dict(body, manifest_sha256=sha256_json(body))


def seal_ok(manifest: dict) -> bool:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return manifest.get("manifest_sha256") == sha256_json(body)
