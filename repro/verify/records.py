"""``repro verify``: re-read every byte an experiment's manifest vouches for, and check it.

Checks, each named in the report: the manifest's shape and seal; the manifest against its
experiment's declaration (``declaration.py``); each stage statement's own digest, its shape and
its agreement with its cache key; every output file re-hashed from disk (never from the digest
cache), with missing and added files caught and anything but plain files refused; the chain
(each stage's inputs equal its producers' outputs); external inputs against ``manifest.lock``
(unpinned -> warning); results equal the stage metrics they came from; partial evaluations
(warning); metrics against reference values where any exist. The verdict is an in-toto
test-result statement written next to the manifest, bound to the manifest's sha256.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from repro.errors import InputError
from repro.io import read_json, sha256_file, write_json_atomic
from repro.pipeline.cache import key_problem
from repro.provenance import pins
from repro.provenance.digest import digest_tree, dir_digest, dir_hash
from repro.provenance.pins.image_builds import IMAGE_BUILDS, STAND_IN_LABEL
from repro.provenance.record import (STATEMENT_TYPE, TEST_RESULT_PREDICATE, execution_record, output_digest,
                                     seal_ok, statement_problem, subject_files, verdict_configuration)
from repro.report.references import check_references
from repro.verify.declaration import check_declaration


@dataclass
class Check:
    name: str
    level: str  # "pass" | "warn" | "fail"
    detail: str = ""


class Verification:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def ok(self, name: str, detail: str = "") -> None:
        self.checks.append(Check(name, "pass", detail))

    def warn(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, "warn", detail))

    def fail(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, "fail", detail))

    def verdict(self, strict: bool = False) -> str:
        levels = {c.level for c in self.checks}
        if "fail" in levels or (strict and "warn" in levels):
            return "FAILED"
        return "WARNED" if "warn" in levels else "PASSED"


def find_manifests(path: Path) -> list[Path]:
    if path.is_file() and path.name == "manifest.json":
        return [path]
    if (path / "manifest.json").is_file():
        return [path / "manifest.json"]
    found = sorted(path.glob("*/manifest.json"))
    if not found:
        raise InputError(f"{path}: no experiment manifest found (expected {path}/manifest.json "
                         f"or a runs directory holding <experiment>/manifest.json)")
    return found


def verify_manifest(manifest_path: Path, strict: bool = False) -> tuple[Verification, dict]:
    v = Verification()
    runs = manifest_path.parent.parent
    try:
        manifest = read_json(manifest_path)
    except InputError as exc:
        v.fail(f"manifest {manifest_path}", str(exc))
        return v, {}
    why = manifest_problem(manifest)
    if why:
        v.fail(f"manifest {manifest_path}", f"malformed: {why}")
        return v, {}
    if not seal_ok(manifest):
        v.fail(f"manifest {manifest_path}", "content does not match its manifest_sha256 (edited)")
    else:
        v.ok(f"manifest {manifest_path.name}")
    _check_system(v, runs, manifest)
    lock = pins.load_lock()
    statements = {}
    for name, entry in manifest["stages"].items():
        statement = _check_stage(v, runs, name, entry)
        if statement is not None:
            statements[name] = statement
            _check_chain(v, name, statement, manifest["stages"])
            _check_external(v, name, statement, lock)
            _check_image(v, name, statement, lock)
    check_declaration(v, manifest, statements)
    _check_results(v, runs, manifest)
    _check_lock_file(v, manifest)
    return v, manifest


_ENTRY_FIELDS = {"kind": str, "key": str, "statement": str, "statement_sha256": str, "output": str,
                 "output_digest": str, "inputs": dict, "external": list, "protocol_choices": dict}
_MANIFEST_FIELDS = {"experiment": str, "profile": str, "declaration": dict, "declared": dict,
                    "stages": dict, "results": dict, "result_stages": list, "system": dict,
                    "system_sha256": str, "lock": dict}


def _field_problem(obj: dict, fields: dict, where: str) -> str | None:
    for field, kind in fields.items():
        if not isinstance(obj.get(field), kind):
            return f"{where}key {field!r}: missing or not a {kind.__name__}"
    return None


def manifest_problem(manifest) -> str | None:
    """What makes ``manifest`` unreadable for the checks below (None if nothing): every field
    with its type, and each stage's files exactly at ``store/<key>/`` (never elsewhere)."""
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    problem = _field_problem(manifest, _MANIFEST_FIELDS, "")
    if problem:
        return problem
    declared = manifest["declared"]
    if not isinstance(declared.get("source"), str) or not isinstance(declared.get("overrides"), list) \
            or not isinstance(declared.get("sha256"), str):
        return "key 'declared': expected source, overrides and sha256"
    for name, entry in manifest["stages"].items():
        if not isinstance(entry, dict):
            return f"stage {name!r}: not an object"
        problem = _field_problem(entry, _ENTRY_FIELDS, f"stage {name!r}: ")
        if problem:
            return problem
        key = entry["key"]
        if entry["statement"] != f"store/{key}/statement.json" or entry["output"] != f"store/{key}/out":
            return f"stage {name!r}: statement and output must be store/<key>/statement.json and store/<key>/out"
    if not all(isinstance(r, dict) for r in manifest["results"].values()):
        return "key 'results': every result must be an object"
    return None


