"""LLaVA's own data handling (haotian-liu/LLaVA llava/train/train.py, llava_trainer.py,
conversation.py): stage 1 in the plain format, <image> placement, stage-1 vs stage-2 image
preprocessing, modality-grouped batches and the LLaMA-2 system prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.data.records import ConversationSample
from repro.errors import InputError
from test_train import TINY, instruct_dir, llava, llava_dir, make_ctx  # noqa: F401,E402  (fixtures)


def _labelled(enc) -> list[int]:
    return [tok for tok, label in zip(enc.input_ids, enc.labels) if label != -100]


def test_stage1_plain_is_image_tokens_caption_newline_with_only_the_caption_labelled(llava, instruct_dir):
    from repro.train.tokenize import image_tokens_of, tokenize_samples

    _, processor = llava
    tok = processor.tokenizer
    it = image_tokens_of(processor)
    sample = ConversationSample(id="p", image=instruct_dir / "img" / "0.png", turns=(
        ("user", "Give a short caption.\n<image>"), ("assistant", "A red square.")))
    (enc,), stats = tokenize_samples([sample], tok, "llama2", 256, it, conversation_format="plain")
    caption = tok("A red square.\n", add_special_tokens=False)["input_ids"]
    # bos, the image tokens, the caption and LLaVA's plain separator "\n": no template, no instruction
    assert enc.input_ids == [tok.bos_token_id] + [it.token_id] * it.count + caption
    assert enc.labels == [-100] * (1 + it.count) + caption
    assert tok.decode(_labelled(enc)) == "A red square.\n" and tok.eos_token_id not in enc.input_ids
    assert stats["image_token_moved"] == 0
    # the chat format of the same record has the template, the instruction and an eos
    (chat,), _ = tokenize_samples([sample], tok, "llama2", 256, it)
    assert "Give a short caption." in tok.decode(chat.input_ids) and tok.eos_token_id in _labelled(chat)
    with pytest.raises(InputError, match="plain needs one human turn"):
        tokenize_samples([ConversationSample(id="m", image=sample.image, turns=sample.turns * 2)], tok,
                         "llama2", 256, it, conversation_format="plain")


def test_every_stage2_sample_starts_with_the_image(llava, instruct_dir):
    from repro.models.templates import prompt_text
    from repro.train.tokenize import image_tokens_of, place_image_token, tokenize_samples

    _, processor = llava
    it = image_tokens_of(processor)
    image = instruct_dir / "img" / "1.png"
    records = [ConversationSample(id="after", image=image, turns=(("user", "What colour?\n<image>"), ("assistant", "Red."))),
               ConversationSample(id="glued", image=image, turns=(("user", "<image>What colour?"), ("assistant", "Red."))),
               ConversationSample(id="first", image=image, turns=(("user", "<image>\nWhat colour?"), ("assistant", "Red."))),
               ConversationSample(id="text", turns=(("user", "Hi"), ("assistant", "Hello.")))]
    assert place_image_token([("user", "What colour?\n<image>")]) == ([("user", "<image>\nWhat colour?")], True)
    for template in ("llama2_nosys", "tulu"):
        kept, stats = tokenize_samples(records, processor.tokenizer, template, 256, it, image_token_placement="first")
        assert stats["image_token_moved"] == 2  # "after" and "glued"; "first" was already LLaVA's form
        generation = prompt_text(template, "What colour?", with_image=True).replace("<image>", it.token * it.count)
        expected = processor.tokenizer(generation, add_special_tokens=False)["input_ids"]
        for enc in kept[:3]:
            prompt = enc.input_ids[:next(i for i, label in enumerate(enc.labels) if label != -100)]
            # the image tokens open the first user message, exactly as evaluation feeds it
            assert prompt == expected and enc.input_ids.count(it.token_id) == it.count
    as_is, stats = tokenize_samples(records[:1], processor.tokenizer, "llama2_nosys", 256, it)
    assert stats["image_token_moved"] == 0
    assert as_is[0].input_ids.index(it.token_id) > kept[0].input_ids.index(it.token_id)


def test_stage1_crops_and_stage2_pads(llava, tmp_path):
    from PIL import Image

    from repro.models.images import prepare_image
    from repro.train.collate import ConversationCollator

    _, processor = llava
    wide = Image.new("RGB", (64, 32), (200, 30, 30))
    wide.paste(Image.new("RGB", (8, 32), (0, 0, 200)), (0, 0))  # a blue stripe at the left edge
    path = tmp_path / "wide.png"
    wide.save(path)
    crop = ConversationCollator(0, processor.image_processor, "square").pixel_values([path])
    pad = ConversationCollator(0, processor.image_processor, "pad").pixel_values([path])
    direct = processor.image_processor(images=[wide], return_tensors="pt")["pixel_values"]
    assert crop.equal(direct) and not crop.equal(pad)  # square = the CLIP processor's own resize + crop
    padded = prepare_image(wide, processor.image_processor)
    # LLaVA's expand2square: fill = int(mean * 255), image centred
    assert padded.size == (64, 64) and padded.getpixel((0, 0)) == tuple(int(m * 255) for m in processor.image_processor.image_mean)
    assert padded.getpixel((0, 16)) == (0, 0, 200)
    with pytest.raises(InputError, match="image_aspect_ratio: 'crop'"):
        prepare_image(wide, processor.image_processor, "crop")


def test_modality_grouped_order_is_llavas():
    import torch

    from repro.train.sampler import ModalityGroupedSampler, even_chunks, modality_grouped

    # 10 image records (lengths 1..10) and 7 text-only ones (lengths -1..-7); 2 per device x 2 ranks
    lengths = list(range(1, 11)) + [-n for n in range(1, 8)]
    order = modality_grouped(lengths, batch_size=2, world_size=2, generator=torch.Generator().manual_seed(0))
    assert sorted(order) == list(range(17))
    megabatches = [order[i:i + 4] for i in range(0, 12, 4)]
    # every full megabatch holds one modality; the two partial ones (2 image + 3 text) come last
    assert all(len({lengths[i] > 0 for i in mb}) == 1 for mb in megabatches)
    tail = order[12:]
    assert sorted(tail) == tail and sum(lengths[i] > 0 for i in tail) == 2
    for mb in megabatches:  # sorted longest first, then dealt into near-equal chunks
        chunks = even_chunks(sorted(mb, key=lambda i: abs(lengths[i]), reverse=True),
                             [abs(n) for n in lengths], 2)
        assert mb == chunks[0] + chunks[1]
    sampler = ModalityGroupedSampler(lengths, 2, 2, seed=3)
    first = list(sampler)
    assert first == list(sampler)  # reproducible
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == list(range(17))
    assert modality_grouped([3, 1, 2], 1, 1, torch.Generator().manual_seed(0)) in ([0, 2, 1], [0, 1, 2], [1, 0, 2],
                                                                                   [1, 2, 0], [2, 0, 1], [2, 1, 0])
    with pytest.raises(InputError, match="no words"):
        modality_grouped([1, 0], 1, 1, torch.Generator())


def test_stage2_batches_are_all_image_or_all_text(llava_dir, instruct_dir, tmp_path, monkeypatch):
    import repro.train.collate as collate
    from repro.train.vl_adapt import run_stage

    batches, original = [], collate.ConversationCollator.__call__

    def spy(self, batch):  # each batch's sample ids, as the collator builds it
        batches.append([s.id for s in batch])
        return original(self, batch)

    monkeypatch.setattr(collate.ConversationCollator, "__call__", spy)
    ctx = make_ctx(tmp_path, "train/vl_adapt", {**TINY, "mode": "finetune", "max_steps": 6,
                                                "per_device_train_batch_size": 4},
                   {"model": llava_dir, "data": instruct_dir})
    run_stage(ctx)
    # 12 image and 4 text-only records, batch 4: each batch is one modality
    assert len(batches) >= 6 and all(len({i.startswith("tx") for i in b}) == 1 for b in batches)
    assert ctx.protocol_choices["batching"].startswith("LLaVA group_by_modality_length")
    assert ctx.protocol_choices["image_preprocessing"].startswith("llava1.5-pad")
    m = json.loads((ctx.out / "metrics.json").read_text())
    assert m["data_order_samples"] == 24
    off = make_ctx(tmp_path, "train/vl_adapt", {**TINY, "mode": "finetune", "group_by_modality_length": False},
                   {"model": llava_dir, "data": instruct_dir})
    run_stage(off)
    assert off.protocol_choices["batching"] == "Trainer's seeded random sampler"


def test_stage1_defaults_follow_pretrain_sh(llava_dir, instruct_dir, tmp_path):
    from repro.train.tokenize import PLAIN_POLICY
    from repro.train.vl_adapt import run_stage

    ctx = make_ctx(tmp_path, "train/vl_adapt", {**TINY, "mode": "pretrain", "max_steps": 1},
                   {"model": llava_dir, "data": instruct_dir})
    run_stage(ctx)
    assert ctx.protocol_choices["conversation_format"] == PLAIN_POLICY
    assert ctx.protocol_choices["image_preprocessing"].startswith("clip-resize-shortest-edge")
    assert ctx.protocol_choices["batching"] == "Trainer's seeded random sampler"
    with pytest.raises(InputError, match="conversation_format'?: unknown value 'llava'"):
        run_stage(make_ctx(tmp_path, "train/vl_adapt", {**TINY, "mode": "pretrain", "conversation_format": "llava"},
                           {"model": llava_dir, "data": instruct_dir}))


# --- LLaMA-2 system prompts ---------------------------------------------------------------------

def test_llama2_system_prompts_render_as_llavas_get_prompt():
    import hashlib

    from repro.models.templates import SYSTEM_PROMPTS, get_template, prompt_text, render

    # sha256 of LLaVA's conv_llava_llama_2.system and conv_llama_2.system (llava/conversation.py)
    assert hashlib.sha256(SYSTEM_PROMPTS["llava"].encode()).hexdigest() == \
        "790f4cfc05523b0eecbc061d3b2a427d84204164119832ccffb22deaae07cb29"
    assert hashlib.sha256(SYSTEM_PROMPTS["meta"].encode()).hexdigest() == \
        "d52c188a3c969c4ece4e68846b15aaf27ef75639b76c08bdd71f062e52c7b9fc"
    turns = [("user", "<image>\nWhat is it?"), ("assistant", "A cat."), ("user", "Sure?"), ("assistant", "Yes.")]
    text = "".join(t for t, _ in render("llama2", turns))
    # LLaVA's get_prompt() for conv_llava_llama_2 with these messages (it leaves <s> to the tokenizer)
    assert text == ("<s>[INST] <<SYS>>\n" + SYSTEM_PROMPTS["llava"] + "\n<</SYS>>\n\n<image>\nWhat is it? [/INST]"
                    " A cat. </s><s>[INST] Sure? [/INST] Yes. </s>")
    assert prompt_text("llama2_meta", "Hi").startswith("<s>[INST] <<SYS>>\n" + SYSTEM_PROMPTS["meta"] + "\n<</SYS>>\n\nHi")
    assert prompt_text("llama2_nosys", "Hi") == "<s>[INST] Hi [/INST]"
    described = {n: get_template(n).describe() for n in ("llama2", "llama2_meta", "llama2_nosys", "tulu")}
    assert [d["system_prompt"] for d in described.values()] == ["llava", "meta", "none", "none"]
    assert len({d["sha256"] for d in described.values()}) == 4
