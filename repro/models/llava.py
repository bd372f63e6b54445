"""LLaVA-1.5 assembly: a causal LM + a CLIP vision tower + a fresh 2-layer GELU projector.

The layout follows the HF-format checkpoints the authors released (``LlavaForConditionalGeneration``):
``<image>`` and ``<pad>`` appended to the LLM's vocabulary (32000/32001 for Llama-2), embeddings
padded to a multiple of 64 (32002 -> 32064), features from the tower's second-to-last layer with
the CLS token dropped. Saved keys use the original llava-hf layout
(``language_model.model.*``, ``language_model.lm_head.*``, ``vision_tower.vision_model.*``,
``multi_modal_projector.*``): vLLM needs ``vision_tower.vision_model.*`` while transformers 5.x
writes ``vision_tower.*``, and transformers loads both identically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.models.card import read_model_card, write_model_card
from repro.models.saving import save_processing

IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<pad>"
VOCAB_MULTIPLE = 64  # the released checkpoints pad 32002 -> 32064
VISION_FEATURE_LAYER = -2
VISION_FEATURE_SELECT_STRATEGY = "default"  # drop CLS
TINY_VISION_CONFIG = {
    "image_size": 32, "patch_size": 8, "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 2, "projection_dim": 64,
}
DTYPES = ("float32", "bfloat16", "float16")
_VISION_PREFIX, _VISION_PREFIX_VLLM = "vision_tower.", "vision_tower.vision_model."


def _load_llm(llm_dir: Path, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    card = read_model_card(llm_dir, expect="causal_lm")
    if not card.get("template"):
        raise InputError(f"{llm_dir / 'repro_model.json'}: template: field missing")
    llm = AutoModelForCausalLM.from_pretrained(llm_dir, use_safetensors=True, dtype=dtype)
    if not hasattr(llm, "model") or not hasattr(llm, "lm_head"):
        raise InputError(f"{llm_dir}/config.json: architectures: {llm.__class__.__name__} has no "
                         "decoder + lm_head layout (a Llama-style causal LM is needed)")
    return llm, AutoTokenizer.from_pretrained(llm_dir), card


def _vision_from_config(cfg: dict, seed: int, dtype):
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    known = set(CLIPVisionConfig().to_dict())
    unknown = sorted(set(cfg) - known)
    if unknown:  # CLIPVisionConfig silently keeps unknown keys; a typo must not build ViT-B/32
        raise InputError(f"assemble_llava: vision_config: unknown key(s) {unknown}")
    for key in ("image_size", "patch_size"):
        if key not in cfg:
            raise InputError(f"assemble_llava: vision_config: {key}: missing")
    if cfg["image_size"] % cfg["patch_size"]:
        raise InputError(f"assemble_llava: vision_config: image_size {cfg['image_size']} is not a "
                         f"multiple of patch_size {cfg['patch_size']}")
    try:
        config = CLIPVisionConfig(**cfg)
    except (TypeError, ValueError) as exc:
        raise InputError(f"assemble_llava: vision_config: invalid ({exc})") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)  # +1: a stream independent of the projector's
        tower = CLIPVisionModel(config).to(dtype)
    side = config.image_size
    processor = CLIPImageProcessor(size={"shortest_edge": side},
                                   crop_size={"height": side, "width": side})
    return tower, processor


def _vision_from_dir(vision_dir: Path, dtype):
    from transformers import AutoImageProcessor, CLIPVisionModel

    if not (vision_dir / "config.json").is_file():
        raise InputError(f"{vision_dir / 'config.json'}: missing (not a vision tower checkpoint)")
    # a full CLIPModel checkpoint (openai/clip-*) loads too: its text half is simply unused
    tower, loading = CLIPVisionModel.from_pretrained(vision_dir, use_safetensors=True, dtype=dtype,
                                                     output_loading_info=True)
    if loading["missing_keys"] or loading.get("mismatched_keys"):
        bad = sorted(loading["missing_keys"]) + [str(m) for m in loading.get("mismatched_keys") or []]
        raise InputError(f"{vision_dir}: vision tower weights missing or mismatched: {bad[:3]}")
    return tower, AutoImageProcessor.from_pretrained(vision_dir)


def _pad_embeddings(llm, new_size: int, pad_id: int) -> None:
    """Grow input and output embeddings to ``new_size`` rows; new rows = mean of the old ones.

    The llava-hf conversion samples new rows around the mean with a tiny covariance; the mean
    itself is the deterministic centre of that distribution.
    """
    import torch

    for get, set_ in ((llm.get_input_embeddings, llm.set_input_embeddings),
                      (llm.get_output_embeddings, llm.set_output_embeddings)):
        old = get()
        weight = old.weight.data
        mean = weight.float().mean(0, keepdim=True).to(weight.dtype)  # fp32 sum: 32000 fp16 rows
        grown = torch.cat([weight, mean.expand(new_size - weight.shape[0], -1)])
        if isinstance(old, torch.nn.Embedding):
            new = torch.nn.Embedding(new_size, weight.shape[1], padding_idx=pad_id)  # as on reload
        else:
            new = torch.nn.Linear(weight.shape[1], new_size, bias=False)
        new = new.to(dtype=weight.dtype)
        new.weight.data.copy_(grown)
        set_(new)
    if llm.config.tie_word_embeddings:
        llm.get_output_embeddings().weight = llm.get_input_embeddings().weight
    llm.config.vocab_size = new_size


def _add_tokens(tokenizer) -> tuple[int, int]:
    """Add ``<image>`` (then ``<pad>`` when the LLM has no pad token); returns their ids."""
    from tokenizers import AddedToken

    if IMAGE_TOKEN in tokenizer.get_vocab():
        raise InputError(f"assemble_llava: tokenizer: {IMAGE_TOKEN!r} already present (already a LLaVA?)")
    tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)],
                         special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), tokenizer.pad_token_id


def build_llava(llm_dir: Path, *, vision: dict | Path, seed: int, dtype: str | None = None):
    """Assemble in memory; returns ``(model, processor, card, info)`` (``save_llava`` writes them)."""
    import torch
    from transformers import LlavaProcessor

    from repro.models.images import IMAGE_PREPROCESSING

    if dtype not in (None, *DTYPES):
        raise InputError(f"assemble_llava: dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    torch_dtype = getattr(torch, dtype) if dtype else None
    llm, tokenizer, card = _load_llm(Path(llm_dir), torch_dtype)
    torch_dtype = llm.dtype
    llm_vocab = llm.config.vocab_size
    if isinstance(vision, dict):
        tower, image_processor = _vision_from_config(vision, seed, torch_dtype)
    else:
        tower, image_processor = _vision_from_dir(Path(vision), torch_dtype)
    image_id, pad_id = _add_tokens(tokenizer)
    padded = -(-max(len(tokenizer), llm_vocab) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    _pad_embeddings(llm, padded, pad_id)
    llm.config.pad_token_id = pad_id
    vcfg = tower.config
    crop = getattr(image_processor, "crop_size", None) or {}
    if (crop.get("height"), crop.get("width")) != (vcfg.image_size, vcfg.image_size):
        # a mismatch would make the processor emit a different number of <image> tokens than
        # the tower yields features
        raise InputError(f"assemble_llava: image processor crop_size {crop.get('height')}x{crop.get('width')} does not match "
                         f"the vision tower's image_size {vcfg.image_size}")
    n_image_tokens = (vcfg.image_size // vcfg.patch_size) ** 2  # CLS dropped by "default"
    model = _llava_model(llm, tower, image_id, n_image_tokens, seed)
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=vcfg.patch_size,
        vision_feature_select_strategy=VISION_FEATURE_SELECT_STRATEGY,
        num_additional_image_tokens=1,  # CLIP's CLS; "default" then drops it again
        image_token=IMAGE_TOKEN,
    )
    card = {"architecture": "llava", "template": card["template"],
            "image_preprocessing": IMAGE_PREPROCESSING}
    info = {
        "image_token_id": image_id, "pad_token_id": pad_id, "image_tokens_per_image": n_image_tokens,
        "llm_vocab_size": llm_vocab, "tokenizer_size": len(tokenizer), "vocab_size": padded,
        "dtype": str(torch_dtype).removeprefix("torch."),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "projector_parameters": sum(p.numel() for p in model.model.multi_modal_projector.parameters()),
        "vision_parameters": sum(p.numel() for p in tower.parameters()),
    }
    return model, processor, card, info


def _llava_model(llm, tower, image_id: int, n_image_tokens: int, seed: int):
    """Put the loaded LLM and tower into a LlavaForConditionalGeneration with a fresh projector."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    for cfg in (llm.config, tower.config):  # outputs must not carry the input's absolute path
        cfg.name_or_path = ""
    config = LlavaConfig(
        vision_config=tower.config, text_config=llm.config, image_token_index=image_id,
        image_seq_length=n_image_tokens, projector_hidden_act="gelu",
        vision_feature_layer=VISION_FEATURE_LAYER,
        vision_feature_select_strategy=VISION_FEATURE_SELECT_STRATEGY,
        tie_word_embeddings=llm.config.tie_word_embeddings,
    )
    # Build the shell on the meta device and move the loaded parts in: no 7B random init, no copy.
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.language_model = llm.model
    model.lm_head = llm.lm_head
    model.model.vision_tower = tower
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.model.multi_modal_projector = _fresh_projector(config).to(llm.dtype)
    model.generation_config = llm.generation_config
    model.generation_config.pad_token_id = llm.config.pad_token_id
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # a transformers change added a part this assembly does not know about
        raise InputError(f"assemble_llava: uninitialised tensors after assembly: {left[:5]}")
    return model.eval()


