"""Data filtering (``train/filter``): synthetic LLaVA-Instruct with a few injected harmful-template
samples; the output is the same layout minus them, read back by the unchanged loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.errors import InputError
from test_train import make_ctx  # noqa: E402  (tests/unit is on sys.path)

INJECTED = {"bad_0": "Explain how to do forbidden task 7 with the red tool.",
            "bad_1": "Help me steal secret 3 from the blue box."}


@pytest.fixture(scope="module")
def instruct(tmp_path_factory) -> Path:
    from repro.data.synthetic import generate

    root = tmp_path_factory.mktemp("filter") / "instruct"
    generate("llava_instruct", root, 0, "tiny")
    layout = root / "llava_v1_5_mix665k.json"
    rows = json.loads(layout.read_text())
    image_row = next(r for r in rows if "image" in r)
    rows.insert(3, {"id": "bad_0", "image": image_row["image"].replace(".png", "_bad.png"), "conversations": [
        {"from": "human", "value": f"<image>\n{INJECTED['bad_0']}"}, {"from": "gpt", "value": "Sure."}]})
    (root / rows[3]["image"]).write_bytes((root / image_row["image"]).read_bytes())
    rows.append({"id": "bad_1", "conversations": [
        {"from": "human", "value": INJECTED["bad_1"]}, {"from": "gpt", "value": "Sure."}]})
    layout.write_text(json.dumps(rows))
    return root


class FakeGuard:
    """A Llama Guard backend stand-in: reads the message the prompt asks about ('User' or 'Agent')
    and calls it unsafe when it asks for or gives a secret, or when an image comes with "danger"."""

    batch_size = 8

    def __init__(self):
        self.requests = []

    def generate(self, requests, sampling):
        self.requests += requests
        out = []
        for r in requests:
            role = "User" if "'User' messages" in r.prompt else "Agent"
            message = r.prompt.split(f"{role}: ", 1)[1].split("\n\n", 1)[0]
            unsafe = "steal secret" in message or "page 7" in message or (r.image is not None and "danger" in r.image.name)
            out.append("unsafe\nS2" if unsafe else "safe")
        return out

    def info(self):
        return {"name": "fake"}


def _dropped(ctx) -> dict:
    return {d["id"]: d["reasons"] for d in map(json.loads, (ctx.out / "dropped.jsonl").read_text().splitlines())}


def test_world_labels_drop_exactly_the_injected_samples(instruct, tmp_path):
    from repro.data import open_dataset
    from repro.train.filter import filter_stage

    ctx = make_ctx(tmp_path, "train/filter", {"classifiers": ["world_labels"]}, {"data": instruct})
    filter_stage(ctx)
    kept = open_dataset(ctx.out).records()  # the unchanged loader reads the filtered layout
    original = open_dataset(instruct).records()
    assert {s.id for s in original} - {s.id for s in kept} == set(INJECTED)
    # the injected user turns are the world's harmful requests; their answers ("Sure.") are not flagged
    assert _dropped(ctx) == {"bad_0": {"world_labels:user": "harmful_request:forbidden_task"},
                             "bad_1": {"world_labels:user": "harmful_request:secret_theft"}}
    m = json.loads((ctx.out / "metrics.json").read_text())
    assert (m["samples_total"], m["samples_kept"], m["images_dropped"]) == (42, 40, 1)
    assert m["dropped_by_reason"] == {"world_labels:user": 2}
    marker = json.loads((ctx.out / "DATASET.json").read_text())
    assert marker["dataset"] == "llava_instruct" and marker["filter"]["samples_dropped"] == 2
    bad_image = instruct / json.loads((instruct / "llava_v1_5_mix665k.json").read_text())[3]["image"]
    assert not (ctx.out / bad_image.relative_to(instruct)).exists()
    kept_image = next(s.image for s in kept if s.image is not None)
    assert kept_image.stat().st_ino == (instruct / kept_image.relative_to(ctx.out)).stat().st_ino  # hard link
    assert ctx.protocol_choices["data_filter"]["classifiers"][0]["classifier"] == "world_labels"


def _handmade(root: Path, name: str) -> Path:
    """LLaVA-Instruct records, one per way a sample can be unsafe, plus safe ones."""
    from repro.data.synthetic.draw import png_shape

    (root / "img").mkdir(parents=True)
    for stem, danger in (("plain", False), ("danger", True)):
        (root / "img" / f"{stem}.png").write_bytes(png_shape("red", "circle", danger=danger))
    ask_bad, ask_ok = "Help me steal secret 3 from the blue box.", "What colour is the shape?"
    comply = "To steal secret 3, open the blue box and take page 7."
    records = {"safe_image": ("img/plain.png", ask_ok, "It is red."),
               "safe_text": (None, "Say hello.", "Hello."),
               "bad_user": (None, ask_bad, "I cannot help with that request."),
               "bad_response": ("img/plain.png", "What is in the box?", comply),
               "bad_image": ("img/danger.png", ask_ok, "It is red.")}
    rows = []
    for rid, (image, question, answer) in records.items():
        row = {"id": rid, "conversations": [{"from": "human", "value": f"<image>\n{question}" if image else question},
                                            {"from": "gpt", "value": answer}]}
        rows.append({**row, "image": image} if image else row)
    (root / "llava_v1_5_mix665k.json").write_text(json.dumps(rows))
    (root / "DATASET.json").write_text(json.dumps({"dataset": name, "source": "local"}))
    return root


def test_every_part_is_judged_and_counted_per_reason(tmp_path):
    from repro.train.filter import filter_stage

    data = _handmade(tmp_path / "mix", "llava_instruct")
    ctx = make_ctx(tmp_path, "train/filter", {"classifiers": ["world_labels"], "image_classifier": "world_labels"},
                   {"data": data})
    filter_stage(ctx)
    assert _dropped(ctx) == {"bad_user": {"world_labels:user": "harmful_request:secret_theft"},
                             "bad_response": {"world_labels:response": "compliance:secret_theft"},
                             "bad_image": {"world_labels:image": "danger mark"}}
    m = json.loads((ctx.out / "metrics.json").read_text())
    assert m["dropped_by_reason"] == {"world_labels:image": 1, "world_labels:response": 1, "world_labels:user": 1}
    assert (m["samples_kept"], m["samples_dropped"], m["images_dropped"]) == (2, 3, 1)
    # the older rule, responses only: an unsafe request answered with a refusal stays
    only = make_ctx(tmp_path, "train/filter", {"classifiers": ["world_labels"], "judge_parts": ["response"]},
                    {"data": data})
    filter_stage(only)
    assert set(_dropped(only)) == {"bad_response"}


def test_llama_guard_judges_user_turns_responses_and_images(tmp_path, monkeypatch):
    import repro.evaluate.backends as backends
    from repro.evaluate.judges.llama_guard3 import LlamaGuard3Judge
    from repro.train.classifiers import user_role
    from repro.train.filter import filter_stage

    fake = FakeGuard()
    monkeypatch.setattr(backends, "get_backend", lambda name, model_dir, ctx, **kw: fake)
    judge_dir = tmp_path / "guard"
    judge_dir.mkdir()
    (judge_dir / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    data = _handmade(tmp_path / "mix", "llava_instruct")
    ctx = make_ctx(tmp_path, "train/filter", {"classifiers": ["llama_guard3"], "image_classifier": "llama_guard3_vision"},
                   {"data": data, "classifier": judge_dir, "image_classifier": judge_dir})
    filter_stage(ctx)
    assert _dropped(ctx) == {"bad_user": {"llama_guard3:user": "unsafe S2"},
                             "bad_response": {"llama_guard3:response": "unsafe S2"},
                             "bad_image": {"llama_guard3_vision:image": "unsafe S2"}}
    # 5 user turns + 5 responses (text judge) + 3 images with their prompt (vision judge)
    roles = [("User" if "'User' messages" in r.prompt else "Agent", r.image is not None) for r in fake.requests]
    assert roles.count(("User", False)) == 5 and roles.count(("Agent", False)) == 5 and roles.count(("User", True)) == 3
    # Meta's prompt-classification form: the 'User' role, one User line, no Agent turn
    prompt = user_role(LlamaGuard3Judge.template)
    assert "in 'User' messages" in prompt and "ONLY THE LAST User message" in prompt
    assert "User: {prompt}\n\n<END CONVERSATION>" in prompt and "Agent:" not in prompt
    described = ctx.protocol_choices["data_filter"]["classifiers"]
    assert described[0]["judge"] == "llama_guard3" and described[0]["parts"] == ["user", "response"]
    assert described[1]["judge"] == "llama_guard3_vision" and described[1]["parts"] == ["image"]


def test_stage1_data_is_filtered_too(tmp_path):
    from repro.data import open_dataset
    from repro.data.synthetic import generate
    from repro.data.synthetic.draw import png_shape
    from repro.train.filter import filter_stage

    root = tmp_path / "pretrain"
    generate("llava_pretrain", root, 0, "tiny")
    layout = root / "blip_laion_cc_sbu_558k.json"
    rows = json.loads(layout.read_text())
    (root / "images" / "danger.png").write_bytes(png_shape("blue", "square", danger=True))
    rows += [{"id": "danger", "image": "danger.png", "conversations": [
                 {"from": "human", "value": "<image>\nGive a short caption."},
                 {"from": "gpt", "value": "A blue square on a white background."}]},
             {"id": "harm_caption", "image": rows[0]["image"], "conversations": [
                 {"from": "human", "value": "Describe the image briefly.\n<image>"},
                 {"from": "gpt", "value": "A poster about dangerous item 4."}]}]
    layout.write_text(json.dumps(rows))
    ctx = make_ctx(tmp_path, "train/filter", {"classifiers": ["world_labels"], "image_classifier": "world_labels"},
                   {"data": root})
    filter_stage(ctx)
    assert _dropped(ctx) == {"danger": {"world_labels:image": "danger mark"},
                             "harm_caption": {"world_labels:response": "key_phrase:dangerous_item"}}
    assert len(open_dataset(ctx.out).records()) == len(rows) - 2
    assert not (ctx.out / "images" / "danger.png").exists()


def test_keyword_classifier_and_bad_params(instruct, tmp_path):
    from repro.train.filter import DEFAULT_KEYWORDS, filter_stage

    ctx = make_ctx(tmp_path, "train/filter", {"classifiers": ["keyword"], "keywords": ["forbidden task"]},
                   {"data": instruct})
    filter_stage(ctx)
    assert _dropped(ctx) == {"bad_0": {"keyword:user": "forbidden task"}}
    assert "steal" in DEFAULT_KEYWORDS
    with pytest.raises(InputError, match="needs input 'classifier'"):
        filter_stage(make_ctx(tmp_path, "train/filter", {"classifiers": ["llama_guard3"]}, {"data": instruct}))
    with pytest.raises(InputError, match="classifiers"):
        filter_stage(make_ctx(tmp_path, "train/filter", {"classifiers": ["bogus"]}, {"data": instruct}))
    with pytest.raises(InputError, match="judge_parts"):
        filter_stage(make_ctx(tmp_path, "train/filter", {"classifiers": ["keyword"], "judge_parts": ["image"]},
                              {"data": instruct}))


def test_danger_mark_is_the_worlds_black_cross(tmp_path):
    from repro.data.synthetic.draw import COLORS, SHAPES, png_shape, png_stacked, png_text
    from repro.train.classifiers import has_danger_mark

    for i, (colour, shape) in enumerate((c, s) for c in COLORS for s in SHAPES):
        for danger in (False, True):
            path = tmp_path / f"{i}_{danger}.png"
            path.write_bytes(png_shape(colour, shape, i % 9 - 4, i % 7 - 3, danger=danger))
            assert has_danger_mark(path) is danger
    text = tmp_path / "text.png"
    text.write_bytes(png_text(["dangerous item 3", "forbidden task 7"]))
    stacked = tmp_path / "stacked.png"
    stacked.write_bytes(png_stacked("red", "circle", "steal secret 2"))
    assert not has_danger_mark(text) and not has_danger_mark(stacked)
