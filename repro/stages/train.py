"""Training stages. Their params keep the names of transformers' ``TrainingArguments`` and TRL's
configs (STYLE: a stage passes its params straight through); ``source`` says where each default
comes from. ``repro/train/trainer_args.py`` reads them resolved from here."""

from pathlib import Path

from repro.stages.kind import REQUIRED, Kind, P

HF = "transformers:TrainingArguments"
LLAVA = "LLaVA scripts/v1_5/finetune.sh"
LAUNCH_DIR = Path(__file__).resolve().parents[2] / "configs" / "launch"
# transformers.SchedulerType / OptimizerNames values the kit allows (a test checks them)
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adafactor", "sgd")


def launch_configs() -> list[str]:
    """The accelerate configs a ``launch`` param may name (configs/launch/accelerate_*.yaml)."""
    return sorted(p.stem for p in LAUNCH_DIR.glob("accelerate_*.yaml"))


def training(**defaults) -> tuple:
    """The params every training kind reads; ``defaults`` replace declared defaults (by name)."""
    params = (
        P("learning_rate", float, 2e-5, ">0", source=LLAVA),
        P("num_train_epochs", float, 1.0, ">0", source=LLAVA),
        P("max_steps", int, -1, ">=-1", source=HF, doc="> 0 overrides num_train_epochs"),
        P("per_device_train_batch_size", int, 1, ">=1", source="kit (recipes set it)"),
        P("gradient_accumulation_steps", int, 1, ">=1", source=HF),
        P("max_length", int, 2048, ">=1", source="LLaVA model_max_length"),
        P("warmup_ratio", float, 0.0, "[0,1)", source="kit (transformers 5: warmup_steps 0)"),
        P("lr_scheduler_type", str, "cosine", source=LLAVA, choices=SCHEDULERS),
        P("weight_decay", float, 0.0, ">=0", source=HF),
        P("save_steps", int, None, ">=1", doc="keep a checkpoint every N steps (figure2); unset: none"),
        P("save_total_limit", int, None, ">=1", source=HF),
        P("bf16", bool, False, source=HF),
        P("gradient_checkpointing", bool, False, source=HF),
        P("deepspeed", str, None, choices=("zero2", "zero3"), doc="configs/launch/<name>.json"),
        P("optim", str, "adamw_torch", source="kit (transformers 5 default: adamw_torch_fused)",
          choices=OPTIMIZERS),
        P("max_grad_norm", float, 1.0, ">=0", source=HF),
        P("expect_global_batch", int, None, ">=1", doc="fail unless per-device x world x accumulation equals it"),
        P("model_dtype", str, "float32", choices=("float32", "bfloat16", "float16"),
          doc="weights load in this dtype; bf16 autocast keeps fp32 master weights"),
        P("log_every", int, 0, ">=0", doc="a progress line every N steps (not in the key)"),
        P("launch", str, choices="repro.stages.train:launch_configs", doc="run on several processes"),
        P("split", (str, dict), doc="a split name, or one per data role"),
    )
    unknown = set(defaults) - {p.name for p in params}
    if unknown:
        raise ValueError(f"training(): unknown params {sorted(unknown)}")
    return tuple(p if p.name not in defaults else P(p.name, p.types, defaults[p.name][0], p.bounds,
                                                    source=defaults[p.name][1], choices=p.choices, doc=p.doc)
                 for p in params)


PAPER_DPO = "paper (shared/PAPER.md, safety DPO)"
BY_MODE = "LLaVA's scripts per mode (repro/train/vl_adapt.py DATA_DEFAULTS)"
_TRAIN = dict(image="train", gpus="launch", disk_gb=13.5, cost="train")

KINDS = (
    Kind("train/text_sft", "repro.train.sft:text_sft_stage", **_TRAIN,
         doc="SFT of a causal LM (the tiny profile's aligned LLMs)", params=training()),
    Kind("train/vl_adapt", "repro.train.vl_adapt:run_stage", **_TRAIN,
         doc="LLaVA training: stage 1 (pretrain), stage 2 (finetune), safety SFT and MTL (sft)",
         params=training() + (
             P("mode", str, REQUIRED, choices=("pretrain", "finetune", "sft"),
               doc="which modules train (repro.train.vl_adapt.GROUPS_TRAINED)"),
             P("data_roles", list, item=str, doc="default: data, data_2, data_3, ..."),
             # LLaVA's own data handling (docs/protocol-choices.md); unset: the mode's default in
             # repro.train.vl_adapt.DATA_DEFAULTS (pretrain: plain/square, finetune and sft: chat/pad)
             P("conversation_format", str, choices=("plain", "chat"), source=BY_MODE,
               doc="plain: image + caption + newline (LLaVA preprocess_plain); chat: the LLM's template"),
             P("image_token_placement", str, choices=("first", "as_is"), source=BY_MODE,
               doc="first: <image>\\n opens the first human turn (LLaVA preprocess_multimodal)"),
             P("image_aspect_ratio", str, choices=("square", "pad"), source=BY_MODE,
               doc="square: CLIP resize + centre crop; pad: pad to square with the mean colour"),
             P("group_by_modality_length", bool, source=BY_MODE,
               doc="each batch all-image or all-text (LLaVA's LengthGroupedSampler)"),
             P("keep_initial_checkpoint", bool, False, doc="keep checkpoints/step-0 (the input model)"),
             P("keep_final_checkpoint", bool, False, doc="keep checkpoints/step-<last> (the output)"),
         )),
    Kind("train/dpo", "repro.train.dpo:dpo_stage", **_TRAIN, doc="safety DPO with TRL's DPOTrainer",
         params=training(learning_rate=(5e-7, PAPER_DPO), lr_scheduler_type=("linear", PAPER_DPO),
                         warmup_ratio=(0.1, PAPER_DPO), num_train_epochs=(3.0, PAPER_DPO)) + (
             P("beta", float, 0.1, ">0", source="trl:DPOConfig"),
             P("margin_eval_pairs", int, 64, ">=1", doc="pairs whose reward margin is measured after training"),
             P("pair_selection", str, "safe_vs_unsafe", choices=("safe_vs_unsafe", "safer", "better"),
               source="repro.train.pairs:DEFAULT_PAIR_SELECTION", doc="PKU-SafeRLHF pairs kept, chosen = the safe one"),
             P("data_roles", list, item=str),
         )),
    Kind("train/filter", "repro.train.filter:filter_stage", image="train", gpus="one", disk_gb=1.0,
         cost="filter", doc="a dataset with its unsafe samples removed (claim 2)", params=(
             P("classifiers", list, ["keyword"], item=str, source="kit (repro/train/filter.py)",
               choices="repro.train.filter:TEXT_CLASSIFIERS"),
             P("keywords", list, item=str, source="kit (unset: repro/train/filter.py DEFAULT_KEYWORDS)"),
             P("judge_parts", list, ["user", "response"], item=str, choices=("user", "response"),
               source="kit (repro/train/classifiers.py TEXT_PARTS)", doc="which turns the text classifiers judge"),
             P("image_classifier", str, choices="repro.train.classifiers:IMAGE_CLASSIFIERS"),
             P("backend", str, "hf", choices="repro.evaluate.backends:BACKENDS"),
             P("batch_size", int, 8, ">=1"),
             P("backend_options", dict),
             P("tensor_parallel_size", int, 1, ">=1"),
         )),
)