def _read(path: Path):
    try:
        return read_json(path)
    except InputError:
        return None


def _check_system(v: Verification, runs: Path, manifest: dict) -> None:
    path = runs / "systems" / f"{manifest.get('system_sha256')}.json"
    if not path.exists():
        v.fail(f"file {path}", "system description missing")
    elif _read(path) != manifest.get("system"):
        v.fail(f"file {path}", "system description differs from the manifest's")
    else:
        v.ok("system description")


def _check_stage(v: Verification, runs: Path, name: str, entry: dict) -> dict | None:
    """The stage's statement when it is the manifest's, well-formed and agrees with its key
    (outputs are checked and reported either way); None otherwise."""
    st_path = runs / entry["statement"]
    entry_dir = st_path.parent
    if os.path.lexists(entry_dir) and not stat.S_ISDIR(os.lstat(entry_dir).st_mode):
        v.fail(f"file {entry_dir}", f"stage {name}: store entry is not a plain directory (a symbolic link?)")
        return None
    try:
        digest = sha256_file(st_path, follow=False)
    except FileNotFoundError:
        v.fail(f"stage {name}", f"statement missing: {st_path}")
        return None
    except (InputError, OSError) as exc:
        v.fail(f"file {st_path}", f"stage {name}: statement unreadable: {exc}")
        return None
    if digest != entry["statement_sha256"]:
        v.fail(f"file {st_path}", f"stage {name}: statement digest differs from the manifest's (edited)")
        return None
    try:
        statement = read_json(st_path, follow=False)
    except InputError as exc:
        v.fail(f"file {st_path}", f"stage {name}: statement unreadable: {exc}")
        return None
    why = statement_problem(statement) or key_problem(statement, entry["key"])
    if why:
        v.fail(f"file {st_path}", f"stage {name}: statement {why}")
        return None
    _check_outputs(v, runs / entry["output"], name, entry, statement)
    return statement


def _check_outputs(v: Verification, out: Path, name: str, entry: dict, statement: dict) -> None:
    expected = subject_files(statement)
    try:
        found = digest_tree(out) if os.path.lexists(out) else {}
    except (InputError, OSError) as exc:
        v.fail(f"file {getattr(exc, 'path', None) or out}", f"stage {name}: {exc}")
        return
    bad = False
    for rel in sorted(set(found) | set(expected), key=str.encode):
        if rel not in found:
            v.fail(f"file {out / rel}", f"stage {name}: output file missing")
        elif rel not in expected:
            v.fail(f"file {out / rel}", f"stage {name}: file not in the statement (added)")
        elif found[rel] != expected[rel]:
            v.fail(f"file {out / rel}", f"stage {name}: sha256 differs from the statement (modified)")
        else:
            continue
        bad = True
    if not bad:
        if dir_hash(found) != output_digest(statement) or output_digest(statement) != entry["output_digest"]:
            v.fail(f"stage {name}", "directory digest mismatch")
        else:
            v.ok(f"stage {name}", f"{len(found)} files")


