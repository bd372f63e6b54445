"""Wall-clock time of an experiment on given hardware, from the GPU-hour cost model
(``estimates.py``): each stage takes ``GPU-hours / its GPUs`` hours on the GPUs its kind
asks for (``repro/executors/resources.py``), and the stages are placed on ``nodes`` x ``gpus``
GPUs by the scheduler's own policy (``repro/pipeline/schedule.py``), simulated.

Stages with no GPU estimate (downloads, assembly, merges, reports, judge forwards) count as
zero hours: the estimate is the GPU part of the wall-clock. The critical path (the longest
chain of dependent stages) is the bound no number of GPUs beats; GPU-hours / GPUs the bound no
schedule beats.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from repro.executors.resources import GpuPool, Resources
from repro.pipeline.schedule import bottom_levels, pick, priority_order


@dataclass
class WallClock:
    hours: float | None  # None: some stage cannot run on this hardware
    critical_hours: float
    critical_path: list[str]
    unplaceable: list[str] = field(default_factory=list)  # stages needing more than a node/cluster has


def stage_hours(gpu_hours: float | None, res: Resources) -> float:
    return (gpu_hours or 0.0) / max(res.gpus, 1)


def critical_path(specs: dict, hours: dict[str, float]) -> tuple[float, list[str]]:
    level = bottom_levels(specs, hours)
    if not level:
        return 0.0, []
    below: dict[str, list[str]] = {n: [d for d, s in specs.items() if n in s.inputs.values()] for n in specs}
    name = max(specs, key=lambda n: level[n])
    total, path = level[name], [name]
    while below[name]:
        name = max(below[name], key=lambda n: level[n])
        path.append(name)
    return total, path


def simulate(specs: dict, hours: dict[str, float], resources: dict[str, Resources],
             gpus: int, nodes: int = 1) -> WallClock:
    """List-schedule the stages on ``nodes`` nodes of ``gpus`` GPUs each (unlimited job slots:
    CPU-only stages start as soon as they are ready)."""
    crit, path = critical_path(specs, hours)
    pool = GpuPool([list(range(gpus)) for _ in range(nodes)])
    unplaceable = [n for n in specs if not pool.fits_ever(resources[n])]
    if unplaceable:
        return WallClock(None, crit, path, unplaceable)
    order = priority_order(specs, hours)
    waiting = {n: set(s.inputs.values()) for n, s in specs.items()}
    running: list[tuple[float, str, list]] = []
    now, done = 0.0, 0
    while done < len(specs):
        ready = [n for n in order if n in waiting and not waiting[n]]
        for name, taken in pick(ready, resources, pool, slots=len(specs)):
            del waiting[name]
            heapq.heappush(running, (now + hours.get(name, 0.0), name, taken))
        now, name, taken = heapq.heappop(running)
        pool.give(taken)
        done += 1
        for deps in waiting.values():
            deps.discard(name)
    return WallClock(now, crit, path)
