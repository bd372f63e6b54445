"""Stage ``train/dpo``: safety DPO with TRL's ``DPOTrainer`` on preference pairs.

Inputs: ``model`` = a LLaVA or causal-LM checkpoint dir (the policy's start *and* the frozen
reference model), ``data`` (+ ``data_2``, ... : their union, see ``repro.train.mix``) = preference
datasets (PKU-SafeRLHF: text pairs; SPA-VL: image pairs). On a LLaVA, text pairs train the
language model with no image; image pairs go through TRL's VLM path (``images`` + ``prompt``/
``chosen``/``rejected``, ``processing_class`` = the processor). The vision tower stays frozen
[choice, as in stage 2].

``max_length`` (paper: 2048) applies to text and image pairs alike. TRL 1.16 truncates text pairs
itself (``keep_start``) after dropping pairs whose prompt alone fills ``max_length``; for image
pairs its ``DataCollatorForVisionPreference`` only cuts the concatenated sequence at
``max_length`` (``keep_start``) and drops nothing, so a prompt with its image tokens at or past
``max_length`` would lose image tokens. Such image pairs are dropped here before training and
counted (``pairs_dropped_prompt_too_long``); every kept pair then loses completion tokens only.

PKU-SafeRLHF pairs are selected by ``pair_selection`` (``repro.train.pairs``; default
``safe_vs_unsafe``); the pair count is printed and recorded.

Texts use the model's recorded chat template: ``prompt`` is the generation prompt evaluation
feeds (ends at the assistant-turn start, never with a space), ``chosen``/``rejected`` the
assistant texts with eos. Paper recipe: lr 5e-7 linear to 0, warmup 0.1, 3 epochs, 1 per device,
global batch 32 (``expect_global_batch``), max length 2048, bf16; ``beta`` 0.1 [choice].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.errors import InputError

# Defaults (the paper's DPO recipe; beta 0.1, which the paper does not state, is TRL's and the DPO
# paper's; 64 pairs whose reward margin is measured after training) are declared with the kind:
# repro/stages/train.py.
LOSS_TYPE = "sigmoid"  # the original DPO loss


def load_pairs(data_dir: Path, split: str | None) -> list:
    """The dataset's records, which must all be ``PreferencePair``."""
    from repro.data import open_dataset
    from repro.data.records import PreferencePair

    records = open_dataset(data_dir).records(split)
    wrong = next((r for r in records if not isinstance(r, PreferencePair)), None)
    if wrong is not None:
        raise InputError(f"{data_dir}: records: {type(wrong).__name__} found; DPO needs preference pairs")
    if not records:
        raise InputError(f"{data_dir}: records: none (split {split!r})")
    return records


def render_pair(pair, template: str, strip_bos: bool) -> dict[str, Any]:
    """One TRL row. ``strip_bos``: the tokenizer adds bos itself (TRL's text path tokenises with
    special tokens), so the template's literal bos is left out to keep exactly one."""
    from repro.models.templates import get_template, prompt_text

    t = get_template(template)
    prompt = prompt_text(t, pair.prompt, with_image=pair.image is not None)
    if strip_bos and prompt.startswith(t.bos):
        prompt = prompt[len(t.bos):]
    # TRL's prompt-prefix tokenisation breaks on a prompt ending in whitespace (Tulu's
    # "<|assistant|>\n"): the whitespace moves to the start of both completions, so the full text
    # of each sequence is unchanged.
    stripped = prompt.rstrip()
    tail = prompt[len(stripped):]
    return {"id": pair.id, "prompt": stripped, "chosen": tail + t.assistant.format(content=pair.chosen),
            "rejected": tail + t.assistant.format(content=pair.rejected)}


