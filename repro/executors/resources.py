"""What a stage asks of a machine: nodes and GPUs per node.

A training stage with a ``launch`` param takes its size from that accelerate config
(``num_machines``, ``num_processes``); other stages that run a model take one GPU; stages that
only move files or stream tensors (fetch, assembly, merging, reports) take none. The tiny
profile runs on CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

# Kinds that never touch a GPU, even in the paper profile (merging streams tensors on the CPU).
CPU_KIND_PREFIXES = ("data/", "report/", "merge/", "models/fetch", "models/assemble_llava")


@dataclass(frozen=True)
class Resources:
    nodes: int = 1
    gpus_per_node: int = 0

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


def stage_resources(kind: str, params: dict, profile: str) -> Resources:
    if profile == "tiny" or kind.startswith(CPU_KIND_PREFIXES):
        return Resources()
    launch = params.get("launch")
    if launch:
        import yaml

        from repro.train.launch import config_path

        cfg = yaml.safe_load(config_path(str(launch)).read_text())
        nodes = int(cfg.get("num_machines", 1))
        return Resources(nodes=nodes, gpus_per_node=int(cfg.get("num_processes", 1)) // nodes)
    return Resources(gpus_per_node=1)


def stage_gpus(kind: str, params: dict, profile: str) -> int:
    """GPUs for a single-node run of the stage (the docker executor's device request)."""
    return stage_resources(kind, params, profile).gpus_per_node
