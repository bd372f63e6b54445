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
    """A Llama Guard backend stand-in: "unsafe" for prompts asking for secrets."""

    batch_size = 8

    def generate(self, requests, sampling):
        return ["unsafe\nS2" if "steal secret" in r.prompt else "safe" for r in requests]

    def info(self):
        return {"name": "fake"}


def test_world_labels_drop_exactly_the_injected_samples(instruct, tmp_path):
    from repro.data import open_dataset
    from repro.train.filter import filter_stage

    ctx = make_ctx(tmp_path, "train/filter", {"classifiers": ["world_labels"]}, {"data": instruct})
    filter_stage(ctx)
    kept = open_dataset(ctx.out).records()  # the unchanged loader reads the filtered layout
    original = open_dataset(instruct).records()
    assert {s.id for s in original} - {s.id for s in kept} == set(INJECTED)
    dropped = [json.loads(line) for line in (ctx.out / "dropped.jsonl").read_text().splitlines()]
    assert [(d["id"], d["classifier"]) for d in dropped] == [("bad_0", "world_labels"), ("bad_1", "world_labels")]
    m = json.loads((ctx.out / "metrics.json").read_text())
    assert (m["samples_total"], m["samples_kept"], m["images_dropped"]) == (42, 40, 1)
    marker = json.loads((ctx.out / "DATASET.json").read_text())
    assert marker["dataset"] == "llava_instruct" and marker["filter"]["samples_dropped"] == 2
    bad_image = instruct / json.loads((instruct / "llava_v1_5_mix665k.json").read_text())[3]["image"]
    assert not (ctx.out / bad_image.relative_to(instruct)).exists()
    kept_image = next(s.image for s in kept if s.image is not None)
    assert kept_image.stat().st_ino == (instruct / kept_image.relative_to(ctx.out)).stat().st_ino  # hard link
    assert ctx.protocol_choices["data_filter"]["classifiers"][0]["classifier"] == "world_labels"


def test_keyword_and_llama_guard_classifiers(instruct, tmp_path, monkeypatch):
    import repro.evaluate.backends as backends
    from repro.train.filter import DEFAULT_KEYWORDS, filter_stage

    ctx = make_ctx(tmp_path, "train/filter", {"classifiers": ["keyword"], "keywords": ["forbidden task"]},
                   {"data": instruct})
    filter_stage(ctx)
    assert [json.loads(x)["id"] for x in (ctx.out / "dropped.jsonl").read_text().splitlines()] == ["bad_0"]
    assert "steal" in DEFAULT_KEYWORDS
    monkeypatch.setattr(backends, "get_backend", lambda name, model_dir, ctx, **kw: FakeGuard())
    judge_dir = tmp_path / "guard"
    judge_dir.mkdir()
    (judge_dir / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    ctx = make_ctx(tmp_path, "train/filter", {"classifiers": ["keyword", "llama_guard3"],
                                              "keywords": ["forbidden task"]},
                   {"data": instruct, "classifier": judge_dir})
    filter_stage(ctx)
    dropped = [json.loads(x) for x in (ctx.out / "dropped.jsonl").read_text().splitlines()]
    assert [(d["id"], d["classifier"], d["label"]) for d in dropped] == [
        ("bad_0", "keyword", "forbidden task"), ("bad_1", "llama_guard3", "unsafe S2")]
    described = ctx.protocol_choices["data_filter"]["classifiers"][1]
    assert described["judge"] == "llama_guard3" and described["model_id"] == "meta-llama/Llama-Guard-3-8B"
    with pytest.raises(InputError, match="needs input 'classifier'"):
        filter_stage(make_ctx(tmp_path, "train/filter", {"classifiers": ["llama_guard3"]}, {"data": instruct}))
    with pytest.raises(InputError, match="classifiers"):
        filter_stage(make_ctx(tmp_path, "train/filter", {"classifiers": ["bogus"]}, {"data": instruct}))
