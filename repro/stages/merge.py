"""Merge stages (the paper's fix, claim 7): tensors streamed on the CPU, no GPU."""

from repro.stages.kind import Kind, P

_FROZEN = P("frozen_prefixes", list, ["vision_tower."], item=str, source="repro.merge.stage:DEFAULT_FROZEN",
            doc="keys copied from the first model, never merged")
_WEIGHTS = P("weights", (float, list), 1.0, doc="one number, or one per model m1..mN")  # TIES/DARE papers
_MERGE = dict(image="train", gpus="none", disk_gb=13.5)

KINDS = (
    Kind("merge/linear", "repro.merge.stage:linear_stage", **_MERGE, doc="(1-w) a + w b", params=(
        P("weight", float, 0.5, "[0,1]", source="kit (the midpoint)"), _FROZEN)),
    Kind("merge/task_arithmetic", "repro.merge.stage:task_arithmetic_stage", **_MERGE,
         doc="base + sum w_i (m_i - base)", params=(_WEIGHTS, _FROZEN)),
    Kind("merge/ties", "repro.merge.stage:ties_stage", **_MERGE, doc="TIES-merging", params=(
        _WEIGHTS, P("density", float, 0.2, "(0,1]", source="TIES paper"), P("scale", float, 1.0),
        P("convention", str, "kit", choices=("kit", "mergekit"), doc="docs/protocol-choices.md, TIES conventions"),
        _FROZEN)),
    Kind("merge/dare", "repro.merge.stage:dare_stage", **_MERGE, doc="DARE (drop and rescale)", params=(
        _WEIGHTS, P("drop", float, 0.9, "[0,1)", source="DARE paper"), _FROZEN)),
)
