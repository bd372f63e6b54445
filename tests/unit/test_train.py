"""Training: label masks, image-token expansion, freezing per mode, determinism and resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from repro.data.records import ConversationSample
from repro.errors import InputError
from repro.pipeline.context import StageContext

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 220)}
TINY = {"learning_rate": 1e-3, "max_steps": 4, "per_device_train_batch_size": 2,
        "max_length": 128, "lr_scheduler_type": "linear", "warmup_ratio": 0.0}


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory) -> Path:
    from repro.models.tiny import make_tiny_llava

    out = tmp_path_factory.mktemp("llava")
    # no system prompt: these tests are about masks and mechanics, kept short for the tiny tokenizer
    make_tiny_llava(out, seed=0, template="llama2_nosys")
    return out


@pytest.fixture(scope="module")
def llava(llava_dir):
    from repro.models.llava import load_llava

    return load_llava(llava_dir)


@pytest.fixture(scope="module")
def instruct_dir(tmp_path_factory) -> Path:
    """A LLaVA-Instruct-format dataset: coloured squares (with images) plus text-only chats."""
    from PIL import Image

    root = tmp_path_factory.mktemp("instruct")
    (root / "img").mkdir()
    rows = []
    for i in range(12):
        name = list(COLOURS)[i % 3]
        Image.new("RGB", (40 + i, 30), COLOURS[name]).save(root / "img" / f"{i}.png")
        rows.append({"id": f"im{i}", "image": f"img/{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the picture?"},
            {"from": "gpt", "value": f"The picture is {name}."}]})
    for i in range(4):
        rows.append({"id": f"tx{i}", "conversations": [
            {"from": "human", "value": "Say hello."}, {"from": "gpt", "value": "Hello there."}]})
    (root / "llava_v1_5_mix665k.json").write_text(json.dumps(rows))
    (root / "DATASET.json").write_text(json.dumps({"dataset": "llava_instruct", "source": "local"}))
    return root


def make_ctx(tmp: Path, kind: str, params: dict, inputs: dict, scratch: Path | None = None,
             seed: int = 0) -> StageContext:
    out = tmp / f"out{len(list(tmp.glob('out*')))}"
    out.mkdir()
    return StageContext(experiment="t", name="train", kind=kind, params=dict(params),
                        inputs=inputs, out=out, seed=seed, profile="tiny", scratch=scratch)


def tensors(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def labelled_spans(sample, tokenizer) -> list[str]:
    spans, current = [], []
    for tok, label in zip(sample.input_ids, sample.labels):
        if label != -100:
            assert label == tok
            current.append(tok)
        elif current:
            spans.append(tokenizer.decode(current)); current = []
    if current:
        spans.append(tokenizer.decode(current))
    return spans


# --- tokenisation --------------------------------------------------------------------------

def test_label_mask_is_exactly_the_assistant_spans(llava, tmp_path):
    from repro.train.tokenize import image_tokens_of, tokenize_samples

    _, processor = llava
    sample = ConversationSample(id="a", turns=(("user", "What colour?"), ("assistant", "Red."),
                                               ("user", "Sure?"), ("assistant", "Yes, red.")))
    (enc,), stats = tokenize_samples([sample], processor.tokenizer, "llama2", 256,
                                     image_tokens_of(processor))
    assert labelled_spans(enc, processor.tokenizer) == [" Red. </s>", " Yes, red. </s>"]
    # the default llama2 template carries LLaVA's llava_llama_2 system prompt in the first [INST]
    from repro.models.templates import SYSTEM_PROMPTS

    assert processor.tokenizer.decode(enc.input_ids) == (
        f"<s>[INST] <<SYS>>\n{SYSTEM_PROMPTS['llava']}\n<</SYS>>\n\nWhat colour? [/INST] Red. </s>"
        "<s>[INST] Sure? [/INST] Yes, red. </s>")
    (bare,), _ = tokenize_samples([sample], processor.tokenizer, "llama2_nosys", 256)
    assert processor.tokenizer.decode(bare.input_ids) == (
        "<s>[INST] What colour? [/INST] Red. </s><s>[INST] Sure? [/INST] Yes, red. </s>")
    # the tokens before the first label are exactly what evaluation feeds for the first prompt
    from repro.models.templates import prompt_text

    first = next(i for i, label in enumerate(enc.labels) if label != -100)
    assert enc.input_ids[:first] == processor.tokenizer(
        prompt_text("llama2", "What colour?"), add_special_tokens=False)["input_ids"]
    (enc,), _ = tokenize_samples([sample], processor.tokenizer, "tulu", 256)
    assert labelled_spans(enc, processor.tokenizer) == ["Red.</s>", "Yes, red.</s>"]
    assert stats["samples_used"] == 1 and stats["samples_dropped"] == 0


def test_image_tokens_expanded_never_truncated(llava, instruct_dir):
    from repro.train.tokenize import DROP_IMAGE_TRUNCATED, image_tokens_of, tokenize_samples
    from repro.train.vl_adapt import check_image_tokens

    model, processor = llava
    it = image_tokens_of(processor)
    assert it.count == model.config.image_seq_length == 16
    check_image_tokens(model, processor, it.count)
    image = instruct_dir / "img" / "0.png"
    sample = ConversationSample(id="i", image=image, turns=(
        ("user", "Colour?"), ("assistant", "Red."), ("user", "Again? " * 20), ("assistant", "Red.")))
    (enc,), stats = tokenize_samples([sample], processor.tokenizer, "llama2_nosys", 40, it)
    assert enc.input_ids.count(it.token_id) == 16 and enc.truncated and len(enc.input_ids) == 40
    assert labelled_spans(enc, processor.tokenizer) == [" Red. </s>"]
    assert stats["samples_truncated"] == 1
    # the 16 image tokens start after "<s>[INST] ": a limit inside them drops the sample
    kept, stats = tokenize_samples([sample, ConversationSample(id="t", turns=(("user", "Hi"), ("assistant", "Hello.")))],
                                   processor.tokenizer, "llama2_nosys", 12, it)
    assert [s.id for s in kept] == ["t"]
    assert stats["samples_dropped_by_reason"] == {DROP_IMAGE_TRUNCATED: 1}
    with pytest.raises(InputError, match="no usable sample"):
        tokenize_samples([sample], processor.tokenizer, "llama2_nosys", 12, it)


def test_mixed_batch_runs_and_bad_samples_are_input_errors(llava, instruct_dir):
    from repro.train.collate import ConversationCollator
    from repro.train.tokenize import image_tokens_of, tokenize_samples

    model, processor = llava
    it = image_tokens_of(processor)
    with_image = ConversationSample(id="i", image=instruct_dir / "img" / "1.png",
                                    turns=(("user", "<image>\nColour?"), ("assistant", "Green.")))
    text = ConversationSample(id="t", turns=(("user", "Hi"), ("assistant", "Hello.")))
    kept, _ = tokenize_samples([text, with_image], processor.tokenizer, "llama2_nosys", 128, it)
    batch = ConversationCollator(processor.tokenizer.pad_token_id, processor.image_processor)(kept)
    assert batch["pixel_values"].shape[0] == 1 and batch["attention_mask"][0].sum() < batch["input_ids"].shape[1]
    assert model(**batch).loss.isfinite()
    with pytest.raises(InputError, match="text-only"):
        tokenize_samples([with_image], processor.tokenizer, "llama2_nosys", 128)
    orphan = ConversationSample(id="o", turns=(("user", "<image>\nColour?"), ("assistant", "Red.")))
    with pytest.raises(InputError, match="sample 'o'"):
        tokenize_samples([orphan], processor.tokenizer, "llama2_nosys", 128, it)


def test_check_global_batch():
    from repro.train.trainer_args import check_global_batch

    params = {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 1}
    assert check_global_batch(params, 4, 64) == 64
    with pytest.raises(InputError, match=r"recipe says 64.*16 x world size 1 x .* 1 = 16"):
        check_global_batch(params, 1, 64)


# --- stages ----------------------------------------------------------------------------------

def test_stage1_trains_only_the_projector(llava_dir, instruct_dir, tmp_path):
    from repro.train.vl_adapt import run_stage

    ctx = make_ctx(tmp_path, "train/vl_adapt", {**TINY, "mode": "pretrain", "save_steps": 1,
                                                "save_total_limit": 2},
                   {"model": llava_dir, "data": instruct_dir})
    run_stage(ctx)
    before, after = tensors(llava_dir), tensors(ctx.out)
    assert before.keys() == after.keys()
    changed = {k for k in before if not before[k].equal(after[k])}
    assert changed and all(k.startswith("multi_modal_projector.") for k in changed)
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    assert metrics["trainable_parameters"]["vision_tower"]["trainable"] == 0
    assert metrics["trainable_parameters"]["language_model"]["trainable"] == 0
    assert metrics["steps"] == 4 and metrics["effective_global_batch"] == 2
    assert metrics["kept_checkpoints"] == [3, 4]  # save_total_limit rotates the kept copies
    assert metrics["samples_used"] == 12  # text-only chats cannot train the projector
    assert metrics["samples_dropped_by_reason"] == {"text_only_when_image_required": 4}
    assert ctx.protocol_choices["chat_template"]["name"] == "llama2_nosys"


def test_stage2_lowers_loss_keeps_vision_tower_and_is_deterministic(llava_dir, instruct_dir, tmp_path):
    from repro.models.llava import load_llava
    from repro.train.vl_adapt import run_stage

    params = {**TINY, "mode": "finetune", "max_steps": 20, "save_steps": 10}
    runs = []
    for _ in range(2):
        ctx = make_ctx(tmp_path, "train/vl_adapt", params, {"model": llava_dir, "data": instruct_dir})
        run_stage(ctx)
        runs.append(ctx.out)
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["last_train_loss"] < 0.85 * metrics["first_train_loss"]
    before, after = tensors(llava_dir), tensors(runs[0])
    assert all(before[k].equal(after[k]) for k in before if "vision_tower" in k)
    assert any(not before[k].equal(after[k]) for k in before if k.startswith("language_model"))
    files = sorted(p.relative_to(runs[0]).as_posix() for p in runs[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(runs[1]).as_posix() for p in runs[1].rglob("*") if p.is_file())
    assert all(sha(runs[0] / f) == sha(runs[1] / f) for f in files)  # byte-identical outputs
    assert not any(name.endswith(("trainer_state.json", "training_args.bin")) for name in files)
    assert not any('": "/' in (runs[0] / f).read_text() for f in files if f.endswith(".json"))  # no abs paths
    assert metrics["kept_checkpoints"] == [10, 20] and metrics["samples_used"] == 16
    load_llava(runs[0] / "checkpoints" / "step-10")  # a kept checkpoint is a loadable model dir
    assert json.loads((runs[0] / "checkpoints" / "step-10" / "repro_model.json").read_text())["template"] == "llama2_nosys"


def test_interrupted_run_resumes_to_the_same_weights(llava_dir, instruct_dir, tmp_path):
    from transformers import TrainerCallback

    from repro.train.vl_adapt import run_vl_adapt

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt("simulated crash")

    params = {**TINY, "mode": "finetune", "save_steps": 2}
    inputs = {"model": llava_dir, "data": instruct_dir}
    whole = make_ctx(tmp_path, "train/vl_adapt", params, inputs)
    run_vl_adapt(whole)
    scratch = tmp_path / "scratch"
    class Steps(TrainerCallback):
        seen: list[int] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.seen.append(state.global_step)

    with pytest.raises(KeyboardInterrupt):
        run_vl_adapt(make_ctx(tmp_path, "train/vl_adapt", params, inputs, scratch=scratch), [Crash()])
    resumed = make_ctx(tmp_path, "train/vl_adapt", params, inputs, scratch=scratch)
    run_vl_adapt(resumed, [Steps()])
    assert Steps.seen == [3, 4]  # it resumed from the step-2 checkpoint
    for rel in ("model.safetensors", "checkpoints/step-2/model.safetensors",
                "checkpoints/step-4/model.safetensors", "metrics.json"):
        assert sha(whole.out / rel) == sha(resumed.out / rel), rel
    # a rerun over a finished scratch (e.g. a crash while publishing) trains nothing more
    Steps.seen.clear()
    again = make_ctx(tmp_path, "train/vl_adapt", params, inputs, scratch=scratch)
    run_vl_adapt(again, [Steps()])
    assert Steps.seen == [] and sha(again.out / "metrics.json") == sha(whole.out / "metrics.json")
    assert sha(again.out / "model.safetensors") == sha(whole.out / "model.safetensors")


def test_data_order_digest_is_the_consumed_order(llava_dir, instruct_dir, tmp_path):
    from repro.train.collate import ConversationCollator
    from repro.train.common import order_digest
    from repro.train.vl_adapt import run_vl_adapt

    seen: list[str] = []
    original = ConversationCollator.__call__

    def spy(self, batch):
        seen.extend(s.id for s in batch)
        return original(self, batch)

    ConversationCollator.__call__ = spy
    try:
        ctx = make_ctx(tmp_path, "train/vl_adapt", {**TINY, "mode": "finetune", "max_steps": 10,
                                                    "gradient_accumulation_steps": 2},
                       {"model": llava_dir, "data": instruct_dir})
        run_vl_adapt(ctx)
    finally:
        ConversationCollator.__call__ = original
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    assert metrics["effective_global_batch"] == 4 and metrics["data_order_samples"] == 40
    # the Trainer may collate one batch ahead of the last step; only consumed ones count
    assert order_digest(seen[:40]) == metrics["data_order_sha256"] and len(set(seen[:16])) == 16


def test_text_sft_on_causal_lm(tmp_path):
    from repro.models.tiny import build_tiny_llm
    from repro.train.sft import text_sft_stage
    from repro.train.vl_adapt import run_stage

    llm = tmp_path / "llm"
    build_tiny_llm(llm, ["[INST] Say hello. [/INST] Hello there. </s>"] * 3, seed=0, template="llama2_nosys")
    data = tmp_path / "chat"
    data.mkdir()
    rows = [{"id": f"c{i}", "conversations": [{"from": "human", "value": f"Say hello {i}."},
                                               {"from": "gpt", "value": "Hello there."}]} for i in range(8)]
    (data / "aligned_chat.json").write_text(json.dumps(rows))
    (data / "DATASET.json").write_text(json.dumps({"dataset": "aligned_chat", "source": "local"}))
    ctx = make_ctx(tmp_path, "train/text_sft", {**TINY, "max_steps": 12}, {"model": llm, "data": data})
    text_sft_stage(ctx)
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    assert metrics["last_train_loss"] < metrics["first_train_loss"]
    assert json.loads((ctx.out / "repro_model.json").read_text())["architecture"] == "causal_lm"
    assert (ctx.out / "tokenizer.json").is_file() and not (ctx.out / "checkpoints").exists()
    with pytest.raises(InputError, match="architecture: expected 'llava'"):
        run_stage(make_ctx(tmp_path, "train/vl_adapt", {"mode": "sft"}, {"model": llm, "data": data}))
    with pytest.raises(InputError, match="mode: 'bogus'"):
        run_stage(make_ctx(tmp_path, "train/vl_adapt", {"mode": "bogus"}, {"model": llm, "data": data}))


def test_params_are_checked(tmp_path):
    from repro.train.trainer_args import read_params, training_arguments

    def params(**kw):
        return read_params(make_ctx(tmp_path, "train/text_sft", kw, {}))

    assert params(bf16=False, learning_rate=2e-5)["learning_rate"] == 2e-5
    # the kind's one validator (repro/stages/train.py), the same the loader runs
    for bad, match in [({"deepspeed": "zero9"}, "deepspeed"), ({"warmup_ratio": 1.0}, "warmup_ratio"),
                       ({"per_device_train_batch_size": 0}, "per_device_train_batch_size"),
                       ({"max_steps": 2.5}, "max_steps"), ({"bf16": "false"}, "bf16"),
                       ({"learning_rate": "2e-5"}, "learning_rate"), ({"lr_scheduler_type": "bogus"}, "lr_scheduler_type"),
                       ({"learnig_rate": 0.1}, "did you mean 'learning_rate'")]:
        with pytest.raises(InputError, match=match):
            params(**bad)
    args = training_arguments(params(warmup_ratio=0.03, save_steps=200), tmp_path / "t", 7)
    assert (args.warmup_steps, args.seed, args.data_seed, args.save_steps) == (0.03, 7, 7, 200)
