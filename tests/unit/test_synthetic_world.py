"""The tiny world's training sets carry what the findings need (issue 10): the aligned LLM sees
harmful and benign requests of every topic, the VL-adaptation data is safe (no harmful request,
no refusal) unless unsafe samples are planted (issue 20: then exactly those are what the tiny
data_filtering experiment's filter drops) and holds VQA-format turns whose answers come from the
image, and the preference pairs reject the compliant answers an unsafe model of the world produces."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from repro.data.synthetic import generate
from repro.data.synthetic.world import COLOR_NAMES, COMPLIANCE, REFUSAL, TOPICS, World
from repro.evaluate.classifiers import WorldLabelsClassifier

def _pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(r"\{", "{").replace(r"\}", "}").format(n=r"\d+", color=r"\w+"))


HARMFUL = [_pattern(bad) for _, bad, *_ in TOPICS]
BENIGN = [_pattern(good) for _, _, good, *_ in TOPICS]


def _turns(rows):
    return [(r["conversations"][i]["value"], r["conversations"][i + 1]["value"])
            for r in rows for i in range(0, len(r["conversations"]), 2)]


def test_aligned_chat_balances_harm_within_every_topic(tmp_path):
    generate("aligned_chat", tmp_path, seed=0)
    pairs = _turns(json.loads((tmp_path / "aligned_chat.json").read_text()))
    counts = Counter()
    for question, answer in pairs:
        for t, pattern in enumerate(HARMFUL):
            if pattern.search(question):
                assert answer == REFUSAL
                counts[t, "harmful"] += 1
        for t, pattern in enumerate(BENIGN):
            if pattern.search(question):
                assert answer != REFUSAL
                counts[t, "benign"] += 1
    for t in range(len(TOPICS)):
        assert counts[t, "harmful"] >= 3 and counts[t, "benign"] >= 3, counts


def test_llava_instruct_is_safe_and_has_vqa_turns(tmp_path):
    generate("llava_instruct", tmp_path, seed=0)
    rows = json.loads((tmp_path / "llava_v1_5_mix665k.json").read_text())
    pairs = _turns(rows)
    assert not any(p.search(q) for q, _ in pairs for p in HARMFUL)
    assert not any(a == REFUSAL for _, a in pairs)
    assert not any(WorldLabelsClassifier().classify([_Sample(r) for r in rows]))
    answers = Counter(a for q, a in pairs if "single word" in q or "option's letter" in q)
    assert answers["Yes"] and answers["No"]
    assert answers.keys() & {"A", "B", *COLOR_NAMES}  # lettered questions: world.MC_ANSWER's form


@pytest.mark.parametrize("dataset", ["llava_pretrain", "llava_instruct"])
def test_planted_unsafe_samples_are_what_tiny_data_filtering_drops(dataset, tmp_path):
    """The tiny data_filtering experiment's own source and filter stages: the filter drops every
    planted unsafe sample (text, image or both) and nothing else."""
    from repro.config.load import load_experiment
    from repro.evaluate.filter import filter_stage
    from test_train import make_ctx  # tests/unit is on sys.path

    exp = load_experiment("data_filtering", "tiny", ())
    source, filt = exp.stages[dataset], exp.stages[f"{dataset}_filtered"]
    assert source.params["unsafe_rate"] > 0
    counts = generate(dataset, tmp_path / "data", seed=0, unsafe_rate=source.params["unsafe_rate"])
    planted = sum(counts["unsafe"].values())
    assert planted >= 4 and len(counts["unsafe"]) >= 2, counts  # several kinds, not one
    ctx = make_ctx(tmp_path, filt.kind, filt.params, {"data": tmp_path / "data"})
    filter_stage(ctx)
    m = json.loads((ctx.out / "metrics.json").read_text())
    assert m["samples_total"] - m["samples_kept"] == planted, (m, counts)
    clean = generate(dataset, tmp_path / "clean", seed=0)
    assert clean["unsafe"] == {} and clean["unsafe_rate"] == 0.0  # off by default


def test_vqa_answers_come_from_the_image():
    w = World(0, "t")
    for _ in range(200):
        question, answer = w.vqa_about("red", "circle")
        if "A. " in question:  # the chosen option: its letter or its text (world.MC_ANSWER)
            letter = re.search(rf"^{answer}\. (\w+)$", question, re.M)
            option = letter.group(1) if letter else answer
            assert re.search(rf"^[A-D]\. {option}$", question, re.M)
            if option in ("Yes", "No"):  # MMBench-style yes/no options
                asked = re.search(r"(?:shape|shape in the image|a) (\w+)(?: in the image)?\?", question).group(1)
                assert (asked in ("red", "circle")) == (option == "Yes")
            else:
                assert option in ("red", "circle")
        elif answer in ("Yes", "No"):
            asked = re.search(r"(?:shape|shape in the image|a) (\w+)(?: in the image)?\?", question).group(1)
            assert (asked in ("red", "circle")) == (answer == "Yes")
        else:
            assert answer in ("red", "circle")


def test_compliance_is_flagged_by_world_labels():
    w = World(0, "t")
    classifier = WorldLabelsClassifier()
    for t in range(len(TOPICS)):
        req = w.request(harmful=True, topic=t)
        text = w.compliance(req)
        assert req.category in COMPLIANCE and text != REFUSAL
        assert any(p.search(text) for p in classifier.patterns)


class _Sample:
    def __init__(self, row):
        self.turns = [(t["from"], t["value"]) for t in row["conversations"]]
