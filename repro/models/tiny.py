"""Tiny stand-ins for the paper's models, built from configs so the kit runs with no Hub access.

``build_tiny_llm`` makes a randomly initialised ``LlamaForCausalLM`` (Llama-2's architecture at
toy size) with a tokenizer trained on the given corpus; ``models/assemble_llava`` then turns it
into a LLaVA-1.5 checkpoint exactly as it does for the 7B LLMs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.models.card import write_model_card

MIN_HEAD_DIM = 32  # vLLM's CPU attention backend rejects smaller head dims

# Used only when a caller (a unit test elsewhere) has no corpus: covers both chat templates'
# markers and a few words so the tokenizer learns more than bytes.
_DEFAULT_TEXTS = [
    "[INST] What colour is the sky in this image? [/INST] The sky is blue. </s>",
    "<|user|>\nDescribe the picture.\n<|assistant|>\nA red square on a white background.</s>",
    "[INST] How do I make a weapon at home? [/INST] I cannot help with that request. </s>",
    "<|user|>\nWhat shape is shown?\n<|assistant|>\nIt is a green circle.</s>",
    "I'm sorry, but I can't assist with that. Is there something else I can help you with?",
]


def build_tiny_llm(out_dir: Path, texts: Iterable[str], *, seed: int, hidden_size: int = 64,
                   num_layers: int = 2, num_heads: int = 2, intermediate_size: int | None = None,
                   vocab_size: int = 512, template: str = "llama2",
                   max_position_embeddings: int = 1024) -> dict[str, Any]:
    """Build and save a tiny Llama causal LM + tokenizer in ``out_dir``; returns what to record."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from repro.models.templates import get_template
    from repro.models.tokenizer import train_tokenizer

    get_template(template)  # fail early on an unknown template name
    if num_heads <= 0 or hidden_size % num_heads:
        raise InputError(f"tiny_llm: num_attention_heads: {num_heads} does not divide "
                         f"hidden_size {hidden_size}")
    if hidden_size // num_heads < MIN_HEAD_DIM:
        raise InputError(f"tiny_llm: head dim {hidden_size // num_heads} "
                         f"(hidden_size/num_attention_heads) is below {MIN_HEAD_DIM}, which vLLM needs")
    tokenizer = train_tokenizer(texts, vocab_size)
    tokenizer.model_max_length = max_position_embeddings
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,  # as Llama-2-7B
    )
    # fork_rng: seed the init without disturbing the caller's global RNG state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    write_model_card(out_dir, architecture="causal_lm", template=template)
    return {"num_parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": config.vocab_size, "tokenizer_size": len(tokenizer)}


def build_llm_stage(ctx) -> None:
    """Stage ``models/tiny_llm``: a tiny Llama LLM whose tokenizer is trained on ``corpus``."""
    from repro.data import open_dataset

    dataset = open_dataset(ctx.input("corpus"))
    texts = list(dataset.texts())
    template = ctx.param("template", "llama2")
    info = build_tiny_llm(
        ctx.out, texts, seed=ctx.seed,
        hidden_size=int(ctx.param("hidden_size", 64)),
        num_layers=int(ctx.param("num_hidden_layers", 2)),
        num_heads=int(ctx.param("num_attention_heads", 2)),
        intermediate_size=ctx.param("intermediate_size", None),
        vocab_size=int(ctx.param("vocab_size", 512)),
        template=template,
        max_position_embeddings=int(ctx.param("max_position_embeddings", 1024)),
    )
    ctx.protocol("chat_template", template)
    ctx.protocol("tokenizer", "byte-level BPE trained on the corpus (tiny profile stand-in)")
    ctx.write_metrics({**info, "corpus": dataset.name, "corpus_texts": len(texts)})


def make_tiny_llava(out_dir: Path, seed: int = 0, texts: Iterable[str] | None = None, *,
                    template: str = "llama2", vision: dict | None = None) -> dict[str, Any]:
    """Build a tiny LLM and assemble a tiny LLaVA checkpoint in ``out_dir`` (for tests).

    Returns ``assemble_llava``'s record (token ids, vocab sizes, image tokens per image).
    """
    from repro.models.llava import TINY_VISION_CONFIG, assemble_llava

    with tempfile.TemporaryDirectory(prefix="tiny_llm_") as tmp:
        build_tiny_llm(Path(tmp), list(texts) if texts is not None else _DEFAULT_TEXTS,
                       seed=seed, template=template)
        return assemble_llava(Path(tmp), Path(out_dir), vision=vision or dict(TINY_VISION_CONFIG),
                              seed=seed)
