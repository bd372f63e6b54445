"""Run an experiment: for each stage in order, key it, serve it from the store or build it.

A stage runs in a fresh temporary directory; only when it returns are its outputs hashed, its
statement written and the whole entry renamed into ``store/<key>`` (see ``store.py``). A stage
that fails or is interrupted leaves nothing behind but its scratch (resumable training state).

Trust: a stored entry is served only when ``Store.check`` re-reads it whole and finds it agrees
with its statement and key; and right before a stage runs, each of its inputs is re-read and
checked against the digests recorded when it was published. The digest cache never decides.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from repro.config.schema import Experiment, StageSpec
from repro.errors import InputError
from repro.executors.base import Executor, StageJob, image_role
from repro.executors.request import make_request, now
from repro.pipeline import cache
from repro.pipeline.diskfull import writing
from repro.pipeline.store import RESERVED, Store
from repro.provenance import pins
from repro.provenance.digest import DIR_HASH, digest_tree, sha256_file, sha256_json
from repro.provenance.record import output_digest, seal, stage_statement, write_json_atomic


@dataclass
class Outcome:
    name: str
    kind: str
    key: str
    status: str  # "cached" | "ran"
    seconds: float
    note: str = ""


def key_components(executor: Executor, spec: StageSpec, inputs: dict[str, str]) -> tuple[dict, dict]:
    """A stage's key components, with the code and environment of where ``executor`` will run
    it (a container's own, probed there); and that probe."""
    where = executor.probe(image_role(spec.kind))
    return cache.key_components(spec.kind, spec.params, spec.seed, inputs, code=where["code"],
                                environment=where["environment"]), where


class Runner:
    def __init__(self, runs_dir: Path, echo: Callable[[str], None] = print,
                 executor: Executor | None = None):
        from repro.executors.local import LocalExecutor

        self.store = Store(runs_dir)
        self.echo = echo
        self.executor = executor or LocalExecutor()
        self.shared: dict = {}  # models etc. loaded once per process, shared across stages
        self._keys: dict[str, str] = {}  # stage name -> store key, in the experiment being run
        self._system: tuple[dict, str] | None = None
        pins.load_lock()  # a malformed manifest.lock fails here, before any stage
        lock_file = pins.lock_path()
        self.lock_sha256 = sha256_file(lock_file) if lock_file.exists() else None

    def close(self) -> None:
        """Release what stages loaded into the shared cache (a vLLM engine left open can keep
        the process from exiting)."""
        for value in list(self.shared.values()):
            close = getattr(value, "close", None)
            if callable(close):
                close()
        self.shared.clear()
        self.executor.close()

    def system(self) -> tuple[dict, str]:
        if self._system is None:
            from repro.executors.local import machine

            system = machine()[0]  # described once per process (stages run here share it)
            self._system = (system, self.store.save_system(system))
        return self._system

    def run(self, exp: Experiment, overrides: tuple[str, ...] = ()) -> Path:
        """Run ``exp``; ``overrides``: the ``--set`` items it was loaded with (recorded, so
        ``repro verify`` can resolve the same declaration again)."""
        if exp.name in RESERVED:
            raise InputError(f"experiment name {exp.name!r} is reserved for the runs directory")
        with writing("the runs directory", self.store.root):
            return self._run(exp, tuple(overrides))

    def _run(self, exp: Experiment, overrides: tuple[str, ...]) -> Path:
        removed = self.store.clean_stale_builds()
        if removed:
            self.echo(f"removed {removed} half-built stage(s) left by an interrupted run")
        started, invocation = now(), uuid.uuid4().hex
        self._keys = {}
        digests: dict[str, str] = {}
        entries: dict[str, dict] = {}
        total = len(exp.stages)
        for i, spec in enumerate(exp.stages.values(), 1):
            outcome, statement = self._stage(exp, spec, digests, invocation)
            digests[spec.name] = output_digest(statement)
            entries[spec.name] = self._entry(spec, outcome.key, statement)
            with writing(f"the link to stage {spec.name!r}", self.store.root / exp.name):
                self.store.link_stage(exp.name, spec.name, outcome.key)
            tail = f" ({outcome.note})" if outcome.note else ""
            self.echo(f"[{i}/{total}] {spec.name:<24} {outcome.status:<6} {outcome.seconds:6.1f}s  "
                      f"{spec.kind}{tail}")
        return self._write_manifest(exp, entries, started, invocation, overrides)

    def _stage(self, exp: Experiment, spec: StageSpec, digests: dict[str, str], invocation: str):
        inputs = {role: digests[up] for role, up in spec.inputs.items()}
        components, where = key_components(self.executor, spec, inputs)
        if where.get("lock_sha256") != self.lock_sha256:
            # the stage would check its pins against another lock than the one its record names
            raise InputError(f"stage {spec.name!r}: {self.executor.name} executor: the manifest.lock "
                             f"where it runs (sha256 {where.get('lock_sha256')}) differs from this "
                             f"checkout's ({self.lock_sha256}); rebuild the image from this checkout")
        key = cache.stage_key(components)
        statement, why = self.store.check(key)  # every byte re-read: never the digest cache
        if statement is not None:
            self._keys[spec.name] = key
            return Outcome(spec.name, spec.kind, key, "cached", 0.0), statement
        note = f"rebuilt: {why}" if why else ""
        t0 = time.perf_counter()
        statement = self._build(exp, spec, key, components, invocation, where["git"])
        return Outcome(spec.name, spec.kind, key, "ran", time.perf_counter() - t0, note), statement

    def _build(self, exp: Experiment, spec: StageSpec, key: str, components: dict, invocation: str,
               git: dict) -> dict:
        self._check_inputs(spec, components)
        build = self.store.new_build_dir(key)
        try:
            out = build / "out"
            out.mkdir(exist_ok=True)
            scratch = self.store.scratch(key)
            request = make_request(
                experiment=exp.name, name=spec.name, kind=spec.kind, params=dict(spec.params),
                inputs={role: self.store.out(self._key_of(up)) for role, up in spec.inputs.items()},
                out=out, seed=spec.seed, profile=exp.profile, scratch=scratch, runs=self.store.root)
            with writing(f"stage {spec.name!r} ({spec.kind}): its outputs or checkpoints", out, scratch):
                result = self.executor.run(StageJob(request=request, build=build, runs=self.store.root,
                                                    key=key, echo=self.echo, shared=self.shared))
            files = _output_files(spec.name, out)
            with writing(f"stage {spec.name!r}: its statement and store entry", build):
                statement = stage_statement(
                    experiment=exp.name, stage=spec.name, kind=spec.kind, profile=exp.profile,
                    params=spec.params, seed=spec.seed, key=key, components=components, files=files,
                    inputs=self._input_records(spec, components), dependencies=result.dependencies,
                    protocol=result.protocol, code=git, lock_sha256=self.lock_sha256,
                    system_sha256=self.store.save_system(result.system), started=result.started,
                    finished=result.finished, invocation=invocation, execution=result.execution)
                write_json_atomic(build / "statement.json", statement)
                self.store.publish(build, key)
            self._keys[spec.name] = key
            return statement
        finally:
            if build.exists():
                shutil.rmtree(build, ignore_errors=True)

    def _input_records(self, spec: StageSpec, components: dict) -> list[dict]:
        return [{"name": f"input:{role}", "uri": f"repro-stage:{up}",
                 "digest": {DIR_HASH: components["inputs"][role]},
                 "annotations": {"stage": up, "cache_key": self._key_of(up)}}
                for role, up in sorted(spec.inputs.items())]

    def _check_inputs(self, spec: StageSpec, components: dict) -> None:
        """Re-read each input in full, right before the stage consumes it: its bytes must still
        be the ones its statement recorded when it was published (and the key was made from)."""
        for role, up in sorted(spec.inputs.items()):
            key = self._key_of(up)
            statement, why = self.store.check(key)
            if statement is not None and output_digest(statement) == components["inputs"][role]:
                continue
            raise InputError(f"stage {spec.name!r}: input {role!r} ({self.store.entry(key)}, stage "
                             f"{up!r}) changed after it was checked in this run: {why or 'other outputs'}; "
                             "run the same command again to rebuild it")

    def _key_of(self, stage: str) -> str:
        return self._keys[stage]

    def _entry(self, spec: StageSpec, key: str, statement: dict) -> dict:
        self._keys[spec.name] = key
        rel = self.store.statement_path(key).relative_to(self.store.root).as_posix()
        return {"kind": spec.kind, "key": key, "statement": rel,
                "statement_sha256": sha256_file(self.store.statement_path(key)),
                "output": self.store.out(key).relative_to(self.store.root).as_posix(),
                "output_digest": output_digest(statement), "inputs": dict(spec.inputs),
                "external": [d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
                             if not d["name"].startswith(("input:", "code:", "environment", "manifest.lock"))],
                "protocol_choices": statement["predicate"]["buildDefinition"]["internalParameters"]["protocol_choices"]}

    def _write_manifest(self, exp: Experiment, entries: dict, started: str, invocation: str,
                        overrides: tuple[str, ...]) -> Path:
        from repro.provenance.record import read_json

        results = {}
        for name, entry in entries.items():
            metrics = self.store.root / entry["output"] / "metrics.json"
            if metrics.exists():
                results[name] = read_json(metrics)
        system, system_sha = self.system()
        manifest = seal({
            "schema": 1, "type": "repro-experiment-manifest", "experiment": exp.name,
            "profile": exp.profile, "declaration": exp.resolved, "stages": entries,
            # how to resolve the declaration again (``repro verify`` compares the two)
            "declared": {"source": exp.source, "overrides": list(overrides),
                         "sha256": sha256_json(exp.resolved)},
            "results": results, "result_stages": list(exp.results),
            "system": system, "system_sha256": system_sha,
            "lock": {"sha256": self.lock_sha256},
            "invocation": {"id": invocation, "startedOn": started, "finishedOn": now()},
        })
        path = self.store.root / exp.name / "manifest.json"
        with writing(f"the manifest of {exp.name!r}", path):
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in path.parent.glob(".manifest.json.*.tmp"):  # left by a run killed mid-write
                stale.unlink(missing_ok=True)
            # a verdict (and its signature) vouches for one manifest: gone before that is replaced
            for verdict in ("verification.json", "verification.dsse.json"):
                (path.parent / verdict).unlink(missing_ok=True)
            write_json_atomic(path, manifest)
        return path


def _output_files(stage: str, out: Path) -> dict[str, str]:
    """The digests of what a stage wrote; only plain files and folders may be published."""
    from repro.provenance.digest import NotRegularFile

    try:
        return digest_tree(out)
    except NotRegularFile as exc:
        rel = os.path.relpath(exc.path, out)
        raise InputError(f"stage {stage!r} wrote {exc.kind} {rel}; outputs must be plain files") from None
