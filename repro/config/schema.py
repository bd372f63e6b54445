"""Typed experiment declarations (frozen dataclasses), the keys a declaration may use, and the
rules names and seeds must meet. Param rules live with each stage kind (``repro/stages/``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from repro.errors import InputError

PROFILES = ("tiny", "paper", "rehearsal")
# Profiles whose stages run on CPUs: no GPU is requested, estimated or checked for. The rehearsal
# is the paper profile's declarations at reduced sizes (experiments/_base/rehearsal.yaml); every
# other paper-only path (findings over the paper's rows, the merge grid, figure 2's schedule) it
# takes as the paper profile does.
CPU_PROFILES = frozenset({"tiny", "rehearsal"})
EXPERIMENT_KEYS = {"schema", "name", "description", "paper", "include", "seed", "recipes", "stages",
                   "results", "tables", "suites", "judges", "benchmark_data"}
STAGE_KEYS = {"kind", "params", "inputs", "recipe", "seed", "description", "sweep", "gather"}
SCHEMA_VERSION = 1
SEED_MAX = 2**32 - 1  # numpy's and torch's seeds must fit 32 bits

# A declared name: experiments, stages, input roles, suites. Derived stage names join declared
# names with "~" (repro/config/tables.py), and a sweep adds "@<value>" (repro/config/sweep.py).
# None may hold "/", "." (--set paths), ".." or spaces: names become directory names and CLI args.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_VARIANT = r"@[A-Za-z0-9_+-](?:[A-Za-z0-9_.+-]*[A-Za-z0-9_+-])?"
STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:~[A-Za-z0-9][A-Za-z0-9_-]*)*(?:" + _VARIANT + r")?$")


def check_name(where: str, what: str, name: Any, pattern: re.Pattern = NAME) -> str:
    if not isinstance(name, str) or not pattern.match(name) or ".." in name:
        raise InputError(f"{where}: {what} {name!r}: expected letters, digits, '_' and '-' "
                         "(no '/', '.', '..', '~', '@' or spaces)")
    return name


def check_seed(where: str, seed: Any) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= SEED_MAX:
        raise InputError(f"{where}: key 'seed': expected an integer in [0, {SEED_MAX}], got {seed!r}")
    return seed


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # role -> upstream stage name
    seed: int = 0
    description: str | None = None


@dataclass(frozen=True)
class Row:
    """One declared row of a table: a model stage scored on a list of benchmarks."""
    label: str
    model: str
    benchmarks: tuple[str, ...]
    stages: dict[str, str]  # benchmark -> evaluation stage (swept rows: the "@<value>" variants' base)
    over: dict[str, list] | None = None  # an evaluation param swept for this row (checkpoints)


@dataclass(frozen=True)
class Table:
    name: str  # the report stage's name
    title: str
    rows: tuple[Row, ...]
    rejudged: tuple[str, ...] = ()  # second_judge: the re-judging stages (repro/config/judges.py)
    agreement: str | None = None  # second_judge: the report/agreement stage, a result

    def row(self, label: str) -> Row:
        found = next((r for r in self.rows if r.label == label), None)
        if found is None:
            raise InputError(f"table {self.name}: no row {label!r} (rows: {', '.join(r.label for r in self.rows)})")
        return found


@dataclass(frozen=True)
class Experiment:
    name: str
    profile: str
    source: str  # the experiment file, for messages
    description: str
    stages: dict[str, StageSpec]  # topological order
    seed: int
    resolved: dict[str, Any]  # the fully resolved declaration, stored with the run
    results: tuple[str, ...] = ()
    tables: dict[str, Table] = field(default_factory=dict)
