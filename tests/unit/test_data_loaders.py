"""Every loader on the synthetic world written in its official layout: counts, fields, quirks."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from repro.data import DATASETS, open_dataset
from repro.data.figstep import FIGSTEP_PROMPT
from repro.data.records import (ConversationSample, MultipleChoiceItem, PreferencePair, SafetyPrompt,
                                YesNoItem)
from repro.data.synthetic import GENERATORS, generate
from repro.data.synthetic.world import REFUSAL
from repro.errors import InputError

KINDS = {"llava_pretrain": ConversationSample, "llava_instruct": ConversationSample,
         "aligned_chat": ConversationSample, "vlguard": ConversationSample,
         "pku_saferlhf": PreferencePair, "spa_vl": PreferencePair, "sorry_bench": SafetyPrompt,
         "wildjailbreak": SafetyPrompt, "mm_safetybench": SafetyPrompt, "siuo": SafetyPrompt,
         "figstep": SafetyPrompt, "mmbench": MultipleChoiceItem, "mme": YesNoItem,
         "seed_bench": MultipleChoiceItem, "judge_train": ConversationSample, "xstest": SafetyPrompt,
         "web_pairs": ConversationSample}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("world")
    for name in GENERATORS:
        generate(name, base / name, seed=0, size="tiny")
    return base


def load(world: Path, name: str, split=None):
    return open_dataset(world / name, cache_dir=world / ".cache").records(split)


def test_every_loader_name_has_a_generator():
    assert set(DATASETS.names()) == set(GENERATORS) == set(KINDS)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_loader_reads_synthetic_layout(world, name):
    ds = open_dataset(world / name, cache_dir=world / ".cache")
    records = ds.records()
    assert records and all(isinstance(r, KINDS[name]) for r in records)
    assert len({r.id for r in records}) == len(records)
    for r in records:
        if r.image is not None:
            assert r.image.is_file() and r.image.stat().st_size > 0
    texts = list(ds.texts())
    assert texts and all(isinstance(t, str) and t for t in texts)


def test_llava_json_quirks(world):
    pretrain = load(world, "llava_pretrain")
    assert len(pretrain) == 40 and all(r.image.is_relative_to((world / "llava_pretrain" / "images").resolve())
                                       for r in pretrain)
    instruct = load(world, "llava_instruct")
    text_only = [r for r in instruct if r.image is None]
    assert text_only and all("<image>" not in t for r in text_only for _, t in r.turns)
    assert any(len(r.turns) > 2 for r in instruct)
    with_image = [r for r in instruct if r.image is not None]
    assert all("<image>" in r.turns[0][1] and r.turns[0][0] == "user" for r in with_image)
    assert all(r.turns[-1][0] == "assistant" for r in instruct)
    chat = load(world, "aligned_chat")
    assert {r.turns[1][1] == REFUSAL for r in chat} == {True, False}


def test_vlguard_one_conversation_per_image(world):
    samples = load(world, "vlguard")
    assert len(samples) == 20  # 20 train records (10 safe images, 10 unsafe): one conversation each
    safe = [s for s in samples if s.meta["safe_image"]]
    unsafe = [s for s in samples if not s.meta["safe_image"]]
    assert len(safe) == len(unsafe) == 10
    assert all(len(s.turns) == 4 and sorted(s.meta["instruction_order"]) == ["safe_instruction", "unsafe_instruction"]
               for s in safe)
    assert all(len(s.turns) == 2 and s.turns[1][1] == REFUSAL and s.meta["harmful_category"] for s in unsafe)
    # the image goes in the first turn only, as convert_to_llava_format.py writes it (no newline)
    assert all(s.turns[0][1].startswith("<image>") and not s.turns[0][1].startswith("<image>\n") for s in samples)
    assert all("<image>" not in text for s in samples for _, text in s.turns[1:])
    assert len(load(world, "vlguard", "test")) == 10


def test_vlguard_conversion_is_convert_to_llava_formats(tmp_path):
    """A train.json with N images gives N conversations, and the pair order is the one VLGuard's
    convert_to_llava_format.py writes for this file (its output, recorded by running the script):
    one random.seed(0) stream, one shuffle per safe image, unsafe images draw nothing."""
    from repro.data.synthetic.draw import png_shape
    from repro.data.vlguard import load

    (tmp_path / "train" / "img").mkdir(parents=True)
    rows = []
    for i, kind in enumerate("SUSSSUSSS"):
        (tmp_path / "train" / "img" / f"{i}.png").write_bytes(png_shape("red", "circle"))
        if kind == "S":
            rows.append({"id": f"s{i}", "image": f"img/{i}.png", "safe": True, "instr-resp": [
                {"safe_instruction": f"safe question {i}", "response": f"answer {i}"},
                {"unsafe_instruction": f"unsafe question {i}", "response": "I cannot help with that."}]})
        else:
            rows.append({"id": f"u{i}", "image": f"img/{i}.png", "safe": False, "harmful_category": "privacy",
                         "harmful_subcategory": "personal data",
                         "instr-resp": [{"instruction": f"bad question {i}", "response": "I cannot help with that."}]})
    (tmp_path / "train.json").write_text(json.dumps(rows))
    samples = load(tmp_path)
    assert len(samples) == len(rows) == 9
    human = {s.id: [text for role, text in s.turns if role == "user"] for s in samples}
    expected = {"s0": ["<image>safe question 0", "unsafe question 0"], "u1": ["<image>bad question 1"],
                "s2": ["<image>safe question 2", "unsafe question 2"],
                "s3": ["<image>unsafe question 3", "safe question 3"],
                "s4": ["<image>safe question 4", "unsafe question 4"], "u5": ["<image>bad question 5"],
                "s6": ["<image>safe question 6", "unsafe question 6"],
                "s7": ["<image>safe question 7", "unsafe question 7"],
                "s8": ["<image>safe question 8", "unsafe question 8"]}
    assert human == expected
    assert [t for _, t in samples[3].turns[1::2]] == ["I cannot help with that.", "answer 3"]  # responses follow


def test_safety_prompts(world):
    sorry = load(world, "sorry_bench")
    assert len(sorry) == 10 and len({p.category for p in sorry}) == 5 and all(p.harmful is None for p in sorry)
    wild = load(world, "wildjailbreak")
    assert sum(p.harmful for p in wild) == 10 and sum(not p.harmful for p in wild) == 3
    mm = load(world, "mm_safetybench")
    assert len(mm) == 13 * 3 and {p.meta["image_type"] for p in mm} == {"SD", "SD_TYPO", "TYPO"}
    text = load(world, "mm_safetybench", "Text_only")
    assert len(text) == 13 and all(p.image is None for p in text)
    assert len(load(world, "mm_safetybench", "all")) == 13 * 4
    assert "Illegal_Activitiy" in {p.category for p in mm}
    fig = load(world, "figstep")
    assert len(fig) == 10 and all(p.prompt == FIGSTEP_PROMPT for p in fig)
    assert fig[0].image.name == "query_ForbidQI_1_1_6.png" and fig[0].category == "Illegal Activity"
    assert len(load(world, "figstep", "tiny")) == 10
    siuo = load(world, "siuo")
    assert len(siuo) == 5 and all(p.image.name.startswith("S-") for p in siuo)


def test_preference_pairs(world):
    pku = load(world, "pku_saferlhf")
    assert len(pku) == 20 and len(load(world, "pku_saferlhf", "test")) == 5
    assert all(p.meta["chosen_safe"] for p in pku)
    assert any(p.chosen == REFUSAL and not p.meta["rejected_safe"] for p in pku)
    assert len(load(world, "pku_saferlhf", "Alpaca-7B/train")) == 20
    spa = load(world, "spa_vl")
    assert len(spa) == 20 and all(p.image.parent == world / ".cache" for p in spa)
    assert len(load(world, "spa_vl", "validation")) == 5


def test_mmbench_circular_groups(world):
    items = load(world, "mmbench")
    groups = defaultdict(list)
    for item in items:
        groups[item.group].append(item)
    assert len(groups) == 10
    for variants in groups.values():
        truths = {v.options[v.answer] for v in variants}
        assert len(truths) == 1 and len(variants) == len(variants[0].options)
        assert len({v.image for v in variants}) == 1  # variants' image cells refer to the base row
    assert any(len(i.options) == 3 and "D" not in i.options for i in items)
    assert any(i.hint for i in items) and any(i.hint is None for i in items)


def test_mme_pairs(world):
    items = load(world, "mme")
    pairs = defaultdict(list)
    for item in items:
        pairs[item.pair].append(item.answer)
    assert len(pairs) == 10 and all(sorted(a) == ["No", "Yes"] for a in pairs.values())
    assert {i.category for i in items} == {"color", "shape"}


def test_seed_bench_skips_video(world):
    items = load(world, "seed_bench")
    assert len(items) == 10 and all(len(i.options) == 4 for i in items)


def test_mmbench_lmms_parquet_with_nan_options(tmp_path):
    from repro.data.synthetic.draw import png_shape
    from repro.data.synthetic.fileio import hf_image, write_parquet

    png = png_shape("red", "circle")
    rows = [{"index": 7, "question": "Colour?", "hint": "nan", "A": "red", "B": "blue", "C": "nan", "D": "nan",
             "answer": "A", "category": "color", "image": hf_image(png, "x.png")}]
    types = {k: "str" for k in rows[0]} | {"index": "int", "image": "image"}
    write_parquet(tmp_path / "en" / "dev-00000-of-00001.parquet", rows, types)
    (tmp_path / "DATASET.json").write_text(json.dumps({"dataset": "mmbench"}))
    [item] = open_dataset(tmp_path, cache_dir=tmp_path / "c").records()
    assert item.options == {"A": "red", "B": "blue"} and item.hint is None and item.group == "7"
    assert item.image.read_bytes() == png


def test_open_dataset_errors(tmp_path):
    with pytest.raises(InputError, match="DATASET.json: not found"):
        open_dataset(tmp_path)
    (tmp_path / "DATASET.json").write_text("{not json")
    with pytest.raises(InputError, match="DATASET.json: not valid JSON"):
        open_dataset(tmp_path)
    (tmp_path / "DATASET.json").write_text(json.dumps({"dataset": "mmbenh"}))
    with pytest.raises(InputError, match="did you mean mmbench"):
        open_dataset(tmp_path)
    (tmp_path / "DATASET.json").write_text(json.dumps({"source": "hub"}))
    with pytest.raises(InputError, match="field 'dataset'"):
        open_dataset(tmp_path)


def test_unknown_split_is_an_error(world):
    with pytest.raises(InputError, match="unknown split 'validation'"):
        load(world, "vlguard", "validation")
    with pytest.raises(InputError, match="unknown split 'XX'"):
        load(world, "mm_safetybench", "XX")