def _check_chain(v: Verification, name: str, statement: dict, entries: dict) -> None:
    for dep in statement["predicate"]["buildDefinition"]["resolvedDependencies"]:
        if not dep["name"].startswith("input:"):
            continue
        producer = dep.get("annotations", {}).get("stage")
        if producer not in entries:
            v.fail(f"stage {name}", f"input {dep['name']} comes from unknown stage {producer!r}")
        elif dir_digest(dep["digest"]) != entries[producer]["output_digest"]:
            v.fail(f"stage {name}", f"{dep['name']} does not match the recorded outputs of {producer!r}")


def _check_external(v: Verification, name: str, statement: dict, lock: dict) -> None:
    for dep in statement["predicate"]["buildDefinition"]["resolvedDependencies"]:
        ann = dep.get("annotations") or {}
        if "lock_key" not in ann:
            continue
        try:
            entry = pins.find_pin(lock, ann.get("lock_kind", "models"), ann["lock_key"])
        except InputError as exc:
            v.fail(f"stage {name}", f"{dep['name']}: {exc}")
            continue
        if ann.get("lock_kind") == "packages":  # a registry file is pinned by its sha256, not a revision
            if (dep.get("digest") or {}).get("sha256") != entry["sha256"]:
                v.fail(f"stage {name}", f"{dep['name']}: sha256 {(dep.get('digest') or {}).get('sha256')} "
                       f"!= locked {entry['sha256']}")
        elif entry.get("revision") is None:
            v.warn(f"stage {name}", f"{dep['name']}: input is unpinned in manifest.lock")
        elif ann.get("revision") != entry["revision"]:
            v.fail(f"stage {name}", f"{dep['name']}: revision {ann.get('revision')} != locked {entry['revision']}")


def _check_image(v: Verification, name: str, statement: dict, lock: dict) -> None:
    """Did the stage run in an image built from the pins of manifest.lock? A paper-profile
    stage run on the host is a deviation (warned); an image built from other pins fails."""
    execution = execution_record(statement)
    image = execution.get("image")
    profile = statement["predicate"]["buildDefinition"]["externalParameters"].get("profile")
    if not image:
        if profile == "paper":
            v.warn(f"stage {name}", f"ran on the host (executor {execution.get('executor', 'local')}), "
                   "not in an image pinned in manifest.lock")
        return
    pinned = (lock.get("images") or {}).get(image.get("lock_image") or "")
    if pinned is None:
        v.fail(f"stage {name}", f"ran in {image.get('ref')}, built for images.{image.get('lock_image')}, "
               "which manifest.lock does not have")
        return
    where = f"ran in {image.get('ref')} ({image.get('id')})"
    facts = _image_facts(image, statement)
    if not _check_base(v, name, where, facts, pinned, f"images.{image['lock_image']}"):
        return
    req = IMAGE_BUILDS.get(image["lock_image"], (None, None, None))[1]
    locked = ((lock.get("python_locks") or {}).get(req) or {}).get("sha256")
    if locked and facts["python_lock"] != locked:
        v.fail(f"stage {name}", f"{where}, with Python lock {facts['python_lock']}; "
               f"manifest.lock has {req} at {locked}")


def _image_facts(image: dict, statement: dict) -> dict:
    """The image's base and Python lock: from its labels and environment as inspected from
    outside (docker executor); for a SLURM image file or URI, whose labels are not read, from
    what the image's own environment says (REPRO_IMAGE, REPRO_PYTHON_LOCK_SHA256), probed in
    it for the stage's cache key."""
    labels = image.get("labels") or {}
    if labels or "python_lock_sha256" in image:
        return {"base": labels.get("org.opencontainers.image.base.digest"),
                "base_name": labels.get("org.opencontainers.image.base.name"),
                "stand_in_for": labels.get(STAND_IN_LABEL), "python_lock": image.get("python_lock_sha256")}
    env = statement["predicate"]["buildDefinition"]["internalParameters"]["key_components"].get("environment") or {}
    base_name, _, base = (env.get("image") or "").partition("@")
    return {"base": base or None, "base_name": base_name or None, "stand_in_for": None,
            "python_lock": env.get("python_lock_sha256")}


