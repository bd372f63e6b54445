"""Stage cache keys: what a result depends on, and nothing else (never names or paths).

key = sha256(canonical JSON of the key components). Components: the stage kind, the code
fingerprint of the ``repro`` package, the resolved params, the seed, the input digests (each
upstream output's dirHash) and the environment fingerprint (interpreter, package versions,
container image, python lock). Output digests never enter the key. ``diff_components`` names
what changed between two keys, for ``repro status``.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path
from typing import Any

from repro.provenance.digest import dir_digest, sha256_json
from repro.provenance.system import environment_fingerprint

KEY_SCHEMA = 1
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
# No stage kind is uncacheable today: every stage is a pure function of its key components.
UNCACHEABLE_KINDS: frozenset[str] = frozenset()
# Params that change how a stage reports progress, never what it computes: left out of the key.
# (``launch`` stays in: it sets the world size, which changes the effective batch.)
EXECUTION_ONLY_PARAMS: frozenset[str] = frozenset({"log_every"})


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over every source and data file of the package (coarse: any edit re-runs all)."""
    h = hashlib.sha256()
    files = sorted(p for p in PACKAGE_ROOT.rglob("*")
                   if p.is_file() and p.suffix in {".py", ".yaml", ".yml", ".json", ".txt"}
                   and "__pycache__" not in p.parts)
    for p in files:
        h.update(p.relative_to(PACKAGE_ROOT).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def git_revision() -> dict[str, Any]:
    root = PACKAGE_ROOT.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "repro"],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty if commit else None}


@functools.lru_cache(maxsize=1)
def _env() -> dict:
    return environment_fingerprint()


def key_components(kind: str, params: dict, seed: int, input_digests: dict[str, str], *,
                   code: str | None = None, environment: dict | None = None) -> dict:
    """``code``/``environment``: those of where the stage runs (an executor's probe); this
    process's by default."""
    return {
        "key_schema": KEY_SCHEMA,
        "kind": kind,
        "code": code or code_fingerprint(),
        "params": {k: v for k, v in params.items() if k not in EXECUTION_ONLY_PARAMS},
        "seed": seed,
        "inputs": dict(sorted(input_digests.items())),
        "environment": environment if environment is not None else _env(),
    }


def stage_key(components: dict) -> str:
    return sha256_json(components)


def key_problem(statement: dict, key: str) -> str | None:
    """Why a well-formed statement (``record.statement_problem``) does not belong under ``key``
    (None when it does): its recorded key components must hash to ``key``, and what it says it
    was built from (kind, params, seed, inputs, code, environment) must be those components."""
    build = statement["predicate"]["buildDefinition"]
    internal, external = build["internalParameters"], build["externalParameters"]
    comps = internal["key_components"]
    if internal["cache_key"] != key:
        return f"records cache key {internal['cache_key']!r}, not its store key"
    if stage_key(comps) != key:
        return "its key components do not hash to its store key (edited)"
    params = {k: v for k, v in external["params"].items() if k not in EXECUTION_ONLY_PARAMS}
    deps = {d["name"]: d.get("digest") for d in build["resolvedDependencies"]}
    inputs = {name[len("input:"):]: dir_digest(digest or {})
              for name, digest in deps.items() if name.startswith("input:")}
    checks = {"kind": (external["kind"], comps["kind"]), "params": (params, comps["params"]),
              "seed": (internal.get("seed"), comps.get("seed")), "inputs": (inputs, comps["inputs"]),
              "code": ((deps.get("code:repro") or {}).get("sha256"), comps["code"]),
              "environment": ((deps.get("environment") or {}).get("sha256"),
                              sha256_json(comps.get("environment")))}
    wrong = [name for name, (said, keyed) in checks.items() if said != keyed]
    return f"its {', '.join(wrong)} differ from its key components (edited)" if wrong else None


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def diff_components(old: dict, new: dict) -> list[str]:
    """Human-readable reasons, e.g. ``param learning_rate: 0.001 -> 0.002``."""
    reasons = []
    labels = {"params": "param", "inputs": "input", "environment": "environment", "seed": "seed",
              "code": "code", "kind": "kind", "key_schema": "key schema"}
    for part, label in labels.items():
        a, b = {}, {}
        _flatten("", old.get(part), a)
        _flatten("", new.get(part), b)
        for k in sorted(set(a) | set(b)):
            if a.get(k, "<unset>") != b.get(k, "<unset>"):
                name = f"{label} {k}".strip() if k else label
                if part in ("code", "inputs"):
                    reasons.append(f"{name} changed")
                else:
                    reasons.append(f"{name}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}")
    return reasons