def completion_ids(tokenizer, prompt: str, completion: str) -> list[int]:
    """``completion``'s ids as the whole ``prompt + completion`` text tokenises them (the ids
    evaluation sees the model produce after that prompt)."""
    whole = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if whole[:len(head)] != head:
        raise InputError(f"tokenizer: the prompt {prompt[-40:]!r} tokenises differently when "
                         f"followed by {completion[:20]!r}; prompt/completion ids cannot be split")
    return whole[len(head):]


class _InContextCompletions:
    """The processor TRL's vision collator calls, except that completions (its calls without the
    prompts) are tokenised after their prompt. Alone, SentencePiece prefixes them with its dummy
    '▁': LLaMA-2's " Sure </s>" became ['▁', '▁Sure', ...] and Tulu's "\nSure</s>" ['▁', '\n',
    ...], a token the model never sees before its answer at evaluation (the rehearsal found it;
    tests/unit/test_label_masking.py)."""

    def __init__(self, processor):
        self._processor, self.prompts = processor, []

    def __getattr__(self, name):
        return getattr(self._processor, name)

    def __call__(self, images=None, text=None, **kw):
        if text == self.prompts * 2:  # TRL's prompt call (prompts repeated for chosen, rejected)
            return self._processor(images=images, text=text, **kw)
        tok = self._processor.tokenizer
        ids = [completion_ids(tok, p, c) for p, c in zip(self.prompts, text, strict=True)]
        return tok.pad({"input_ids": ids}, padding=True, padding_side=kw.get("padding_side", "right"),
                       return_tensors=kw.get("return_tensors"))


class ImageFileCollator:
    """TRL's vision preference collator, fed images opened and pre-processed (LLaVA-1.5 pad to
    square) from the paths in ``images``, one batch at a time, as in evaluation; completions are
    tokenised in context (``_InContextCompletions``)."""

    def __init__(self, processor, max_length: int | None = None):
        from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

        self.processor = processor
        self._tokenizing = _InContextCompletions(processor)
        self.inner = DataCollatorForVisionPreference(processor=self._tokenizing, max_length=max_length)

    def __call__(self, examples: list[dict]) -> dict:
        from repro.models.images import open_image, prepare_image

        rows = [{"prompt": ex["prompt"], "chosen": ex["chosen"], "rejected": ex["rejected"],
                 "images": [prepare_image(open_image(Path(p)), self.processor.image_processor)
                            for p in ex["images"]]} for ex in examples]
        self._tokenizing.prompts = [row["prompt"] for row in rows]
        return self.inner(rows)


def drop_long_prompts(rows: list[dict], processor, max_length: int) -> tuple[list[dict], int]:
    """Image-path rows whose prompt (image tokens expanded, as the processor does) is shorter than
    ``max_length``, and how many were dropped: keep_start truncation then cuts completions only."""
    from repro.models.templates import IMAGE_TOKEN
    from repro.train.tokenize import image_tokens_of

    image = image_tokens_of(processor)
    tokenizer = processor.tokenizer
    kept = [row for row in rows if len(tokenizer(row["prompt"].replace(IMAGE_TOKEN, image.token * image.count),
                                                 add_special_tokens=False)["input_ids"]) < max_length]
    return kept, len(rows) - len(kept)


def _tokenizer_adds_bos(tokenizer) -> bool:
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


def build_rows(pairs: list, template: str, tokenizer, is_llava: bool, batch: int) -> tuple[list[dict], bool]:
    """TRL rows for the pairs; returns (rows, vision) where vision = TRL's image path is used."""
    with_image = sum(1 for p in pairs if p.image is not None)
    if with_image and not is_llava:
        raise InputError(f"pairs: {with_image} have images; a causal_lm model trains on text pairs only")
    vision = with_image > 0
    if vision and with_image < len(pairs) and batch > 1:
        raise InputError(f"params: per_device_train_batch_size: {batch}; text-only and image pairs "
                         "mixed in one run need batch 1 (a LLaVA batch cannot mix them)")
    rows = [render_pair(p, template, strip_bos=not vision and _tokenizer_adds_bos(tokenizer))
            for p in pairs]
    if vision:
        for row, pair in zip(rows, pairs):
            row["images"] = [str(pair.image)] if pair.image is not None else []
    return rows, vision


