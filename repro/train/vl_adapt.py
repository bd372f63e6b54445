"""Stage ``train/vl_adapt``: LLaVA-1.5 vision-language adaptation (and safety SFT / MTL).

``mode``:
- ``pretrain`` (stage 1): only ``multi_modal_projector`` trains; vision tower and LLM frozen;
- ``finetune`` (stage 2): projector + language model train; vision tower frozen;
- ``sft``: the same as ``finetune`` (VLGuard safety SFT, LLaVA-Instruct ∪ VLGuard MTL).
Inputs: ``model`` = a LLaVA checkpoint dir, ``data`` = a conversation dataset dir; more datasets
as ``data_2``, ``data_3``, ... (or the roles in param ``data_roles``) train on their union
(``repro.train.mix``: concatenated then shuffled with the seed; per-source counts in metrics).

LLaVA's data handling (``haotian-liu/LLaVA`` ``llava/train/train.py``, ``scripts/v1_5/``), each a
param recorded as a protocol choice, defaulting per mode to what LLaVA's scripts do
(``DATA_DEFAULTS``): ``conversation_format`` (stage 1 ``plain``, else ``chat``),
``image_token_placement`` (``first``: ``preprocess_multimodal``), ``image_aspect_ratio``
(stage 1 ``square`` = CLIP resize + centre crop, else ``pad``) and ``group_by_modality_length``
(stage 1 off, else on: ``repro.train.sampler``). ``keep_initial_checkpoint`` /
``keep_final_checkpoint`` (default off) add ``checkpoints/step-0`` (the input model, e.g. the
stage-1 output: Figure 2's step 0) and ``checkpoints/step-<last>`` (the final model) to the output.
"""

from __future__ import annotations

from repro.errors import InputError

GROUPS_TRAINED = {
    "pretrain": ("multi_modal_projector",),
    "finetune": ("multi_modal_projector", "language_model"),
    "sft": ("multi_modal_projector", "language_model"),
}


# mode -> LLaVA's own setting: pretrain.sh (stage 1) vs finetune.sh (stage 2; safety SFT and MTL
# follow stage 2 [choice])
DATA_DEFAULTS = {
    "pretrain": {"conversation_format": "plain", "image_token_placement": "first",
                 "image_aspect_ratio": "square", "group_by_modality_length": False},
    "finetune": {"conversation_format": "chat", "image_token_placement": "first",
                 "image_aspect_ratio": "pad", "group_by_modality_length": True},
}
DATA_DEFAULTS["sft"] = DATA_DEFAULTS["finetune"]


def data_params(ctx, mode: str) -> dict:
    """The data-handling params of a ``train/vl_adapt`` stage, defaulted for its mode and checked."""
    from repro.models.images import ASPECT_RATIOS
    from repro.train.tokenize import CONVERSATION_FORMATS, IMAGE_TOKEN_PLACEMENTS, check_choice

    out = {key: ctx.param(key, default) for key, default in DATA_DEFAULTS[mode].items()}
    check_choice("conversation_format", out["conversation_format"], CONVERSATION_FORMATS)
    check_choice("image_token_placement", out["image_token_placement"], IMAGE_TOKEN_PLACEMENTS)
    check_choice("image_aspect_ratio", out["image_aspect_ratio"], tuple(ASPECT_RATIOS))
    for key in ("keep_initial_checkpoint", "keep_final_checkpoint"):
        out[key] = bool(ctx.param(key, False))
    return out


def group_of(name: str) -> str:
    """Module group of a LLaVA parameter name (the LLM's lm_head counts as language model)."""
    if "vision_tower" in name:
        return "vision_tower"
    if "multi_modal_projector" in name:
        return "multi_modal_projector"
    return "language_model"


def freeze_for_mode(model, mode: str) -> None:
    trained = GROUPS_TRAINED[mode]
    for name, param in model.named_parameters():
        param.requires_grad_(group_of(name) in trained)


def check_image_tokens(model, processor, count: int) -> None:
    """The processor's tokens per image must equal the features the vision path produces."""
    import torch
    from PIL import Image

    from repro.models.images import prepare_image

    image = prepare_image(Image.new("RGB", (48, 32)), processor.image_processor)
    pixels = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    with torch.no_grad(), _gathered(model.model.vision_tower, model.model.multi_modal_projector):
        feats = model.model.get_image_features(pixel_values=pixels.to(model.dtype))
    feats = getattr(feats, "pooler_output", feats)  # transformers 5 may wrap the features
    n = feats[0].shape[0] if isinstance(feats, (list, tuple)) else feats.shape[-2]
    if n != count:
        raise InputError(f"processor: image tokens per image {count} != {n} image features "
                         "of the model (processor and vision config disagree)")


def _gathered(*modules):
    """Under ZeRO-3 (zero.Init in from_pretrained) every rank holds only a shard of each weight:
    gather the full weights of ``modules`` for a forward outside the engine (read-only, released
    on exit); a no-op otherwise."""
    from contextlib import nullcontext

    from transformers.integrations import is_deepspeed_zero3_enabled

    if not is_deepspeed_zero3_enabled():
        return nullcontext()
    import deepspeed

    params = [p for m in modules for p in m.parameters()]
    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)


