"""Analysis stages: safety-related layers (claim 5) and objective divergence (claim 6)."""

from repro.stages.kind import Kind, P

_MODEL = (P("dtype", str, choices=("float32", "bfloat16", "float16")), P("device", str))

KINDS = (
    Kind("analyse/layers", "repro.analyse.layers:layers_stage", gpus="one", cost="forward",
         report=(None, ("layers.png", "separation.png")),
         doc="per-layer weight change LLM -> LVLM, and harmful/harmless separation", params=(
             P("checkpoints", bool, False, doc="also walk the kept stage-2 checkpoints"),
             P("separation", bool, True),
             P("max_prompts_per_class", int, 64, ">=1"),
             P("split", str),
             P("batch_size", int, 8, ">=1"),
             *_MODEL,
         )),
    Kind("analyse/objectives", "repro.analyse.objectives:objectives_stage", gpus="one", cost="forward",
         report=(None, ("objectives.png",)),
         doc="per-layer cosine of the VL-adaptation and safety task vectors (and gradients)", params=(
             P("gradients", bool, False),
             P("grad_samples", int, 16, ">=1"),
             P("max_length", int, 2048, ">=1", source="LLaVA model_max_length (as the training stages)",
               doc="512 dropped every image sample at ViT-L/14-336's 576 image tokens"),
             P("batch_size", int, 4, ">=1"),
             P("vl_data_split", str),
             P("safety_data_split", str),
             *_MODEL,
         )),
)
