"""What a stage asks of a machine: nodes and GPUs per node, as its kind declares (``gpus`` in
``repro/stages/``): ``none`` (fetch, assembly, merging (tensors streamed on the CPU), reports),
``one`` (evaluation, analysis, filtering), or ``launch``: a training stage with a ``launch`` param
takes its size from that accelerate config (``num_machines``, ``num_processes``), else one GPU.
The CPU profiles (tiny, rehearsal: ``repro.config.schema.CPU_PROFILES``) run on CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.config.schema import CPU_PROFILES
from repro.stages import describe


@dataclass(frozen=True)
class Resources:
    nodes: int = 1
    gpus_per_node: int = 0

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


def stage_resources(kind: str, params: dict, profile: str, on_gpus: bool = False) -> Resources:
    """``on_gpus``: GPUs were handed to the run (``repro run --gpus``), so even the tiny profile's
    stages take them as their kinds declare."""
    gpus = describe(kind).gpus
    if (profile in CPU_PROFILES and not on_gpus) or gpus == "none":
        return Resources()
    launch = params.get("launch")
    if gpus == "launch" and launch:
        import yaml

        from repro.stages.train import LAUNCH_DIR

        cfg = yaml.safe_load((LAUNCH_DIR / f"{launch}.yaml").read_text())
        nodes = int(cfg.get("num_machines", 1))
        return Resources(nodes=nodes, gpus_per_node=int(cfg.get("num_processes", 1)) // nodes)
    return Resources(gpus_per_node=1)


def stage_gpus(kind: str, params: dict, profile: str) -> int:
    """GPUs for a single-node run of the stage (the docker executor's device request)."""
    return stage_resources(kind, params, profile).gpus_per_node


class GpuPool:
    """Free GPUs by node: what a scheduler hands out (the runner's ``--gpus``, one node) and what
    ``repro plan`` simulates (``--gpus N --nodes M``). A stage takes ``gpus_per_node`` GPUs on
    each of ``nodes`` nodes, all of them or none; the lowest free ids first."""

    def __init__(self, nodes: list[list[int]]):
        self.free = [sorted(ids) for ids in nodes]
        self.size = [len(ids) for ids in nodes]

    def fits_ever(self, res: Resources) -> bool:
        """Could the stage run here at all, with every GPU free?"""
        return sum(1 for n in self.size if n >= res.gpus_per_node) >= res.nodes

    def take(self, res: Resources, prefer: list[int] = ()) -> list[tuple[int, list[int]]] | None:
        """[(node, GPU ids)] for the stage, or None when it does not fit now. No GPUs asked: [].
        ``prefer``: for a one-GPU stage, GPUs of the first node to try first."""
        if not res.gpus_per_node:
            return []
        if res.gpus == 1 and self.free and (hit := [g for g in prefer if g in self.free[0]]):
            self.free[0].remove(hit[0])
            return [(0, [hit[0]])]
        nodes = [i for i, ids in enumerate(self.free) if len(ids) >= res.gpus_per_node][:res.nodes]
        if len(nodes) < res.nodes:
            return None
        taken = []
        for i in nodes:
            taken.append((i, self.free[i][:res.gpus_per_node]))
            self.free[i] = self.free[i][res.gpus_per_node:]
        return taken

    def give(self, taken: list[tuple[int, list[int]]]) -> None:
        for i, ids in taken:
            self.free[i] = sorted(self.free[i] + ids)
