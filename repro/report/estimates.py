"""GPU needs and a GPU-hour estimate per stage, from the declaration alone (for ``repro plan``).

The cost model is deliberately simple and every assumption is a named constant here:

- training: ``FLOPs = 6 x params x tokens`` (forward + backward; the frozen vision tower's share is
  small next to the 7B LLM and is ignored); DPO adds the reference model's forward and has two
  sequences (chosen, rejected) per pair: ``(6 + 2) x params x tokens`` with tokens counted per
  pair (``DPO_FLOPS_PER_TOKEN``). ``tokens = samples x epochs x TOKENS_PER_SAMPLE[dataset]``, or
  ``max_steps x global batch x tokens per sample`` when ``max_steps`` is set.
- evaluation: ``FLOPs = 2 x params x (prompt + generated tokens) x items`` for the model, plus the
  same for the judge model on its prompt; decoding is memory-bound, so a lower utilisation.
  Data filtering: ``2 x classifier params x tokens x samples``, at prefill (training-like) utilisation.
- GPU-hours = FLOPs / (peak x MFU) / 3600, summed over GPUs; wall hours = GPU-hours / GPUs.

Peak is dense bf16 of the paper's hardware (training on H100, evaluation on A100). Item counts
and tokens per sample are rough public figures (the LLaVA-1.5 image is 576 tokens); they size a
reservation, they are not results. Check: LLaVA-1.5-7B stages 1 + 2 come out at 12 + 20 = 32
H100-hours; LLaVA-1.5 reports about one day on one 8-A100 node for the 13B model (~190 A100-hours,
~60 H100-hours at the peak ratio), i.e. ~30 for 7B: the same order. Stage 1 trains only the
projector, so 6 x params overstates it (about 4 x: no weight gradients for the LLM).
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.evaluate.benchmarks import get_benchmark
from repro.stages import describe

PEAK_FLOPS = {"train": 989e12, "eval": 312e12, "prefill": 312e12}  # H100 SXM / A100 dense bf16, FLOP/s
# assumed model-FLOPs utilisation: decoding is memory-bound; a classifier reads a prompt and writes a
# few tokens, so its prefill is compute-bound like training
MFU = {"train": 0.35, "eval": 0.10, "prefill": 0.35}
DPO_FLOPS_PER_TOKEN = 8  # 6 (policy fwd+bwd) + 2 (reference forward)
IMAGE_TOKENS = 576  # CLIP ViT-L/14-336: 24 x 24 patches

# parameters of each manifest.lock model (billions); LLaVA = LLM + CLIP-L (0.30) + projector (0.02)
MODEL_PARAMS_B = {
    "llama2_7b_chat": 6.74, "tulu2_7b": 6.74, "clip_vit_l14_336": 0.30, "llava15_7b_hf": 7.06,
    "sorry_bench_judge": 7.24, "wildguard": 7.24, "llama_guard3_8b": 8.03,
    "llama_guard3_11b_vision": 10.6, "harmbench_cls": 13.0, "tulu2_dpo_saferlhf": 6.74,
}
LLAVA_EXTRA_B = 0.32
LLAVA_CHECKPOINT_B = 7.06  # every jiyeonkim/llava-tulu2sft-* checkpoint

# (items, tokens per item) of each dataset; training items are samples (pairs for DPO), tokens
# include the image's tokens where the items have images. Evaluation: prompt tokens.
DATASETS = {
    "llava_pretrain": (558_128, IMAGE_TOKENS + 40), "llava_instruct": (665_298, IMAGE_TOKENS + 330),
    "vlguard": (2_000, IMAGE_TOKENS + 150), "pku_saferlhf": (73_907, 2 * 300),
    "spa_vl": (93_258, 2 * (IMAGE_TOKENS + 200)), "aligned_chat": (0, 0),
    "sorry_bench": (450, 80), "wildjailbreak": (2_210, 300), "mm_safetybench": (5_040, IMAGE_TOKENS + 80),
    "siuo": (167, IMAGE_TOKENS + 60), "figstep": (500, IMAGE_TOKENS + 60),
    "mmbench": (4_377, IMAGE_TOKENS + 120), "mme": (2_374, IMAGE_TOKENS + 40),
    "seed_bench": (14_233, IMAGE_TOKENS + 100),
}
GENERATED_TOKENS = {"safety": 256, "helpful": 8}  # safety: half of the 512-token cap; MCQ/yes-no: short
JUDGE_TOKENS = 700  # judge prompt (policy + request + response) + verdict


@dataclass
class Estimate:
    gpus: int
    gpu_hours: float | None  # None: no GPU needed, or not estimable
    note: str


def _model_params(exp, name: str, seen: int = 0) -> float | None:
    """Parameters (billions) of the model a stage produces, following its model-input chain."""
    spec = exp.stages.get(name)
    if spec is None or seen > 50:
        return None
    if spec.kind == "models/fetch":
        key = str(spec.params.get("model"))
        return MODEL_PARAMS_B.get(key, LLAVA_CHECKPOINT_B if key.startswith("tulu2_vl") else None)
    if spec.kind == "models/assemble_llava":
        llm = _model_params(exp, spec.inputs.get("llm", ""), seen + 1)
        return None if llm is None else llm + LLAVA_EXTRA_B
    if spec.kind == "models/tiny_llm":
        p = spec.params
        h, layers, v = p.get("hidden_size", 64), p.get("num_hidden_layers", 2), p.get("vocab_size", 512)
        return (12 * layers * h * h + 2 * v * h) / 1e9
    for role in ("model", "a", "llm", "base"):
        if role in spec.inputs:
            return _model_params(exp, spec.inputs[role], seen + 1)
    return None


def _dataset(exp, name: str, seen: int = 0) -> str | None:
    """The dataset name behind a data stage (through filters)."""
    spec = exp.stages.get(name)
    if spec is None or seen > 50:
        return None
    if spec.kind in ("data/fetch", "data/synthetic"):
        return str(spec.params.get("loader") or spec.params.get("dataset"))
    if "data" in spec.inputs:
        return _dataset(exp, spec.inputs["data"], seen + 1)
    return None


def world_size(params: dict) -> int:
    """GPUs a training recipe implies: global batch / (per-device batch x accumulation)."""
    glob = params.get("expect_global_batch")
    per = params.get("per_device_train_batch_size", 1) * params.get("gradient_accumulation_steps", 1)
    return max(1, int(glob) // int(per)) if glob else 1


def _hours(flops: float, phase: str) -> float:
    return flops / (PEAK_FLOPS[phase] * MFU[phase]) / 3600


def _train(exp, spec) -> Estimate:
    params_b = _model_params(exp, spec.inputs.get("model", ""))
    roles = [r for r in spec.inputs if r == "data" or r.startswith("data_")]
    names = [_dataset(exp, spec.inputs[r]) for r in roles]
    sizes = [DATASETS.get(n or "") for n in names]
    gpus = world_size(spec.params)
    if params_b is None or not sizes or any(s is None for s in sizes):
        return Estimate(gpus, None, f"no size known for model/data ({', '.join(map(str, names))})")
    p = spec.params
    samples = sum(s[0] for s in sizes)
    per_sample = sum(s[0] * s[1] for s in sizes) / max(samples, 1)
    if p.get("max_steps", -1) and p.get("max_steps", -1) > 0:
        glob = p.get("per_device_train_batch_size", 1) * gpus * p.get("gradient_accumulation_steps", 1)
        tokens = p["max_steps"] * glob * per_sample
    else:
        tokens = samples * float(p.get("num_train_epochs", 1)) * per_sample
    per_token = DPO_FLOPS_PER_TOKEN if spec.kind == "train/dpo" else 6
    flops = per_token * params_b * 1e9 * tokens
    return Estimate(gpus, _hours(flops, "train"), f"{tokens / 1e6:.0f}M tokens x {per_token} x {params_b:.2f}B params")


def _evaluate(exp, spec) -> Estimate:
    params_b = _model_params(exp, spec.inputs.get("model", ""))
    bench = str(spec.params.get("benchmark"))
    size = DATASETS.get(bench)
    if params_b is None or size is None:
        return Estimate(1, None, f"no size known for model/benchmark {bench}")
    items, prompt = size
    if spec.params.get("limit"):
        items = min(items, int(spec.params["limit"]))
    kind = "safety" if get_benchmark(bench).scorer == "safety" else "helpful"
    flops = 2 * params_b * 1e9 * (prompt + GENERATED_TOKENS[kind]) * items
    note = f"{items} items x {prompt + GENERATED_TOKENS[kind]} tokens"
    judge = spec.inputs.get("judge")
    if judge:
        judge_b = _model_params(exp, judge) or 0.0
        flops += 2 * judge_b * 1e9 * JUDGE_TOKENS * items
        note += f" + judge {judge_b:.1f}B x {JUDGE_TOKENS} tokens"
    return Estimate(1, _hours(flops, "eval"), note)


def _filter(exp, spec) -> Estimate:
    if "classifier" not in spec.inputs:
        return Estimate(0, None, "rule classifiers: no GPU")
    items, tokens = DATASETS.get(_dataset(exp, spec.inputs.get("data", "")) or "", (0, 0))
    guard = sum(_model_params(exp, spec.inputs[r]) or 0.0 for r in ("classifier", "image_classifier")
                if r in spec.inputs)
    return Estimate(1, _hours(2 * guard * 1e9 * tokens * items, "prefill"), f"{items} samples through the classifiers")


def estimate(exp, spec) -> Estimate:
    """GPUs and GPU-hours of one stage of ``exp`` (an ``Experiment``), by its kind's cost model
    (``cost`` in ``repro/stages/``)."""
    if exp.profile == "tiny":
        return Estimate(0, None, "tiny profile: CPU only")
    cost = describe(spec.kind).cost
    if cost == "train":
        return _train(exp, spec)
    if cost == "evaluate":
        return _evaluate(exp, spec)
    if cost == "filter":
        return _filter(exp, spec)
    if cost == "forward":
        return Estimate(1, None, "one GPU; small next to training (forward passes only)")
    return Estimate(0, None, "no GPU (download, assembly, merge or report)")


def total_hours(estimates: list[Estimate]) -> float:
    return sum(e.gpu_hours or 0.0 for e in estimates)