def _fresh_projector(config):
    """LLaVA-1.5 ``mlp2x_gelu``: Linear(vision, text) -> GELU -> Linear(text, text), torch default init."""
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    return LlavaMultiModalProjector(config)  # its nn.Linear layers init as in the original code


def _rename_vision_keys(out_dir: Path) -> list[str]:
    """Rewrite saved shards with ``vision_tower.vision_model.*`` keys; returns all saved keys."""
    from safetensors.torch import load_file, save_file

    index = out_dir / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file()
             else ["model.safetensors"])

    def rename(key: str) -> str:
        if key.startswith(_VISION_PREFIX) and not key.startswith(_VISION_PREFIX_VLLM):
            return _VISION_PREFIX_VLLM + key[len(_VISION_PREFIX):]
        return key

    keys: list[str] = []
    for name in files:
        tensors = load_file(out_dir / name)
        renamed = {rename(k): v for k, v in tensors.items()}
        save_file(renamed, out_dir / name, metadata={"format": "pt"})
        keys += renamed
    if index.is_file():
        data = json.loads(index.read_text())
        data["weight_map"] = {rename(k): v for k, v in data["weight_map"].items()}
        index.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return sorted(keys)


def save_llava(model, processor, card: dict, out_dir: Path) -> list[str]:
    """Save model + processor (safetensors, vLLM key layout) and ``repro_model.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    save_processing(processor, out_dir)
    keys = _rename_vision_keys(out_dir)
    # every tensor must have been written (a silent partial save is the failure to guard against)
    n_expected = len({(t.data_ptr(), t.shape) for t in model.state_dict().values()})  # tied once
    if len(keys) != n_expected or any(k.startswith("model.") for k in keys):
        raise InputError(f"{out_dir}: saved {len(keys)} tensors, expected {n_expected} in llava-hf layout")
    write_model_card(out_dir, **card)
    return keys


def assemble_llava(llm_dir: Path, out_dir: Path, *, vision: dict | Path, seed: int,
                   dtype: str | None = None) -> dict[str, Any]:
    """Assemble and save a LLaVA-1.5 checkpoint in ``out_dir``; returns what to record."""
    model, processor, card, info = build_llava(llm_dir, vision=vision, seed=seed, dtype=dtype)
    save_llava(model, processor, card, out_dir)
    return {**info, "template": card["template"], "image_preprocessing": card["image_preprocessing"]}


def load_llava(model_dir: Path, dtype: str | None = None):
    """Load a saved LLaVA checkpoint (safetensors only); fails on any missing or unexpected key."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model, loading = LlavaForConditionalGeneration.from_pretrained(
        model_dir, use_safetensors=True, dtype=getattr(torch, dtype) if dtype else None,
        output_loading_info=True)
    bad = {k: sorted(map(str, v))[:3] for k, v in loading.items() if v}
    if bad:
        raise InputError(f"{model_dir}: weights did not load cleanly: {bad}")
    return model.eval(), AutoProcessor.from_pretrained(model_dir)


