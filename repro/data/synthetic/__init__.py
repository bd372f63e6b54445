"""Stage ``data/synthetic``: write one dataset of the deterministic tiny world in its official
on-disk layout, plus ``DATASET.json``, so the real loaders read it like the published data.

Params: ``dataset`` (a loader name, see ``GENERATORS``), ``size`` ("tiny" | "small" | "medium" |
"large" or a positive integer scale; default "small"); per-dataset ``OPTIONS`` (``layout``:
``mirror``/``official`` for MM-SafetyBench, SIUO, MME and SEED-Bench). Output bytes depend only on
(dataset, size, seed, GENERATOR_VERSION) under one Pillow/pyarrow version.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from repro.data.synthetic.world import MC_ANSWER, World
from repro.errors import InputError

GENERATOR_VERSION = 3
SIZES = {"tiny": 1, "small": 4, "medium": 16, "large": 64}
DEFAULT_SIZE = "small"

# dataset name -> "module:function" (module relative to this package)
GENERATORS = {
    "llava_pretrain": "train_sets:llava_pretrain",
    "llava_instruct": "train_sets:llava_instruct",
    "aligned_chat": "train_sets:aligned_chat",
    "vlguard": "train_sets:vlguard",
    "pku_saferlhf": "train_sets:pku_saferlhf",
    "spa_vl": "train_sets:spa_vl",
    "sorry_bench": "safety_sets:sorry_bench",
    "wildjailbreak": "safety_sets:wildjailbreak",
    "mm_safetybench": "safety_sets:mm_safetybench",
    "siuo": "safety_sets:siuo",
    "figstep": "safety_sets:figstep",
    "mmbench": "helpful_sets:mmbench",
    "mme": "helpful_sets:mme",
    "seed_bench": "helpful_sets:seed_bench",
    "judge_train": "judge_sets:judge_train",
    "xstest": "xstest_set:xstest",
    "web_pairs": "clip_sets:web_pairs",
}
# generator-specific params, passed to the generator as keyword arguments and kept in the marker
# (an option left unset is neither: the generator's default applies). ``layout``: official or
# mirror, for the datasets with two on-disk layouts (repro.data.layouts); ``unsafe_rate``: the
# share of unsafe samples planted in LLaVA's VL-adaptation data (train_sets), reported as applied
OPTIONS = {"judge_train": ("judge",), "mm_safetybench": ("layout",), "siuo": ("layout",),
           "mme": ("layout",), "seed_bench": ("layout",), "llava_pretrain": ("unsafe_rate",),
           "llava_instruct": ("unsafe_rate",)}
UNSET_OMITTED = ("layout",)


def scale_of(size) -> int:
    if isinstance(size, bool):
        raise InputError(f"param size: expected one of {', '.join(SIZES)} or a positive integer, got {size!r}")
    if isinstance(size, int) and size > 0:
        return size
    if isinstance(size, str) and size in SIZES:
        return SIZES[size]
    if isinstance(size, str) and size.isdigit() and int(size) > 0:
        return int(size)
    raise InputError(f"param size: expected one of {', '.join(SIZES)} or a positive integer, got {size!r}")


def resolved(options: dict, counts: dict) -> dict:
    """The options as the generator applied them (an unset option: the value it reports)."""
    return {key: counts.get(key, value) if value is None else value for key, value in options.items()}


def generate(dataset: str, out: Path, seed: int, size="small", **options) -> dict:
    """Write ``dataset`` into the (empty or new) folder ``out``; return its counts."""

    if dataset not in GENERATORS:
        raise InputError(f"param dataset: unknown synthetic dataset {dataset!r}; known: {', '.join(sorted(GENERATORS))}")
    scale = scale_of(size)
    module, _, fn = GENERATORS[dataset].partition(":")
    generator = getattr(importlib.import_module(f"repro.data.synthetic.{module}"), fn)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(options) - set(OPTIONS.get(dataset, ())))
    if unknown:
        raise InputError(f"dataset {dataset}: unknown option(s) {unknown}")
    counts = generator(out, World(seed, dataset), scale, **options)
    marker = {"dataset": dataset, "source": "synthetic", "generator_version": GENERATOR_VERSION,
              "seed": seed, "size": size, "scale": scale, "counts": counts, "mc_answer": MC_ANSWER,
              **resolved(options, counts)}
    (out / "DATASET.json").write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return counts


def run_stage(ctx) -> None:
    dataset = ctx.param("dataset")
    size = ctx.param("size", DEFAULT_SIZE)
    options = {key: ctx.param(key, None) for key in OPTIONS.get(dataset, ())}
    options = {k: v for k, v in options.items() if v is not None or k not in UNSET_OMITTED}
    counts = generate(dataset, ctx.out, ctx.seed, size, **options)
    ctx.protocol("synthetic_world", {"generator_version": GENERATOR_VERSION, "dataset": dataset,
                                     "size": size, **resolved(options, counts)})
    ctx.write_metrics({"dataset": dataset, "counts": counts})
