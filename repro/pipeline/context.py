"""What a stage function receives from the runner, and what it may hand back.

A stage is a plain function ``run(ctx: StageContext) -> None`` declared with its kind in
``repro/stages/``. It reads its upstream outputs from ``ctx.inputs`` (directories), writes
everything it produces under ``ctx.out`` (an empty temporary directory), and never hashes, locks
or publishes: the runner does that (provenance is a layer, not stage code).

What a stage wants recorded goes through ``ctx``:
- ``ctx.add_dependency(...)``: an external model/dataset it resolved (id, revision, file digests);
- ``ctx.protocol(name, value)``: a protocol choice the paper does not state (judge, prompt, ...);
- metrics: write ``metrics.json`` into ``ctx.out`` (the runner copies it into the manifest).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageContext:
    experiment: str
    name: str  # stage name inside the experiment
    kind: str  # registered stage kind, e.g. "train/vl_adapt"
    params: dict[str, Any]  # resolved params: recipe defaults < stage params < --set
    inputs: dict[str, Path]  # role -> upstream stage output directory (read-only)
    out: Path  # empty directory; the stage's whole output goes here
    seed: int
    profile: str  # "tiny" | "paper"
    lock: dict[str, Any] = field(default_factory=dict)  # parsed manifest.lock
    # persistent per-stage-key directory that survives a crash (training checkpoints for resume);
    # never part of the published output
    scratch: Path | None = None
    dependencies: list[dict[str, Any]] = field(default_factory=list)
    protocol_choices: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # per-process cache (models loaded once)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("repro.stage"))

    def input(self, role: str) -> Path:
        """The output directory of the upstream stage bound to ``role``; a clear error if unbound."""
        from repro.errors import InputError

        if role not in self.inputs:
            raise InputError(
                f"stage {self.name!r} ({self.kind}) needs input {role!r}; "
                f"declared inputs: {sorted(self.inputs) or 'none'}"
            )
        return self.inputs[role]

    def param(self, key: str, default: Any = ...) -> Any:
        """The param's value; else ``default``; else the default its kind declares
        (``repro/stages/``). Reading a param the kind does not declare is an error: every param
        a stage reads is declared, so the loader can check it before anything runs."""
        from repro.errors import InputError
        from repro.stages import KINDS
        from repro.stages.kind import REQUIRED

        kind = KINDS.get(self.kind)
        declared = kind.param(key) if kind is not None and kind.params is not None else None
        if kind is not None and kind.params is not None and declared is None:
            raise InputError(f"stage {self.name!r} ({self.kind}): reads param {key!r}, which kind "
                             f"{self.kind} does not declare (add it in repro/stages/)")
        if key in self.params and self.params[key] is not None:
            return self.params[key]
        if default is ... and declared is not None and declared.default not in (None, REQUIRED):
            return declared.default
        if default is ...:
            raise InputError(f"stage {self.name!r} ({self.kind}): missing param {key!r}")
        return default

    def add_dependency(self, name: str, *, uri: str | None = None, revision: str | None = None,
                       digest: dict[str, str] | None = None, **annotations: Any) -> None:
        dep: dict[str, Any] = {"name": name}
        if uri:
            dep["uri"] = uri
        if digest:
            dep["digest"] = digest
        ann = dict(annotations)
        if revision:
            ann["revision"] = revision
        if ann:
            dep["annotations"] = ann
        self.dependencies.append(dep)

    def protocol(self, name: str, value: Any) -> None:
        self.protocol_choices[name] = value

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        # replace, never write through: a stage may have hard-linked input files into its output
        path = self.out / "metrics.json"
        tmp = self.out / ".metrics.json.tmp"
        tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)

    def seed_everything(self) -> None:
        """Seed python, numpy and torch from ``ctx.seed``.

        torch is seeded only if already imported (stage modules import it at the top, and the
        runner imports a stage's module before seeding), so data stages stay torch-free.
        """
        import sys

        random.seed(self.seed)
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed(self.seed)
        if "torch" in sys.modules:
            sys.modules["torch"].manual_seed(self.seed)
