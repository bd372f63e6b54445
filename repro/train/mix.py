"""Several training datasets as one (MTL: LLaVA-Instruct ∪ VLGuard in one SFT run).

Sources are the inputs ``data``, ``data_2``, ``data_3``, ... in that order, or the roles listed in
the param ``data_roles``. Mixing rule [choice, recorded]: concatenate the sources' records in
role order, then shuffle the union once with ``random.Random(seed)``; the Trainer's own seeded
sampler then reorders per epoch as for one dataset. With several sources each record id is
prefixed ``<role>:`` so ids stay unique (the data-order digest names every sample).
``split``: one split name for every source, or a mapping role -> split.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from repro.data import open_dataset
from repro.errors import InputError

MIXING_RULE = "concatenate sources in role order, then shuffle once with random.Random(seed)"
_EXTRA_ROLE = re.compile(r"^data_(\d+)$")


def data_roles(ctx) -> list[str]:
    """The data input roles of a stage: ``data_roles`` if given, else data, data_2, data_3, ..."""
    listed = ctx.param("data_roles", None)
    if listed is not None:
        if (not isinstance(listed, list) or not listed
                or not all(isinstance(r, str) for r in listed) or len(set(listed)) != len(listed)):
            raise InputError(f"stage {ctx.name!r}: params: data_roles: {listed!r}; expected a list "
                             "of distinct input role names")
        for role in listed:
            ctx.input(role)  # an unbound role is a clear error
        return list(listed)
    extra = sorted((int(m.group(1)), role) for role in ctx.inputs if (m := _EXTRA_ROLE.match(role)))
    roles = ["data"] + [role for _, role in extra]
    ctx.input("data")
    return roles


def _split_for(ctx, role: str) -> str | None:
    split = ctx.param("split", None)
    if isinstance(split, dict):
        return split.get(role)
    if split is not None and not isinstance(split, str):
        raise InputError(f"stage {ctx.name!r}: params: split: {split!r}; expected a name or a mapping")
    return split


def load_mixture(ctx, load: Callable[[Path, str | None], list]) -> tuple[list, dict[str, Any]]:
    """Records of every data source (read with ``load(dir, split)``), mixed by ``MIXING_RULE``.

    Returns the records and a record of the mixture: per-source dataset name, split and count.
    One source: its records unchanged, in dataset order (the single-dataset behaviour).
    """
    roles = data_roles(ctx)
    sources: dict[str, dict[str, Any]] = {}
    union: list = []
    for role in roles:
        root = ctx.input(role)
        split = _split_for(ctx, role)
        records = load(root, split)
        sources[role] = {"dataset": open_dataset(root).name, "split": split, "records": len(records)}
        if len(roles) > 1:
            records = [replace(r, id=f"{role}:{r.id}") for r in records]
        union.extend(records)
    mixture: dict[str, Any] = {"sources": sources}
    if len(roles) > 1:
        random.Random(ctx.seed).shuffle(union)
        mixture["rule"] = MIXING_RULE
    return union, mixture
