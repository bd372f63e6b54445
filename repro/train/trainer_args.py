"""Training params (Hugging Face ``TrainingArguments`` names) -> ``TrainingArguments``.

Params are read with the HF names so recipes read like the paper's and like LLaVA's scripts.
``warmup_ratio`` is kept as a param (the paper states a ratio) and passed as a fractional
``warmup_steps``, which transformers 5 interprets as a ratio of the total steps.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

from repro.errors import InputError

LAUNCH_DIR = Path(__file__).resolve().parents[2] / "configs" / "launch"
RESUME_CHECKPOINTS_KEPT = 2  # Trainer's own (optimizer-bearing) checkpoints: the latest complete one survives a crash mid-save


def read_params(ctx, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The training params of a stage, every declared one with its default filled in.

    Names, types, ranges and defaults are declared once, with the stage kind
    (``repro/stages/train.py``), and checked there when the experiment loads; ``resolve`` runs
    the same check again for a context built by hand. ``defaults`` replace declared defaults."""
    from repro.stages import describe

    kind = describe(ctx.kind)
    params = kind.resolve(ctx.params, f"stage {ctx.name!r}")
    for name, value in (defaults or {}).items():
        if ctx.params.get(name) is None:
            params[name] = value
    return params


def effective_global_batch(params: dict[str, Any], world_size: int) -> int:
    return params["per_device_train_batch_size"] * world_size * params["gradient_accumulation_steps"]


def check_global_batch(params: dict[str, Any], world_size: int, expected: int) -> int:
    """Raise if per-device batch x world size x accumulation is not the recipe's global batch."""
    got = effective_global_batch(params, world_size)
    if got != int(expected):
        raise InputError(
            f"params: expect_global_batch: recipe says {expected}, but per_device_train_batch_size "
            f"{params['per_device_train_batch_size']} x world size {world_size} x "
            f"gradient_accumulation_steps {params['gradient_accumulation_steps']} = {got}")
    return got


def deepspeed_config(name: str | None) -> str | None:
    """Path of ``configs/launch/<name>.json``; a clear error when DeepSpeed is not installed."""
    if name is None:
        return None
    if find_spec("deepspeed") is None:
        raise InputError(f"params: deepspeed: {name!r} needs the deepspeed package, not installed")
    path = LAUNCH_DIR / f"{name}.json"
    if not path.is_file():
        raise InputError(f"{path}: missing DeepSpeed config for params.deepspeed {name!r}")
    return str(path)


def training_arguments(params: dict[str, Any], output_dir: Path, seed: int, config_class=None,
                       **extra: Any):
    """Build ``TrainingArguments`` (before the model is loaded: ZeRO-3 needs that order).

    ``config_class`` (e.g. TRL's ``DPOConfig``) and ``extra`` fields serve other trainers."""
    try:
        return _arguments(params, output_dir, seed, config_class, extra)
    except ValueError as exc:  # e.g. an unknown lr_scheduler_type or optim
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"params: {first}") from None


def _arguments(params: dict[str, Any], output_dir: Path, seed: int, config_class, extra):
    import torch
    from transformers import TrainingArguments

    save_steps = params["save_steps"]
    gc = params["gradient_checkpointing"]
    kwargs = dict(
        output_dir=str(output_dir),
        seed=seed,
        data_seed=seed,
        learning_rate=params["learning_rate"],
        num_train_epochs=params["num_train_epochs"],
        max_steps=params["max_steps"],
        per_device_train_batch_size=params["per_device_train_batch_size"],
        gradient_accumulation_steps=params["gradient_accumulation_steps"],
        warmup_steps=params["warmup_ratio"],
        lr_scheduler_type=params["lr_scheduler_type"],
        weight_decay=params["weight_decay"],
        max_grad_norm=params["max_grad_norm"],
        optim=params["optim"],
        bf16=params["bf16"],
        use_cpu=not torch.cuda.is_available(),  # explicit, so bf16 autocast is allowed on CPU
        gradient_checkpointing=gc,
        # non-reentrant checkpointing still back-propagates when the input embeddings are frozen
        gradient_checkpointing_kwargs={"use_reentrant": False} if gc else None,
        deepspeed=deepspeed_config(params["deepspeed"]),
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        save_total_limit=RESUME_CHECKPOINTS_KEPT,
        logging_steps=1,
        logging_nan_inf_filter=False,  # a diverged run must show its NaN loss (and fail the stage)
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,  # our collator already returns exactly the model inputs
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),  # pinning is a no-op warning on CPU
    )
    args = (config_class or TrainingArguments)(**{**kwargs, **extra})
    if args.deepspeed and not torch.cuda.is_available() and torch.distributed.is_initialized():
        # CPU ranks (torchrun, gloo): accelerate with use_cpu sets up torch.distributed but never
        # DeepSpeed's comm (on GPU it does), so ZeRO-3's zero.Init inside from_pretrained would
        # assume world size 1 and reject the batch size; let DeepSpeed adopt the gloo group now
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    return args
