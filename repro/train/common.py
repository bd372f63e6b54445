"""The training driver shared by ``train/text_sft`` and ``train/vl_adapt``.

We use transformers' ``Trainer`` rather than TRL's ``SFTTrainer``: our inputs are already
tokenised with the label mask taken from the recorded chat template (``repro.train.tokenize``),
which SFTTrainer would re-derive from its own chat-template handling; ``Trainer`` adds no
processing of its own, so the mask the model trains on is exactly the one we test.

Layout: the Trainer's resumable checkpoints (optimizer, RNG, scheduler) live in
``<work>/trainer/checkpoint-N`` and model-only copies in ``<work>/exports/step-N``, where
``<work>`` is ``ctx.scratch`` (survives a crash, so a rerun resumes) or a temporary directory.
The stage output gets the final model and ``checkpoints/step-N`` copied from the exports; no
trainer state (absolute paths, timings) reaches it.

Resume uses only state that was completely and verifiably written: after each checkpoint (and
its export) is saved, a completion record with the digests of its files is written last, and a
rerun resumes from the newest checkpoint whose record verifies (``repro/train/resume.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from repro.errors import InputError
from repro.models.card import write_model_card
from repro.models.saving import save_processing
from repro.train.collate import ConversationCollator, TokenizedDataset
from repro.train.resume import latest_checkpoint, record_complete
from repro.train.tokenize import TokenizedSample

log = logging.getLogger("repro.train")
MODEL_FILES = re.compile(r"^(config\.json|generation_config\.json|model.*\.safetensors(\.index\.json)?)$")


@dataclass
class TrainJob:
    model: Any
    processing_class: Any  # LlavaProcessor or tokenizer, saved beside every model copy
    samples: list[TokenizedSample]
    collator: ConversationCollator
    card: dict[str, Any]  # repro_model.json of the output (same template as the input)
    group_of: Callable[[str], str]  # parameter name -> module group, for the metrics
    callbacks: list = field(default_factory=list)  # extra TrainerCallbacks (tests interrupt with one)
    # rewrites saved model files in place (LLaVA: the llava-hf/vLLM key layout); None = as saved
    fix_model_files: Callable[[Path], Any] | None = None
    # builds the Trainer (DPO passes TRL's); None = our Trainer over ``samples`` + ``collator``
    build_trainer: Callable[..., Any] | None = None
    # extra metrics from the trained Trainer (DPO: reward margins), before the output is written
    summarise: Callable[[Any], dict[str, Any]] | None = None


@contextmanager
def work_dir(scratch: Path | None):
    """``ctx.scratch`` when the runner gives one (resumable); otherwise a throwaway directory."""
    if scratch is not None:
        Path(scratch).mkdir(parents=True, exist_ok=True)
        yield Path(scratch)
        return
    with tempfile.TemporaryDirectory(prefix="repro-train-") as tmp:
        yield Path(tmp)


def save_model_dir(dst: Path, job: TrainJob, model_files_from: Path | None = None) -> None:
    """A loadable HF directory: model files (copied or saved), processor/tokenizer, card."""
    dst.mkdir(parents=True, exist_ok=True)
    if model_files_from is not None:
        for f in sorted(model_files_from.iterdir()):
            if MODEL_FILES.match(f.name):
                shutil.copyfile(f, dst / f.name)
        if job.fix_model_files is not None:
            job.fix_model_files(dst)
        scrub_config(dst)
    save_processing(job.processing_class, dst)
    write_model_card(dst, **job.card)


def scrub_config(model_dir: Path) -> None:
    """Drop ``_name_or_path`` (at any depth) from config.json: it holds the absolute path the
    parts were loaded from, which must not reach a deterministic output."""
    path = model_dir / "config.json"

    def scrub(obj):
        if isinstance(obj, dict):
            return {k: scrub(v) for k, v in obj.items() if k != "_name_or_path"}
        return [scrub(v) for v in obj] if isinstance(obj, list) else obj

    path.write_text(json.dumps(scrub(json.loads(path.read_text())), indent=2, sort_keys=True) + "\n")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # checkpoints of a 7B model are large; a hard link costs nothing
    except OSError:
        shutil.copyfile(src, dst)


def _export_callback(job: TrainJob, export_dir: Path, save_steps: int | None, keep: int | None,
                     exports: dict[str, dict[str, str]]):
    from transformers import TrainerCallback

    from repro.provenance.digest import digest_tree

    class ExportCheckpoints(TrainerCallback):
        """Copy each kept checkpoint's model into ``exports/step-N`` (atomically, via rename),
        then record the checkpoint as complete (``COMPLETE``); ``exports``: the kept exports,
        {"step-N": {file: sha256}}, the ones ``_write_output`` publishes."""

        def __init__(self) -> None:
            self.exports = dict(exports)

        def on_save(self, args, state, control, **kwargs):
            step = state.global_step
            if not state.is_world_process_zero:
                return
            # Trainer also saves at the last step; only multiples of save_steps are "kept" ones
            if save_steps and step % save_steps == 0:
                tmp = export_dir / f".step-{step}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                save_model_dir(tmp, job, Path(args.output_dir) / f"checkpoint-{step}")
                final = export_dir / f"step-{step}"
                shutil.rmtree(final, ignore_errors=True)
                tmp.rename(final)
                self.exports[final.name] = digest_tree(final)
            kept = sorted(self.exports, key=lambda name: int(name[5:]))
            old, kept = (kept[:-keep], kept[-keep:]) if keep else ([], kept)
            self.exports = {name: self.exports[name] for name in kept}
            record_complete(Path(args.output_dir) / f"checkpoint-{step}", self.exports)
            for name in old:  # after the record: a kill before this leaves extras, never gaps
                shutil.rmtree(export_dir / name)

    return ExportCheckpoints()


def _finished(checkpoint: Path) -> bool:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return state.get("max_steps", 0) > 0 and state["global_step"] >= state["max_steps"]


def _trainer_class(base=None):
    from transformers import Trainer

    class StrictResumeTrainer(base or Trainer):
        """Trainer whose resume loads weights through ``from_pretrained``'s key mapping.

        transformers 5 saves LLaVA in the original llava-hf key layout; Trainer's own
        ``_load_from_checkpoint`` then matches no key and (non-strictly) keeps the weights it
        had, so a resumed run would silently continue from the wrong weights.
        """

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            model = model if model is not None else self.model
            fresh, info = type(model).from_pretrained(resume_from_checkpoint, dtype=model.dtype,
                                                      use_safetensors=True, output_loading_info=True)
            bad = {k: sorted(map(str, v))[:3] for k, v in info.items() if v}
            if bad:
                raise InputError(f"{resume_from_checkpoint}: checkpoint keys did not load cleanly: {bad}")
            model.load_state_dict(fresh.state_dict(), strict=True)

    return StrictResumeTrainer


def consumed_order(trainer, steps: int) -> list[int]:
    """Dataset indices in the order the Trainer consumed them for ``steps`` optimizer steps.

    Rebuilt from the Trainer's own (seeded, per-epoch) sampler, grouping batches as its epoch
    loop does, so it also covers batches a resumed run skipped without loading them.
    """
    loader = trainer.get_train_dataloader()
    batcher = loader.batch_sampler
    while hasattr(batcher, "batch_sampler"):
        batcher = batcher.batch_sampler
    sampler = batcher.sampler
    args = trainer.args
    per_batch = args.per_device_train_batch_size * max(1, args.world_size)
    accum = args.gradient_accumulation_steps
    order: list[int] = []
    done, epoch = 0, 0
    while done < steps:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        indices = list(iter(sampler))
        batches = [indices[i:i + per_batch] for i in range(0, len(indices), per_batch)]
        for start in range(0, len(batches), accum):
            if done == steps:
                break
            for batch in batches[start:start + accum]:
                order.extend(batch)
            done += 1
        epoch += 1
    return order


def order_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def trainable_by_group(model, group_of: Callable[[str], str]) -> dict[str, dict[str, int]]:
    groups: dict[str, dict[str, int]] = {}
    for name, p in model.named_parameters():
        n = int(getattr(p, "ds_numel", 0) or p.numel())  # ZeRO-3 partitions report numel 0
        g = groups.setdefault(group_of(name), {"trainable": 0, "frozen": 0})
        g["trainable" if p.requires_grad else "frozen"] += n
    return dict(sorted(groups.items()))


def _loss_summary(log_history: list[dict]) -> dict[str, Any]:
    losses = sorted((e["step"], e["loss"]) for e in log_history if "loss" in e)
    if not losses:
        return {"first_train_loss": None, "last_train_loss": None, "logged_losses": 0}
    return {"first_train_loss": losses[0][1], "last_train_loss": losses[-1][1],
            "logged_losses": len(losses)}


def quiet_libraries() -> None:
    """transformers at warning level, no progress bars (weight loading, TRL's dataset.map)."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_warning()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def quiet_trainer(trainer, log_every: int) -> None:
    """No per-step log dict or progress bar in the run log; one compact line every ``log_every``
    steps instead (0 = none). The log history (metrics) is unchanged: logging_steps stays 1."""
    from transformers import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if log_every > 0:
        trainer.add_callback(_log_every_callback(log_every))


def _log_every_callback(every: int):
    from transformers import TrainerCallback

    keys = ("loss", "rewards/margins", "rewards/accuracies", "learning_rate")

    class LogEvery(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            step = state.global_step
            if not state.is_world_process_zero or not logs or step % every and step != state.max_steps:
                return
            shown = " ".join(f"{k.split('/')[-1]}={logs[k]:.4g}" for k in keys if k in logs)
            if not shown:  # the end-of-training summary and evaluation logs
                return
            print(f"[train] step {step}/{state.max_steps} {shown}", flush=True)

    return LogEvery()


def zero_stage(trainer) -> int | None:
    """The ZeRO stage DeepSpeed ran with, read from the accelerator (None: no DeepSpeed)."""
    state = getattr(getattr(trainer, "accelerator", None), "state", None)
    plugin = getattr(state, "deepspeed_plugin", None)
    return int(plugin.zero_stage) if plugin is not None else None


def run_training(args, job: TrainJob, work: Path, out: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Train (resuming from ``work`` if a checkpoint is there), write ``out``; return metrics."""
    from transformers import TrainerState

    export_dir = work / "exports"
    export_dir.mkdir(parents=True, exist_ok=True)
    resume, exports = latest_checkpoint(Path(args.output_dir), export_dir)
    exporter = _export_callback(job, export_dir, params["save_steps"], params["save_total_limit"], exports)
    callbacks = [exporter, *job.callbacks]
    quiet_libraries()
    if job.build_trainer is not None:
        trainer = job.build_trainer(args, callbacks)
    else:
        trainer = _trainer_class()(
            model=job.model, args=args, train_dataset=TokenizedDataset(job.samples),
            data_collator=job.collator, processing_class=job.processing_class, callbacks=callbacks)
    quiet_trainer(trainer, params.get("log_every") or 0)
    if resume is not None:
        # logged, not in metrics: a resumed run must publish the same bytes as an uninterrupted one
        log.info("resuming from %s", resume.name)
    if resume is not None and _finished(resume):
        # transformers 5 resumed at max_steps still runs one more step; a finished run only reloads
        trainer._load_from_checkpoint(str(resume))
        trainer.state = TrainerState.load_from_json(str(resume / "trainer_state.json"))
    else:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    state = trainer.state
    check_finite(state.log_history, job.model, args.learning_rate)
    metrics = {
        "steps": state.global_step,
        "effective_global_batch": args.per_device_train_batch_size * args.world_size
        * args.gradient_accumulation_steps,
        "world_size": args.world_size,
        "zero_stage": zero_stage(trainer),
        **_loss_summary(state.log_history),
        "trainable_parameters": trainable_by_group(job.model, job.group_of),
    }
    order = consumed_order(trainer, state.global_step)
    if job.summarise is not None:
        metrics.update(job.summarise(trainer))
    ids = getattr(trainer, "sample_ids", None) or [s.id for s in job.samples]
    metrics["data_order_sha256"] = order_digest([ids[i] for i in order])
    metrics["data_order_samples"] = len(order)
    trainer.save_model(str(out))  # every rank: gathering ZeRO-3 shards is collective
    if trainer.is_world_process_zero():
        _write_output(job, export_dir, sorted(exporter.exports), out)
        metrics["kept_checkpoints"] = sorted(int(p.name[5:]) for p in (out / "checkpoints").glob("step-*"))
    return metrics


def check_finite(log_history: list[dict], model, learning_rate: float) -> None:
    """A diverged run (a non-finite loss or weight) fails the stage instead of publishing."""
    import math

    bad = next(((e["step"], e["loss"]) for e in log_history
                if "loss" in e and not math.isfinite(e["loss"])), None)
    if bad is not None:
        raise InputError(f"training: loss: {bad[1]} at step {bad[0]}: the run diverged "
                         f"(params: learning_rate {learning_rate})")
    broken = next((n for n, p in model.named_parameters() if not p.detach().isfinite().all()), None)
    if broken is not None:
        raise InputError(f"training: weights: {broken} is not finite: the run diverged "
                         f"(params: learning_rate {learning_rate})")


def _write_output(job: TrainJob, export_dir: Path, exports: list[str], out: Path) -> None:
    """Finish the saved final model (no trainer state, fixed key layout) and add the kept copies
    (``exports``: those the last completion record lists; leftovers of a failed try are not)."""
    for name in ("training_args.bin",):  # pickled TrainingArguments hold absolute paths
        (out / name).unlink(missing_ok=True)
    if job.fix_model_files is not None:
        job.fix_model_files(out)
    scrub_config(out)
    write_model_card(out, **job.card)
    for step_dir in (export_dir / name for name in exports):
        dst = out / "checkpoints" / step_dir.name
        dst.mkdir(parents=True)
        for f in sorted(step_dir.iterdir()):
            _link_or_copy(f, dst / f.name)


def load_conversations(data_dir: Path, split: str | None) -> list:
    """The dataset's records, which must all be ``ConversationSample``."""
    from repro.data import open_dataset
    from repro.data.records import ConversationSample

    records = open_dataset(data_dir).records(split)
    wrong = next((r for r in records if not isinstance(r, ConversationSample)), None)
    if wrong is not None:
        raise InputError(f"{data_dir}: records: {type(wrong).__name__} found; SFT needs conversations")
    if not records:
        raise InputError(f"{data_dir}: records: none (split {split!r})")
    return records


def protocol_record(ctx, template: str, params: dict[str, Any], extra: dict[str, Any]) -> None:
    from repro.models.templates import get_template
    from repro.train.tokenize import MASK_POLICY, TRUNCATION_POLICY

    ctx.protocol("chat_template", get_template(template).describe())
    ctx.protocol("label_mask", MASK_POLICY)
    ctx.protocol("truncation", TRUNCATION_POLICY)
    ctx.protocol("optimizer", {"optim": params["optim"], "max_grad_norm": params["max_grad_norm"]})
    ctx.protocol("trainer", "transformers.Trainer (masks from the recorded template)")
    for key, value in extra.items():
        ctx.protocol(key, value)

