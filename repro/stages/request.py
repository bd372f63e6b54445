"""The one format in which a stage run is handed to the process that runs it, and answered.

A ``StageRequest`` is what that process needs to rebuild the stage's ``StageContext``. The
runner makes one for every stage it builds; an executor runs it in this process (``local``) or
writes it to ``request.json`` for another (``repro stage-exec`` in a container or SLURM job, a
``repro stage-worker``); a training stage hands it to each of its ranks (``repro.train.launch``,
``spec.json``). Paths are written relative to the runs directory where the reader sees that
directory elsewhere (``/workspace/runs`` in a container, a shared file system on a cluster), and
absolute where it is the same machine (``root=None``: the launcher's ranks).

The answer (``result.json``, ``StageResult``) carries what the stage recorded through ``ctx``
(dependencies, protocol choices, timings) and what the process saw of its machine (host, GPUs,
image); outputs stay in the build directory, where the runner hashes them as it does for an
in-process stage. A launched stage's rank 0 answers with the part only ranks know
(``write_rank_result``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.io import read_json, write_json_atomic
from repro.stages.context import StageContext

REQUEST_FILE = "request.json"
RESULT_FILE = "result.json"
FIELDS = ("experiment", "name", "kind", "params", "inputs", "out", "seed", "profile")  # + scratch


@dataclass(frozen=True)
class StageRequest:
    experiment: str
    name: str  # stage name inside the experiment
    kind: str  # registered stage kind, e.g. "train/vl_adapt"
    params: dict[str, Any]  # resolved params
    inputs: dict[str, Path]  # role -> upstream output directory
    out: Path  # the (empty) directory the stage writes
    seed: int
    profile: str
    scratch: Path | None = None  # per-key directory that survives a crash (training resume)

    @classmethod
    def of(cls, ctx: StageContext) -> StageRequest:
        """The request that rebuilds ``ctx`` elsewhere (a launched stage's ranks)."""
        return cls(experiment=ctx.experiment, name=ctx.name, kind=ctx.kind, params=dict(ctx.params),
                   inputs=dict(ctx.inputs), out=ctx.out, seed=ctx.seed, profile=ctx.profile,
                   scratch=ctx.scratch)

    def context(self, *, out: Path | None = None, lock: dict | None = None,
                shared: dict | None = None) -> StageContext:
        """The stage's context; ``out`` replaces the output directory (a rank other than 0)."""
        return StageContext(experiment=self.experiment, name=self.name, kind=self.kind,
                            params=dict(self.params), inputs=dict(self.inputs),
                            out=out if out is not None else self.out, seed=self.seed, profile=self.profile,
                            lock=lock if lock is not None else {}, scratch=self.scratch,
                            shared=shared if shared is not None else {})

    # ------------------------------------------------------------------ JSON
    def to_json(self, root: Path | None = None) -> dict[str, Any]:
        """Paths relative to ``root`` (the runs directory), or absolute when ``root`` is None."""
        return {"experiment": self.experiment, "name": self.name, "kind": self.kind, "params": self.params,
                "inputs": {role: _rel(p, root) for role, p in sorted(self.inputs.items())},
                "out": _rel(self.out, root), "seed": self.seed, "profile": self.profile,
                "scratch": _rel(self.scratch, root)}

    @classmethod
    def from_json(cls, data: Any, root: Path | None = None, where: str = "stage request") -> StageRequest:
        missing = [k for k in FIELDS if not isinstance(data, dict) or k not in data]
        if missing:
            raise InputError(f"{where}: stage request lacks {', '.join(missing)}")
        base = Path(root) if root is not None else Path()  # an absolute path stays itself
        return cls(experiment=data["experiment"], name=data["name"], kind=data["kind"],
                   params=dict(data["params"]), inputs={role: base / rel for role, rel in data["inputs"].items()},
                   out=base / data["out"], seed=data["seed"], profile=data["profile"],
                   scratch=base / data["scratch"] if data.get("scratch") else None)

    def write(self, path: Path, root: Path | None = None) -> None:
        write_json_atomic(path, self.to_json(root))

    @classmethod
    def read(cls, path: Path, root: Path | None = None) -> StageRequest:
        return cls.from_json(read_json(path), root, str(path))


def _rel(path: Path | None, root: Path | None) -> str | None:
    if path is None:
        return None
    if root is None:
        return str(path)
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        raise InputError(f"{path}: outside the runs directory {root}; a stage run elsewhere "
                         f"cannot see it") from None


# ---------------------------------------------------------------------- the answer
@dataclass
class StageResult:
    dependencies: list[dict]
    protocol: dict[str, Any]
    started: str
    finished: str
    system: dict[str, Any]  # describe_system() of the machine that ran the stage
    execution: dict[str, Any]  # executor, host, GPUs, image (ref, id, digests), container/job id


def write_result(path: Path, result: StageResult) -> None:
    """``result.json``: the result, its ``execution`` named ``observed`` (what the process saw;
    the executor that reads it adds what only it knows)."""
    data = dataclasses.asdict(result)
    data["observed"] = data.pop("execution")
    write_json_atomic(path, data)


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


def rank_result_path(spec: Path) -> Path:
    return spec.with_name(spec.name + ".rank0.json")


def write_rank_result(spec: Path, ctx: StageContext, world_size: int) -> None:
    """What a launched stage's rank 0 recorded through ``ctx``, for the process that launched it."""
    write_json_atomic(rank_result_path(spec), json.loads(json.dumps(
        {"protocol": ctx.protocol_choices, "dependencies": ctx.dependencies, "world_size": world_size},
        sort_keys=True, default=str)))


def read_rank_result(spec: Path) -> dict:
    return read_json(rank_result_path(spec))
