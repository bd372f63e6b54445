"""Stage ``models/tiny_mllama``: Llama Guard 3 Vision's family (``MllamaForConditionalGeneration``)
at reduced size, from configs with random weights, for rehearsing the vision judge's path.

Inputs and tokenizer handling as ``models/tiny_llm`` (``tokenizer`` or ``corpus``); the text
model keeps the Llama-3 family's head grouping and RoPE base (``tiny.FAMILIES["llama3"]``); the
tokenizer gains Mllama's ``<|image|>`` token when it lacks it. Params: the text shape as
``models/tiny_llm`` (``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
``intermediate_size``, ``max_position_embeddings``), ``cross_attention_layers`` (default
``[1]``) and ``vision_config`` (keys of transformers' ``MllamaVisionConfig``; ``image_size`` also
sets the image processor's tile size). Output: a checkpoint + processor that the HF backend loads
as ``AutoModelForImageTextToText``; ``repro_model.json`` says ``image_text_to_text``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.models.card import write_model_card
from repro.models.saving import save_processing
from repro.models.tiny import FAMILIES, check_shape, copy_tokenizer, family_constants, stage_tokenizer_source

IMAGE_TOKEN = "<|image|>"
TINY_VISION = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_global_layers": 1,
               "attention_heads": 2, "image_size": 224, "patch_size": 14, "max_num_tiles": 4,
               "vision_output_dim": 128, "intermediate_layers_indices": [0]}


def _vision_config(cfg: dict) -> dict:
    from transformers.models.mllama.configuration_mllama import MllamaVisionConfig

    unknown = sorted(set(cfg) - set(MllamaVisionConfig().to_dict()))
    if unknown:
        raise InputError(f"tiny_mllama: vision_config: unknown key(s) {unknown}")
    return {**TINY_VISION, **cfg}


def build_tiny_mllama(out_dir: Path, texts: list[str] | None, *, seed: int, text: dict[str, int],
                      cross_attention_layers: list[int], vision: dict,
                      tokenizer_dir: Path | None = None, vocab_size: int = 512) -> dict[str, Any]:
    import torch
    from transformers import (MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessor,
                              MllamaProcessor)

    from repro.models.tokenizer import train_tokenizer

    fam = FAMILIES["llama3"]
    check_shape(text["hidden_size"], text["num_attention_heads"], fam["kv_group"])
    if any(not 0 <= i < text["num_hidden_layers"] for i in cross_attention_layers):
        raise InputError(f"tiny_mllama: cross_attention_layers: {cross_attention_layers} outside "
                         f"0..{text['num_hidden_layers'] - 1}")
    vision = _vision_config(vision)
    out_dir = Path(out_dir)
    if tokenizer_dir is not None:
        tokenizer = copy_tokenizer(tokenizer_dir, out_dir, text["max_position_embeddings"])
    else:
        tokenizer = train_tokenizer(texts or [], vocab_size)
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    config = MllamaConfig(
        vision_config=vision,
        text_config={**text, "vocab_size": len(tokenizer), "cross_attention_layers": cross_attention_layers,
                     "num_key_value_heads": text["num_attention_heads"] // fam["kv_group"],
                     **family_constants(fam),
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MllamaForConditionalGeneration(config).eval()
    side = vision["image_size"]
    processor = MllamaProcessor(image_processor=MllamaImageProcessor(
        size={"height": side, "width": side}, max_image_tiles=vision["max_num_tiles"]), tokenizer=tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    save_processing(processor, out_dir)
    write_model_card(out_dir, architecture="image_text_to_text")
    return {"num_parameters": sum(p.numel() for p in model.parameters()), "family": "mllama",
            "model_class": model.__class__.__name__, "vocab_size": len(tokenizer),
            "image_token_id": config.image_token_index, "tile_size": side}


def build_mllama_stage(ctx) -> None:
    tokenizer_dir, texts, record = stage_tokenizer_source(ctx)
    text = {"hidden_size": int(ctx.param("hidden_size", 64)),
            "num_hidden_layers": int(ctx.param("num_hidden_layers", 3)),
            "num_attention_heads": int(ctx.param("num_attention_heads", 2)),
            "intermediate_size": int(ctx.param("intermediate_size", 128)),
            "max_position_embeddings": int(ctx.param("max_position_embeddings", 1024))}
    vision = ctx.param("vision_config", {})
    if not isinstance(vision, dict):
        raise InputError(f"stage {ctx.name!r}: vision_config: expected a mapping, got {vision!r}")
    info = build_tiny_mllama(ctx.out, texts, seed=ctx.seed, text=text, vision=vision,
                             cross_attention_layers=list(ctx.param("cross_attention_layers", [1])),
                             tokenizer_dir=tokenizer_dir, vocab_size=int(ctx.param("vocab_size", 512)))
    ctx.write_metrics({**info, **record})