def _load(card: dict, model_dir: Path, dtype: str):
    """(policy, frozen reference, processing class, trained-group function, key-layout fix)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if card["architecture"] == "llava":
        from repro.models.llava import _rename_vision_keys, load_llava
        from repro.train.vl_adapt import freeze_for_mode, group_of

        model, processor = load_llava(model_dir, dtype=dtype)
        ref, _ = load_llava(model_dir, dtype=dtype)
        freeze_for_mode(model, "finetune")
        return model.train(), ref.requires_grad_(False), processor, group_of, _rename_vision_keys
    kw = dict(use_safetensors=True, dtype=getattr(torch, dtype))
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kw)
    ref = AutoModelForCausalLM.from_pretrained(model_dir, **kw).eval().requires_grad_(False)
    return model, ref, AutoTokenizer.from_pretrained(model_dir), (lambda name: "language_model"), None


def _summary(eval_pairs: int):
    def summarise(trainer) -> dict[str, Any]:
        history = [e for e in trainer.state.log_history if "rewards/margins" in e]
        first, last = history[0], history[-1]
        dataset = trainer.train_dataset.select(range(min(eval_pairs, len(trainer.train_dataset))))
        # TRL names its own reward metrics eval_*, whatever the prefix
        measured = trainer.evaluate(dataset, metric_key_prefix="pairs")
        return {"reward_margin_first": first["rewards/margins"],
                "reward_margin_last": last["rewards/margins"],
                "reward_accuracy_first": first["rewards/accuracies"],
                "reward_accuracy_last": last["rewards/accuracies"],
                "first_dpo_loss": first["loss"], "last_dpo_loss": last["loss"],
                "pairs_reward_margin": measured["eval_rewards/margins"],
                "pairs_reward_accuracy": measured["eval_rewards/accuracies"],
                "pairs_measured": len(dataset),
                # TRL drops text pairs whose prompt alone fills max_length
                "pairs_used": len(trainer.train_dataset)}
    return summarise


def _dpo_trainer_factory(job_parts: dict, rows: list[dict], vision: bool, max_length: int | None):
    def build(args, callbacks):
        from datasets import Dataset
        from trl import DPOTrainer

        from repro.train.common import _trainer_class

        trainer = _trainer_class(DPOTrainer)(
            model=job_parts["model"], ref_model=job_parts["ref"], args=args,
            train_dataset=Dataset.from_list(rows), processing_class=job_parts["processing_class"],
            data_collator=ImageFileCollator(job_parts["processing_class"], max_length) if vision else None,
            callbacks=callbacks)
        trainer.sample_ids = list(trainer.train_dataset["id"])
        return trainer
    return build


def run_dpo(ctx, callbacks=()) -> None:
    """``dpo_stage`` with extra ``TrainerCallback``s."""
    from trl import DPOConfig

    from repro.models.card import read_model_card
    from repro.train.common import TrainJob, quiet_libraries, run_training, work_dir
    from repro.train.mix import load_mixture
    from repro.train.pairs import check_selection, selecting_loader
    from repro.train.trainer_args import check_global_batch, read_params, training_arguments

    quiet_libraries()  # before any model is loaded: no progress bars in the run log
    params = read_params(ctx)  # checked, defaults filled: train/dpo in repro/stages/train.py
    beta, eval_pairs = params["beta"], params["margin_eval_pairs"]
    selection = check_selection(params["pair_selection"])
    model_dir = ctx.input("model")
    card = read_model_card(model_dir, expect=("llava", "causal_lm"))
    selected: dict = {}
    pairs, mixture = load_mixture(ctx, selecting_loader(load_pairs, selection, selected))
    _report_selection(ctx, mixture, selected, selection)
    ctx.seed_everything()
    max_length = params["max_length"]
    with work_dir(ctx.scratch) as work:
        args = training_arguments(params, work / "trainer", ctx.seed, DPOConfig, beta=beta,
                                  max_length=max_length, loss_type=[LOSS_TYPE],
                                  remove_unused_columns=True, precompute_ref_log_probs=False,
                                  per_device_eval_batch_size=params["per_device_train_batch_size"])
        if params["expect_global_batch"] is not None:
            check_global_batch(params, args.world_size, params["expect_global_batch"])
        model, ref, processing, group_of, fix = _load(card, model_dir, params["model_dtype"])
        tokenizer = getattr(processing, "tokenizer", processing)
        rows, vision = build_rows(pairs, card.get("template"), tokenizer, card["architecture"] == "llava",
                                  params["per_device_train_batch_size"])
        too_long = 0
        if vision:
            rows, too_long = drop_long_prompts(rows, processing, max_length)
            if not rows:
                raise InputError(f"params: max_length: {max_length}: every pair's prompt with its "
                                 "image tokens fills it")
        parts = {"model": model, "ref": ref, "processing_class": processing}
        job = TrainJob(model=model, processing_class=processing, samples=[], collator=None,
                       card=dict(card), group_of=group_of, callbacks=list(callbacks),
                       fix_model_files=fix, build_trainer=_dpo_trainer_factory(parts, rows, vision, max_length),
                       summarise=_summary(eval_pairs))
        metrics = run_training(args, job, work, ctx.out, params)
    _record(ctx, card, params, beta, vision, selection, model, group_of, mixture)
    ctx.write_metrics({**metrics, "pairs_total": len(pairs), "pairs_dropped_prompt_too_long": too_long,
                       "pairs_with_image": sum(1 for p in pairs if p.image is not None),
                       "data_sources": mixture["sources"], "beta": beta})


def _report_selection(ctx, mixture: dict, selected: dict, selection: str) -> None:
    """Print the PKU-SafeRLHF pair count and put it in the per-source record."""
    for role, source in mixture["sources"].items():
        counts = selected.get(str(ctx.input(role)))
        if counts is not None:
            source.update(counts, pair_selection=selection)
            print(f"[dpo] {role}: PKU-SafeRLHF pairs kept {counts['pairs_kept']} of "
                  f"{counts['pairs_read']} (pair_selection {selection})", flush=True)


def _record(ctx, card, params, beta, vision, selection, model, group_of, mixture) -> None:
    from repro.train.common import protocol_record
    from repro.train.pairs import PAIR_SELECTIONS

    max_length = params["max_length"]
    truncation = (f"keep_start at max_length {max_length}; image pairs whose prompt (image tokens "
                  "included) reaches it are dropped" if vision else f"keep_start at max_length {max_length}")
    protocol_record(ctx, card.get("template"), params, {
        "trainer": "trl.DPOTrainer (prompt = the template's generation prompt; chosen/rejected = "
                   "assistant texts + eos)",
        "label_mask": "TRL completion mask: chosen/rejected tokens (assistant text + eos)"
                      + ("; completions tokenised in context (after their prompt)" if vision else ""),
        "truncation": truncation,
        "dpo": {"beta": beta, "loss_type": LOSS_TYPE, "reference_model": "frozen input model",
                "max_length": max_length, "truncation": "keep_start"},
        "pair_selection": {"rule": selection, "meaning": PAIR_SELECTIONS[selection]},
        "trained_modules": sorted({group_of(n) for n, p in model.named_parameters() if p.requires_grad}),
        **({"data_mixing": mixture["rule"]} if "rule" in mixture else {}),
    })


def dpo_stage(ctx) -> None:
    """Stage ``train/dpo`` (param ``launch``: run on several processes, see launch.py)."""
    from repro.train.launch import maybe_launch

    if not maybe_launch(ctx):
        run_dpo(ctx)
