"""What a stage asks of a machine: nodes and GPUs per node, as its kind declares (``gpus`` in
``repro/stages/``): ``none`` (fetch, assembly, merging (tensors streamed on the CPU), reports),
``one`` (evaluation, analysis, filtering), or ``launch``: a training stage with a ``launch`` param
takes its size from that accelerate config (``num_machines``, ``num_processes``), else one GPU.
The tiny profile runs on CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.stages import describe


@dataclass(frozen=True)
class Resources:
    nodes: int = 1
    gpus_per_node: int = 0

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


def stage_resources(kind: str, params: dict, profile: str) -> Resources:
    gpus = describe(kind).gpus
    if profile == "tiny" or gpus == "none":
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
