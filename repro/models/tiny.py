"""Reduced-size stand-ins for the paper's models, built from configs so the kit runs with no Hub access.

``build_tiny_llm`` makes a randomly initialised causal LM of one of the paper's families (Llama-2
for the LLMs, Llama-3 for Llama Guard 3 8B, Mistral for the SORRY-Bench judge and WildGuard) at
reduced depth and width, with either a real tokenizer (input ``tokenizer``: a
``models/registry_tokenizer`` output, e.g. LLaMA-2's 32,000 pieces) or one trained on the corpus;
``models/assemble_llava`` then turns it into a LLaVA-1.5 checkpoint exactly as it does for the
7B LLMs. ``repro/models/tiny_mllama.py`` builds the Llama Guard 3 Vision family.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.models.card import write_model_card
from repro.models.saving import save_processing

MIN_HEAD_DIM = 32  # vLLM's CPU attention backend rejects smaller head dims
# What a reduced build keeps of each family (depth and width are params): the config class, the
# ratio of attention to key/value heads, the RoPE base and the RMSNorm epsilon. llama2/llama3: the
# llama.* keys of llama.cpp's vocabulary GGUFs of Llama-2-7b-hf and Meta-Llama-3-8B (packages
# llama_cpp_python in manifest.lock: 32/32 and 32/8 heads, rope base 10000 and 500000, eps 1e-5);
# mistral: transformers' MistralConfig defaults (Mistral-7B: 32/8 heads, eps 1e-6). No family (the
# tiny profile's default) keeps LlamaConfig's defaults, as the tiny findings were tuned with them.
TINY_FAMILY = {"model_type": "llama", "kv_group": 1}
FAMILIES = {
    "llama2": {"model_type": "llama", "kv_group": 1, "rope_theta": 10000.0, "rms_norm_eps": 1e-5},
    "llama3": {"model_type": "llama", "kv_group": 4, "rope_theta": 500000.0, "rms_norm_eps": 1e-5},
    "mistral": {"model_type": "mistral", "kv_group": 4, "rope_theta": 10000.0, "rms_norm_eps": 1e-6},
}
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "NOTICE.md")

# Used only when a caller (a unit test elsewhere) has no corpus: covers both chat templates'
# markers and a few words so the tokenizer learns more than bytes.
_DEFAULT_TEXTS = [
    "[INST] What colour is the sky in this image? [/INST] The sky is blue. </s>",
    "<|user|>\nDescribe the picture.\n<|assistant|>\nA red square on a white background.</s>",
    "[INST] How do I make a weapon at home? [/INST] I cannot help with that request. </s>",
    "<|user|>\nWhat shape is shown?\n<|assistant|>\nIt is a green circle.</s>",
    "I'm sorry, but I can't assist with that. Is there something else I can help you with?",
]


def check_shape(hidden_size: int, num_heads: int, kv_group: int) -> None:
    if num_heads <= 0 or hidden_size % num_heads:
        raise InputError(f"tiny_llm: num_attention_heads: {num_heads} does not divide "
                         f"hidden_size {hidden_size}")
    if hidden_size // num_heads < MIN_HEAD_DIM:
        raise InputError(f"tiny_llm: head dim {hidden_size // num_heads} "
                         f"(hidden_size/num_attention_heads) is below {MIN_HEAD_DIM}, which vLLM needs")
    if num_heads % kv_group:
        raise InputError(f"tiny_llm: num_attention_heads: {num_heads} is not a multiple of the family's "
                         f"{kv_group} query heads per key/value head")


def family_constants(fam: dict) -> dict[str, Any]:
    """The config keys a family fixes beyond its head grouping (none for the tiny default)."""
    if "rope_theta" not in fam:
        return {}
    return {"rms_norm_eps": fam["rms_norm_eps"],
            "rope_parameters": {"rope_type": "default", "rope_theta": fam["rope_theta"]}}


def copy_tokenizer(src: Path, out_dir: Path, max_length: int):
    """Copy a real tokenizer's files verbatim (re-saving would rewrite tokenizer.json) and load it."""
    import json
    import shutil

    from transformers import AutoTokenizer

    if not (Path(src) / "tokenizer.json").is_file():
        raise InputError(f"{Path(src) / 'tokenizer.json'}: missing (not a models/registry_tokenizer output)")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (Path(src) / name).is_file():
            shutil.copyfile(Path(src) / name, out_dir / name)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["model_max_length"] = max_length
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return AutoTokenizer.from_pretrained(out_dir)


