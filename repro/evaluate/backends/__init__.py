"""Generation backends: one interface, ``generate(requests, sampling) -> list[str]``.

A backend is chosen explicitly by configuration (``backend: hf|vllm``) and never falls back to
another one silently: the numbers of the two are not interchangeable (CONVENTIONS: vLLM outputs
change across versions, GPU counts and batch sizes). Each backend reports ``info()`` (name,
library versions, dtype) for the evaluation record.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.models.card import CONFIG_ARCHITECTURES as _CONFIG_ARCH
from repro.registry import Registry

BACKENDS = Registry("backend")
BACKENDS.register("hf", "repro.evaluate.backends.hf:HFBackend")
BACKENDS.register("vllm", "repro.evaluate.backends.vllm:VLLMBackend")

# Paper, "Evaluation": vLLM, temperature 0.1, top-p 1.0, 512 new tokens, frequency penalty 0.0,
# repetition penalty 1.0 (length penalty 1.0 only matters for beam search, which is not used).
PAPER_SAMPLING: dict[str, Any] = {
    "temperature": 0.1, "top_p": 1.0, "max_new_tokens": 512,
    "repetition_penalty": 1.0, "frequency_penalty": 0.0,
}
# LLaVA-1.5 helpfulness evaluation decodes greedily; answers are a word or a letter.
GREEDY_SAMPLING: dict[str, Any] = {**PAPER_SAMPLING, "temperature": 0.0, "max_new_tokens": 128}
SAMPLING_PRESETS = {"paper": PAPER_SAMPLING, "greedy": GREEDY_SAMPLING}
SAMPLING_KEYS = set(PAPER_SAMPLING) | {"seed"}

ARCHITECTURES = ("llava", "causal_lm", "image_text_to_text")  # what a backend can generate with


@dataclass(frozen=True)
class Request:
    """One generation: ``prompt`` is the full model input text (chat template already applied,
    special tokens written as text); ``image`` an optional image file."""
    prompt: str
    image: Path | None = None


def resolve_sampling(preset: str, overrides: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """The full sampling dict: a preset, then overrides (unknown keys are errors), then the seed."""
    if preset not in SAMPLING_PRESETS:
        raise InputError(f"sampling preset {preset!r} unknown; known: {', '.join(SAMPLING_PRESETS)}")
    if overrides is not None and not isinstance(overrides, dict):
        raise InputError(f"param sampling: expected a mapping of sampling keys, got {overrides!r}")
    sampling = dict(SAMPLING_PRESETS[preset])
    for key, value in (overrides or {}).items():
        if key not in SAMPLING_KEYS:
            raise InputError(f"sampling: {key}: unknown key; known: {', '.join(sorted(SAMPLING_KEYS))}")
        sampling[key] = value
    sampling.setdefault("seed", seed)
    return sampling


def read_model_info(model_dir: Path) -> dict[str, Any]:
    """Architecture and template of a model directory.

    ``repro_model.json`` (written by the kit's model stages) wins; a plain Hugging Face
    checkpoint without it (a judge model) is typed from ``config.json``'s ``architectures``.
    """
    model_dir = Path(model_dir)
    card_path = model_dir / "repro_model.json"
    if card_path.exists():
        try:
            card = json.loads(card_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{card_path}: invalid JSON ({exc.msg})") from None
        arch = card.get("architecture")
        if arch not in ARCHITECTURES:
            raise InputError(f"{card_path}: architecture: {arch!r} not one of {', '.join(ARCHITECTURES)}")
        return card
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise InputError(f"{model_dir}: neither repro_model.json nor config.json (not a model directory)")
    try:
        names = json.loads(config_path.read_text()).get("architectures") or []
    except json.JSONDecodeError as exc:
        raise InputError(f"{config_path}: invalid JSON ({exc.msg})") from None
    arch = next((_CONFIG_ARCH[n] for n in names if n in _CONFIG_ARCH), "causal_lm")
    return {"architecture": arch, "template": None}


def get_backend(name: str, model_dir: Path, ctx, **options: Any):
    """The backend ``name`` for ``model_dir``, loaded once per process (cached in ``ctx.shared``)."""
    cls = BACKENDS.get(name)
    accepted = set(inspect.signature(cls).parameters) - {"model_dir"}
    unknown = sorted(set(options) - accepted)
    if unknown:  # never silently ignore an option the user set (e.g. a misspelt one)
        raise InputError(f"backend {name!r}: unknown option {unknown[0]!r} (accepted: {', '.join(sorted(accepted))})")
    key = ("backend", name, str(Path(model_dir).resolve()),
           json.dumps(options, sort_keys=True, default=str))
    if key not in ctx.shared:
        ctx.shared[key] = cls(Path(model_dir), **options)
    return ctx.shared[key]


def stage_backend(ctx, name: str, model_dir: Path, batch_size: int):
    """A backend for a stage: load options from ``backend_options`` (+ vLLM's tensor parallelism
    and seed); the batch size is set per use, not part of the cached model."""
    load = dict(ctx.param("backend_options", None) or {})
    if name == "vllm":
        load.setdefault("tensor_parallel_size", ctx.param("tensor_parallel_size", 1))
        load.setdefault("seed", ctx.seed)
    backend = get_backend(name, model_dir, ctx, **load)
    backend.batch_size = max(1, int(batch_size))
    return backend
