"""Which ready stages start now: the one policy that ``repro run --jobs/--gpus`` follows and
that ``repro plan`` simulates for its wall-clock estimate.

- A stage is ready when every stage it reads from has finished.
- Ready stages are tried in priority order: the longest remaining path to the end of the graph
  first (its "bottom level", in the cost model's hours), ties in declaration order. Where no
  durations are known (the tiny profile) that is declaration order.
- A stage takes its GPUs (``Resources``) from a ``GpuPool``, all or none. A GPU stage that does
  not fit blocks the GPU stages behind it (no backfill past it), so a 4-GPU training stage is
  not starved by one-GPU evaluations that keep refilling the node; stages without GPUs only
  count against the job slots (``--jobs``).
"""

from __future__ import annotations

from repro.executors.resources import GpuPool, Resources


def bottom_levels(specs: dict, hours: dict[str, float]) -> dict[str, float]:
    """Per stage: its own hours plus the longest chain of hours downstream of it."""
    below: dict[str, list[str]] = {name: [] for name in specs}
    for name, spec in specs.items():
        for up in spec.inputs.values():
            below[up].append(name)
    level: dict[str, float] = {}
    for name in reversed(list(specs)):  # specs are in topological order
        level[name] = hours.get(name, 0.0) + max((level[d] for d in below[name]), default=0.0)
    return level


def priority_order(specs: dict, hours: dict[str, float]) -> list[str]:
    level = bottom_levels(specs, hours)
    index = {name: i for i, name in enumerate(specs)}
    return sorted(specs, key=lambda n: (-level[n], index[n]))


def pick(ready: list[str], resources: dict[str, Resources], pool: GpuPool, slots: int,
         prefer: dict[str, list[int]] | None = None) -> list[tuple[str, list]]:
    """Start what fits, in the order of ``ready`` (already in priority order): [(stage, GPUs
    taken)]. ``slots``: how many more stages may run at once. Takes the GPUs from ``pool``;
    ``prefer``: per stage, GPUs to give it first where free (the worker there holds its model)."""
    started: list[tuple[str, list]] = []
    gpu_blocked = False
    for name in ready:
        if len(started) >= slots:
            break
        res = resources[name]
        if res.gpus_per_node and gpu_blocked:
            continue
        taken = pool.take(res, (prefer or {}).get(name, ()))
        if taken is None:
            gpu_blocked = True
            continue
        started.append((name, taken))
    return started
