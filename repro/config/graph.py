"""Experiment -> DAG: every edge is a stage name; order is topological, ties broken by declaration."""

from __future__ import annotations

from pathlib import Path

from repro.errors import InputError


def topological_order(source: Path, specs: dict) -> list[str]:
    for name, spec in specs.items():
        for role, upstream in spec.inputs.items():
            if upstream not in specs:
                raise InputError(f"{source}: stage {name!r}: input {role!r} names no stage {upstream!r}")
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join(chain[chain.index(name):] + [name])
            raise InputError(f"{source}: stages form a cycle: {cycle}")
        state[name] = 1
        for upstream in specs[name].inputs.values():
            visit(upstream, chain + [name])
        state[name] = 2
        order.append(name)

    for name in specs:
        visit(name, [])
    return order


def downstream(specs: dict, roots: set[str]) -> set[str]:
    """Every stage that depends, directly or not, on one of ``roots`` (roots included)."""
    out = set(roots)
    changed = True
    while changed:
        changed = False
        for name, spec in specs.items():
            if name not in out and any(u in out for u in spec.inputs.values()):
                out.add(name)
                changed = True
    return out