def run_vl_adapt(ctx, callbacks=()) -> None:
    """``run_stage`` with extra ``TrainerCallback``s (tests interrupt a run with one)."""
    from repro.models.llava import _rename_vision_keys, load_llava
    from repro.models.card import read_model_card
    from repro.train.collate import ConversationCollator
    from repro.train.common import (TrainJob, load_conversations, quiet_libraries, run_training,
                                    work_dir)
    from repro.train.mix import load_mixture
    from repro.train.tokenize import image_tokens_of, tokenize_samples
    from repro.train.trainer_args import (check_global_batch, read_params, training_arguments)

    mode = ctx.param("mode")
    if mode not in GROUPS_TRAINED:
        raise InputError(f"params: mode: {mode!r}; expected one of {', '.join(GROUPS_TRAINED)}")
    quiet_libraries()  # before any model is loaded: no progress bars in the run log
    params = read_params(ctx)
    data = data_params(ctx, mode)
    model_dir = ctx.input("model")
    card = read_model_card(model_dir, expect="llava")
    template = card.get("template")
    samples, mixture = load_mixture(ctx, load_conversations)
    ctx.seed_everything()
    with work_dir(ctx.scratch) as work:
        args = training_arguments(params, work / "trainer", ctx.seed)  # before the model (ZeRO-3)
        if params["expect_global_batch"] is not None:
            check_global_batch(params, args.world_size, params["expect_global_batch"])
        model, processor = load_llava(model_dir, dtype=params["model_dtype"])
        freeze_for_mode(model, mode)
        image_tokens = image_tokens_of(processor)
        check_image_tokens(model, processor, image_tokens.count)
        encoded, stats = tokenize_samples(samples, processor.tokenizer, template,
                                          params["max_length"], image_tokens,
                                          require_image=mode == "pretrain",
                                          conversation_format=data["conversation_format"],
                                          image_token_placement=data["image_token_placement"])
        collator = ConversationCollator(processor.tokenizer.pad_token_id, processor.image_processor,
                                        data["image_aspect_ratio"])
        job = TrainJob(model=model, processing_class=processor, samples=encoded, collator=collator,
                       card=dict(card), group_of=group_of, callbacks=list(callbacks),
                       fix_model_files=_rename_vision_keys,
                       build_trainer=_grouped_trainer(model, processor, encoded, collator)
                       if data["group_by_modality_length"] else None)
        metrics = run_training(args, job, work, ctx.out, params)
    if "kept_checkpoints" in metrics:  # the process that writes the output (rank 0)
        from repro.train.points import add_checkpoint_points

        metrics["kept_checkpoints"] = add_checkpoint_points(
            ctx.out, model_dir, metrics["steps"], initial=data["keep_initial_checkpoint"],
            final=data["keep_final_checkpoint"])
    _record(ctx, template, params, mode, data, image_tokens.count, mixture)
    if len(mixture["sources"]) > 1:
        for role, source in mixture["sources"].items():
            source["samples_used"] = sum(1 for s in encoded if s.id.startswith(f"{role}:"))
    ctx.write_metrics({**metrics, **stats, "mode": mode, "data_sources": mixture["sources"],
                       "image_tokens_per_image": image_tokens.count})


def _grouped_trainer(model, processor, encoded, collator):
    """``TrainJob.build_trainer`` for LLaVA's modality-grouped batches (repro.train.sampler)."""
    def build(args, callbacks):
        from transformers import Trainer

        from repro.train.collate import TokenizedDataset
        from repro.train.common import _trainer_class
        from repro.train.sampler import grouped_trainer_class

        cls = _trainer_class(grouped_trainer_class(Trainer, [s.modality_length for s in encoded]))
        return cls(model=model, args=args, train_dataset=TokenizedDataset(encoded),
                   data_collator=collator, processing_class=processor, callbacks=callbacks)
    return build


def _record(ctx, template, params, mode, data, image_tokens, mixture) -> None:
    from repro.models.images import ASPECT_RATIOS
    from repro.train.common import protocol_record
    from repro.train.sampler import GROUPING_POLICY
    from repro.train.tokenize import PLACEMENT_POLICY, PLAIN_POLICY

    grouped = data["group_by_modality_length"]
    protocol_record(ctx, template, params, {
        "conversation_format": PLAIN_POLICY if data["conversation_format"] == "plain"
        else f"chat template {template}",
        "image_token_placement": PLACEMENT_POLICY[data["image_token_placement"]],
        "image_preprocessing": ASPECT_RATIOS[data["image_aspect_ratio"]],
        "batching": GROUPING_POLICY if grouped else "Trainer's seeded random sampler",
        "image_tokens_per_image": image_tokens,
        "trained_modules": list(GROUPS_TRAINED[mode]),
        "text_only_samples": "dropped (no gradient reaches the projector)" if mode == "pretrain"
        else "kept, " + ("in text-only batches" if grouped else "batched with image samples"),
        **({"checkpoint_points": {k: data[k] for k in ("keep_initial_checkpoint", "keep_final_checkpoint")}}
           if data["keep_initial_checkpoint"] or data["keep_final_checkpoint"] else {}),
        **({"data_mixing": mixture["rule"]} if "rule" in mixture else {}),
    })


def run_stage(ctx) -> None:
    """Stage ``train/vl_adapt`` (see the module docstring for ``mode``; param ``launch``: run on
    several processes, see ``repro.train.launch``)."""
    from repro.train.launch import maybe_launch

    if not maybe_launch(ctx):
        run_vl_adapt(ctx)
