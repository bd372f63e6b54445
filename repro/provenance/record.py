"""Stage statements (in-toto Statement v1 + SLSA Provenance v1) and experiment manifests.

A stage statement's subjects are the stage's output files (per-file sha256) plus the output
directory (dirHash). Metadata that may differ between identical runs (timestamps, host,
invocation id) lives only in ``runDetails.metadata`` and in the manifest's ``invocation``;
verification treats those as metadata, never as results.

Every ResourceDescriptor written here carries a ``uri``, a ``digest`` or both, as
in-toto/attestation spec/v1/resource_descriptor.md requires; ``builder.id`` is a URI, as SLSA
Provenance v1 types it (slsa-framework/slsa spec/build-provenance.md, "Builder").
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from repro import __version__
from repro.errors import InputError
from repro.provenance.digest import DIR_HASH, dir_digest, dir_hash, read_regular, sha256_json
from repro.provenance.purl import image_uri, is_image_file, split_image_ref

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PREDICATE = "https://slsa.dev/provenance/v1"
TEST_RESULT_PREDICATE = "https://in-toto.io/attestation/test-result/v0.1"
# Our own type URIs. No public URL documents them (docs/provenance.md does); `.invalid` (RFC 2606)
# can never resolve to someone else's page.
BUILD_TYPE = "https://repro-kit.invalid/stage/v1"
VERIFIER_URI = "https://repro-kit.invalid/verify/v1"
# SLSA: each mode of a build platform with different security properties has its own builder.id;
# a stage run in this process, in a container or in a SLURM job are three such modes.
BUILDER_URI = "https://repro-kit.invalid/builder/{executor}/v1"
PACKAGE = "repro-vl-safety"
RECORD_SCHEMA = 1
OUT_PREFIX = "out/"


def subjects(files: dict[str, str]) -> list[dict]:
    subs = [{"name": OUT_PREFIX + rel, "digest": {"sha256": files[rel]}} for rel in sorted(files, key=str.encode)]
    subs.append({"name": OUT_PREFIX, "digest": {DIR_HASH: dir_hash(files)}})
    return subs


def subject_files(statement: dict) -> dict[str, str]:
    return {s["name"][len(OUT_PREFIX):]: s["digest"]["sha256"]
            for s in statement["subject"] if s["name"] != OUT_PREFIX}


def output_digest(statement: dict) -> str:
    for s in statement["subject"]:
        if s["name"] == OUT_PREFIX:
            return dir_digest(s["digest"])
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
                               execution_descriptor(execution or {"executor": "local"})],
            },
        },
    }


def builder(execution: dict | None) -> dict:
    """SLSA builder: the kit in the executor's mode, plus the image the stage ran in, if any."""
    execution = execution or {"executor": "local"}
    out: dict[str, Any] = {"id": BUILDER_URI.format(executor=execution.get("executor", "local")),
                           "version": {PACKAGE: __version__}}
    image = execution.get("image")
    if image:
        out["builderDependencies"] = [image_descriptor(image)]
    return out


def image_descriptor(image: dict) -> dict:
    """The image as a ResourceDescriptor: its ID as the digest (a docker image ID, or the sha256
    of a .sif/.sqsh file) and a purl. SLURM images given as registry URIs have no ID (None):
    the purl then names the tag, or the digest the reference pins."""
    rd: dict[str, Any] = {"name": f"image:{image.get('lock_image')}"}
    image_id = image.get("id")
    pinned = image_id or _ref_digest(image.get("ref"))
    if pinned:
        algo, _, hexdigest = pinned.partition(":")
        rd["digest"] = {algo: hexdigest}
    uri = image_uri(image.get("ref"), pinned)
    if uri:
        rd["uri"] = uri
    rd["annotations"] = {"ref": image.get("ref"), "repoDigests": image.get("repo_digests", []),
                         "labels": image.get("labels", {})}
    return rd


def _ref_digest(ref: str | None) -> str | None:
    if not ref or is_image_file(ref):
        return None
    return split_image_ref(ref)[3]


def execution_descriptor(execution: dict) -> dict:
    """The ``execution`` byproduct: the record in ``annotations``, and as its digest the sha256
    of the record's canonical JSON (sorted keys, no spaces), which anyone can recompute."""
    return {"name": "execution", "digest": {"sha256": sha256_json(execution)},
            "mediaType": "application/json", "annotations": execution}