def assemble_stage(ctx) -> None:
    """Stage ``models/assemble_llava``: ``llm`` (+ optional ``vision`` dir, else ``vision_config``)."""
    vision: dict | Path
    if "vision" in ctx.inputs:
        vision = ctx.input("vision")
    else:  # no silent default: a paper run missing its CLIP input must not get a toy tower
        vision = ctx.param("vision_config")
        if not isinstance(vision, dict):
            raise InputError(f"stage {ctx.name!r}: vision_config: expected a mapping, got {vision!r}")
    info = assemble_llava(ctx.input("llm"), ctx.out, vision=vision, seed=ctx.seed,
                          dtype=ctx.param("dtype", None))
    ctx.protocol("chat_template", info["template"])
    ctx.protocol("image_preprocessing", info["image_preprocessing"])
    ctx.protocol("projector", "mlp2x_gelu, torch default init")
    ctx.protocol("vision_feature", f"layer {VISION_FEATURE_LAYER}, {VISION_FEATURE_SELECT_STRATEGY}")
    ctx.protocol("new_token_embedding_init", "mean of the LLM's existing rows")
    ctx.write_metrics(info)



def clip_stage(ctx) -> None:
    """Stage ``models/tiny_clip``: a CLIP vision tower of ``vision_config``'s geometry with random
    weights and its image processor, saved as a fetched ``openai/clip-*`` checkpoint is read, so
    ``models/assemble_llava`` takes it through input ``vision`` exactly as it takes the real one
    (the rehearsal: ViT-L/14-336's 336 px and patch 14 at reduced depth and width)."""
    import torch

    cfg = ctx.param("vision_config")
    if not isinstance(cfg, dict):
        raise InputError(f"stage {ctx.name!r}: vision_config: expected a mapping, got {cfg!r}")
    tower, processor = _vision_from_config(dict(cfg), ctx.seed, torch.float32)
    tower.save_pretrained(ctx.out, safe_serialization=True)
    save_processing(processor, ctx.out)
    side, patch = tower.config.image_size, tower.config.patch_size
    ctx.protocol("image_preprocessing", f"CLIPImageProcessor: shortest edge {side} (bicubic), centre crop {side}")
    ctx.write_metrics({"model_class": tower.__class__.__name__, "image_size": side, "patch_size": patch,
                       "image_tokens": (side // patch) ** 2,
                       "parameters": sum(p.numel() for p in tower.parameters())})
