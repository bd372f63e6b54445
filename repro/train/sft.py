"""Stage ``train/text_sft``: supervised fine-tuning of a causal LM on text conversations.

Inputs: ``model`` = a ``causal_lm`` checkpoint dir, ``data`` = a conversation dataset dir
(text-only: a sample with an image is an input error). The whole model trains.
"""

from __future__ import annotations

from repro.data import load_conversations
from repro.models.card import read_model_card
from repro.models.collate import ConversationCollator
from repro.models.tokenize import tokenize_samples
from repro.train.common import TrainJob, protocol_record, quiet_libraries, run_training, work_dir
from repro.train.launch import maybe_launch
from repro.train.trainer_args import check_global_batch, read_params, training_arguments


def run_text_sft(ctx, callbacks=()) -> None:
    """``text_sft_stage`` with extra ``TrainerCallback``s (tests interrupt a run with one)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer


    quiet_libraries()  # before any model is loaded: no progress bars in the run log
    params = read_params(ctx)
    model_dir = ctx.input("model")
    card = read_model_card(model_dir, expect="causal_lm")
    template = card.get("template")
    samples = load_conversations(ctx.input("data"), ctx.param("split", None))
    ctx.seed_everything()
    with work_dir(ctx.scratch) as work:
        args = training_arguments(params, work / "trainer", ctx.seed)  # before the model (ZeRO-3)
        if params["expect_global_batch"] is not None:
            check_global_batch(params, args.world_size, params["expect_global_batch"])
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, use_safetensors=True, dtype=getattr(torch, params["model_dtype"]))
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        encoded, stats = tokenize_samples(samples, tokenizer, template, params["max_length"])
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        job = TrainJob(model=model, processing_class=tokenizer, samples=encoded,
                       collator=ConversationCollator(pad_id), card=dict(card),
                       group_of=lambda name: "language_model", callbacks=list(callbacks))
        metrics = run_training(args, job, work, ctx.out, params)
    protocol_record(ctx, template, params, {})
    ctx.write_metrics({**metrics, **stats})


def text_sft_stage(ctx) -> None:
    """Stage ``train/text_sft`` (param ``launch``: run on several processes, see launch.py)."""
    if not maybe_launch(ctx):
        run_text_sft(ctx)