def execution_record(statement: dict) -> dict:
    for item in statement["predicate"]["runDetails"].get("byproducts", []):
        if item.get("name") == "execution":
            return item.get("annotations") or {}
    return {}


def verdict_configuration(strict: bool, lock_sha256: str | None) -> list[dict]:
    """The test-result ``configuration``: how `repro verify` ran and the pins it checked against,
    each a ResourceDescriptor (uri or digest)."""
    conf: list[dict] = [{"name": "repro verify", "uri": VERIFIER_URI,
                         "annotations": {"strict": strict, "version": __version__}}]
    if lock_sha256:
        conf.append({"name": "manifest.lock", "digest": {"sha256": lock_sha256}})
    return conf


def write_json_atomic(path: Path, obj: Any, indent: int | None = 2) -> None:
    """Write JSON so the file appears complete or not at all (temp file, fsync, rename)."""
    # one temp name per process and thread: the concurrent scheduler's threads may write the same
    # record (the system description) at once, and each rename must find its own file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    data = json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + "\n"
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


def read_json(path: Path, follow: bool = True) -> Any:
    """Parse a JSON record; a one-line ``InputError`` naming the file when it is missing, not a
    regular file (a FIFO never blocks: ``read_regular``), not UTF-8, not JSON or nested too
    deeply for the parser. ``follow=False`` refuses a symlink (store entries)."""
    try:
        data = read_regular(path, follow)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise InputError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.__class__.__name__})") from None


def _at(obj: Any, path: str, kind: type) -> Any:
    """``obj[a][b]...`` for ``path`` "a.b...", or ValueError naming the first missing/wrong key."""
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise ValueError(f"{path}: missing")
        obj = obj[part]
    if not isinstance(obj, kind) or isinstance(obj, bool) and kind is not bool:
        raise ValueError(f"{path}: expected {kind.__name__}, got {type(obj).__name__}")
    return obj


def statement_problem(statement: Any) -> str | None:
    """Why ``statement`` is not a well-formed stage statement (None when it is): every field the
    runner and ``verify`` read is there with its type, and the output directory digest is the
    dirHash of the file digests."""
    if not isinstance(statement, dict):
        return f"malformed (a JSON {type(statement).__name__}, not an object)"
    if statement.get("_type") != STATEMENT_TYPE:
        return "not an in-toto Statement v1"
    if statement.get("predicateType") != SLSA_PREDICATE:
        return "predicateType is not SLSA Provenance v1"
    try:
        for field, kind in (("internalParameters.key_components", dict), ("internalParameters.cache_key", str),
                            ("internalParameters.protocol_choices", dict), ("externalParameters.kind", str),
                            ("externalParameters.params", dict), ("resolvedDependencies", list)):
            _at(statement, f"predicate.buildDefinition.{field}", kind)
        for field, kind in (("inputs", dict), ("params", dict), ("kind", str), ("code", str)):
            _at(statement, f"predicate.buildDefinition.internalParameters.key_components.{field}", kind)
        _at(statement, "predicate.runDetails", dict)
        deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        if not all(isinstance(d, dict) and isinstance(d.get("name"), str) for d in deps):
            return "resolvedDependencies: an entry without a name"
        subjects_ = _at(statement, "subject", list)
    except ValueError as exc:
        return f"malformed ({exc})"
    files, dirs = {}, []
    for s in subjects_:
        digest = s.get("digest") if isinstance(s, dict) else None
        name = s.get("name") if isinstance(s, dict) else None
        if not isinstance(name, str) or not isinstance(digest, dict) or not name.startswith(OUT_PREFIX):
            return "malformed (subject: an entry without an out/ name and a digest)"
        if name == OUT_PREFIX:
            dirs.append(dir_digest(digest))
        elif isinstance(digest.get("sha256"), str):
            files[name[len(OUT_PREFIX):]] = digest["sha256"]
        else:
            return f"malformed (subject {name}: no sha256)"
    if len(dirs) != 1 or dirs[0] != dir_hash(files):
        return "its output directory digest is not the digest of its files (edited)"
    return None


def seal(manifest: dict) -> dict:
    """Add a digest over the manifest body so any edit to it is caught."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return dict(body, manifest_sha256=sha256_json(body))


def seal_ok(manifest: dict) -> bool:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return manifest.get("manifest_sha256") == sha256_json(body)