def _check_base(v: Verification, name: str, where: str, facts: dict, pinned: dict, lock_name: str) -> bool:
    """The image's base against the pin; False when that fails. Warned, not failed: an
    unpinned image, and an offline build on a local stand-in base, which says so in a label
    (scripts/docker/build-offline.sh)."""
    base = facts["base"]
    if pinned.get("digest") is None:
        v.warn(f"stage {name}", f"{where}; {lock_name} is unpinned in manifest.lock, so its base "
               f"{base} cannot be checked")
    elif base == pinned["digest"]:
        pass
    elif facts["stand_in_for"] == f"{pinned['ref']}@{pinned['digest']}":
        v.warn(f"stage {name}", f"{where}, built offline on the local stand-in base "
               f"{facts['base_name']}@{base}, not on the pinned {pinned['ref']}@{pinned['digest']} "
               f"({lock_name})")
    else:
        v.fail(f"stage {name}", f"{where}, built on base {base}; manifest.lock pins {lock_name} "
               f"at {pinned['digest']}")
        return False
    return True


def _check_results(v: Verification, runs: Path, manifest: dict) -> None:
    consistent = True
    for name, result in manifest["results"].items():
        entry = manifest["stages"].get(name)
        metrics = runs / entry["output"] / "metrics.json" if entry else None
        if metrics is None or not metrics.is_file() or _read(metrics) != result:
            v.fail(f"result {name}", "differs from the stage's metrics.json")
            consistent = False
            continue
        if result.get("partial"):
            v.warn(f"result {name}", f"partial evaluation (n={result.get('n')} of {result.get('n_total')}): not a reproduction")
    if not consistent:
        return  # reference values are compared with results that came from their stages only
    try:
        for level, name, detail in check_references(manifest):
            getattr(v, level)(name, detail)
    except (TypeError, AttributeError, KeyError) as exc:
        v.fail("references", f"a result's metrics are malformed ({type(exc).__name__}: {exc})")


def _check_lock_file(v: Verification, manifest: dict) -> None:
    path = pins.lock_path()
    recorded = (manifest.get("lock") or {}).get("sha256")
    current = sha256_file(path) if path.exists() else None
    if recorded != current:
        v.warn("manifest.lock", "changed since this run (inputs were checked against the current lock)")


def verdict_statement(manifest_path: Path, v: Verification, strict: bool) -> dict:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": manifest_path.name, "digest": {"sha256": sha256_file(manifest_path)}}],
        "predicateType": TEST_RESULT_PREDICATE,
        "predicate": {
            "result": v.verdict(strict),
            "configuration": verdict_configuration(strict, _lock_sha256()),
            "passedTests": [c.name for c in v.checks if c.level == "pass"],
            "warnedTests": [f"{c.name}: {c.detail}" for c in v.checks if c.level == "warn"],
            "failedTests": [f"{c.name}: {c.detail}" for c in v.checks if c.level == "fail"],
        },
    }


def _lock_sha256() -> str | None:
    path = pins.lock_path()
    return sha256_file(path) if path.exists() else None


def write_verdict(manifest_path: Path, v: Verification, strict: bool) -> Path:
    out = manifest_path.parent / "verification.json"
    write_json_atomic(out, verdict_statement(manifest_path, v, strict))
    return out


def format_report(manifest_path: Path, v: Verification, strict: bool) -> str:
    lines = [f"verify {manifest_path}"]
    for c in v.checks:
        if c.level != "pass":
            lines.append(f"  {c.level.upper()} {c.name}: {c.detail}")
    n_pass = sum(c.level == "pass" for c in v.checks)
    lines.append(f"  {n_pass} checks passed, {sum(c.level == 'warn' for c in v.checks)} warned, "
                 f"{sum(c.level == 'fail' for c in v.checks)} failed -> {v.verdict(strict)}")
    return "\n".join(lines)