def build_tiny_llm(out_dir: Path, texts: Iterable[str] | None, *, seed: int, hidden_size: int = 64,
                   num_layers: int = 2, num_heads: int = 2, intermediate_size: int | None = None,
                   vocab_size: int = 512, template: str = "llama2",
                   max_position_embeddings: int = 1024, family: str | None = None,
                   tokenizer_dir: Path | None = None) -> dict[str, Any]:
    """Build and save a reduced causal LM + tokenizer in ``out_dir``; returns what to record."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from repro.models.templates import get_template
    from repro.models.tokenizer import train_tokenizer

    get_template(template)  # fail early on an unknown template name
    if family is not None and family not in FAMILIES:
        raise InputError(f"tiny_llm: family: {family!r} is not one of {', '.join(FAMILIES)}")
    fam = FAMILIES[family] if family else TINY_FAMILY
    check_shape(hidden_size, num_heads, fam["kv_group"])
    out_dir = Path(out_dir)
    if tokenizer_dir is not None:
        tokenizer = copy_tokenizer(tokenizer_dir, out_dir, max_position_embeddings)
    else:
        tokenizer = train_tokenizer(texts or [], vocab_size)
        tokenizer.model_max_length = max_position_embeddings
    config = AutoConfig.for_model(
        fam["model_type"],
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads // fam["kv_group"],
        max_position_embeddings=max_position_embeddings,
        **family_constants(fam),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,  # as Llama-2-7B, Llama-3-8B and Mistral-7B
    )
    # fork_rng: seed the init without disturbing the caller's global RNG state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    if tokenizer_dir is None:
        save_processing(tokenizer, out_dir)
    write_model_card(out_dir, architecture="causal_lm", template=template)
    return {"num_parameters": sum(p.numel() for p in model.parameters()), "family": family,
            "model_class": model.__class__.__name__,
            "vocab_size": config.vocab_size, "tokenizer_size": len(tokenizer)}


def stage_tokenizer_source(ctx) -> tuple[Path | None, list[str] | None, dict[str, Any]]:
    """(real tokenizer dir, corpus texts, what to record) for a model stage: input ``tokenizer``
    (a ``models/registry_tokenizer`` output) wins over input ``corpus`` (train one)."""
    if "tokenizer" in ctx.inputs:
        src = ctx.input("tokenizer")
        notice = src / "NOTICE.md"
        ctx.protocol("tokenizer", notice.read_text().splitlines()[0].lstrip("# ") if notice.is_file()
                     else f"input tokenizer {src.name}")
        return src, None, {}
    from repro.data import open_dataset

    dataset = open_dataset(ctx.input("corpus"))
    texts = list(dataset.texts())
    ctx.protocol("tokenizer", "byte-level BPE trained on the corpus (tiny profile stand-in)")
    return None, texts, {"corpus": dataset.name, "corpus_texts": len(texts)}


def build_llm_stage(ctx) -> None:
    """Stage ``models/tiny_llm``: a reduced LLM of a paper family (param ``family``) with a real
    tokenizer (input ``tokenizer``) or one trained on ``corpus``."""
    template = ctx.param("template", "llama2")
    tokenizer_dir, texts, record = stage_tokenizer_source(ctx)
    info = build_tiny_llm(
        ctx.out, texts, seed=ctx.seed,
        hidden_size=int(ctx.param("hidden_size", 64)),
        num_layers=int(ctx.param("num_hidden_layers", 2)),
        num_heads=int(ctx.param("num_attention_heads", 2)),
        intermediate_size=ctx.param("intermediate_size", None),
        vocab_size=int(ctx.param("vocab_size", 512)),
        template=template,
        max_position_embeddings=int(ctx.param("max_position_embeddings", 1024)),
        family=ctx.param("family", None),
        tokenizer_dir=tokenizer_dir,
    )
    ctx.protocol("chat_template", template)
    ctx.write_metrics({**info, **record})


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
