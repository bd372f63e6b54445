"""A stage run handed to another process: what it needs to rebuild its ``StageContext``, and
what it hands back.

Paths in a request are relative to the runs directory, because the process that runs the stage
may see that directory elsewhere (``/workspace/runs`` in a container, a shared file system on a
cluster). The result carries what the stage recorded through ``ctx`` (dependencies, protocol
choices, timings) and what the process saw of its machine (host, GPUs, image); outputs stay in
the build directory, where the runner hashes them as it does for an in-process stage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from repro.errors import InputError

REQUEST_FILE = "request.json"
RESULT_FILE = "result.json"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _rel(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise InputError(f"{path}: outside the runs directory {root}; a stage run elsewhere "
                         f"cannot see it") from None


def make_request(*, experiment: str, name: str, kind: str, params: dict, inputs: dict[str, Path],
                 out: Path, seed: int, profile: str, scratch: Path | None, runs: Path) -> dict:
    return {"experiment": experiment, "name": name, "kind": kind, "params": params,
            "inputs": {role: _rel(p, runs) for role, p in sorted(inputs.items())},
            "out": _rel(out, runs), "seed": seed, "profile": profile,
            "scratch": _rel(scratch, runs)}


def write_json(path: Path, data: Any) -> None:
    from repro.provenance.record import write_json_atomic

    write_json_atomic(path, data)


def read_request(path: Path) -> dict:
    from repro.provenance.record import read_json

    request = read_json(path)
    missing = [k for k in ("experiment", "name", "kind", "params", "inputs", "out", "seed", "profile")
               if k not in request]
    if missing:
        raise InputError(f"{path}: stage request lacks {', '.join(missing)}")
    return request


def take_result(build: Path, cleanup: tuple[str, ...] = ()) -> dict:
    """Read what ``repro stage-exec`` wrote into ``build`` and remove the exchange files (they
    are not outputs). Its ``observed`` part says what the process saw of its machine."""
    result_path = build / RESULT_FILE
    result = json.loads(result_path.read_text())
    for name in (RESULT_FILE, REQUEST_FILE, *cleanup):
        (build / name).unlink(missing_ok=True)
    return result


def observed_fields(observed: dict) -> dict:
    """The part of an execution record that only the process running the stage can know."""
    return {"gpus": observed["gpus"], "cuda_visible_devices": observed.get("cuda_visible_devices"),
            "image_env": observed.get("image_env"), "torch_threads": observed.get("torch_threads")}
