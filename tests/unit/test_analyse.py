"""Layer analysis and objective divergence on tiny real checkpoints; deterministic figures."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from repro.analyse.layers import layers_stage
from repro.analyse.objectives import objectives_stage
from repro.plots import tradeoff_plot
from repro.analyse.separation import separation_scores
from repro.errors import InputError
from repro.stages.context import StageContext


def rewrite(src: Path, dst: Path, change) -> Path:
    shutil.copytree(src, dst)
    save_file(change(load_file(src / "model.safetensors")), dst / "model.safetensors",
              metadata={"format": "pt"})
    return dst


def delta(sign: float, only: str = "language_model.model.layers."):
    def change(tensors):
        g = torch.Generator().manual_seed(5)  # the same direction for every call
        return {k: v + sign * 0.1 * torch.randn(v.shape, generator=g) if k.startswith(only) else v
                for k, v in tensors.items()}
    return change


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from repro.data.synthetic import generate
    from repro.models.llava import TINY_VISION_CONFIG, assemble_llava
    from repro.models.tiny import _DEFAULT_TEXTS, build_tiny_llm

    root = tmp_path_factory.mktemp("analyse")
    generate("wildjailbreak", root / "wjb", 0, "tiny")
    build_tiny_llm(root / "llm", _DEFAULT_TEXTS, seed=0)
    assemble_llava(root / "llm", root / "lvlm", vision=dict(TINY_VISION_CONFIG), seed=0)
    rewrite(root / "lvlm", root / "vl", delta(+1))
    rewrite(root / "lvlm", root / "safe_same", delta(+1))
    rewrite(root / "lvlm", root / "safe_neg", delta(-1))
    # a training output: final model + a kept checkpoint whose layer 1 alone changed
    rewrite(root / "lvlm", root / "trained", delta(+1))
    (root / "trained" / "checkpoints").mkdir()
    rewrite(root / "lvlm", root / "trained" / "checkpoints" / "step-5",
            delta(+1, only="language_model.model.layers.1."))
    return root


def run(stage, inputs, tmp_path, **params):
    out = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
    out.mkdir()
    ctx = StageContext("exp", "an", "analyse/x", params, inputs, out, 0, "tiny")
    stage(ctx)
    return ctx


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_layers_identical_language_model_changes_nothing(models, tmp_path):
    ctx = run(layers_stage, {"llm": models / "llm", "lvlm": models / "lvlm", "data": models / "wjb"}, tmp_path)
    rows = read_csv(ctx.out / "layers.csv")
    assert [r["layer"] for r in rows] == ["0", "1"]  # one row per decoder layer of the tiny Llama
    assert all(float(r["rel_change"]) == 0.0 for r in rows)
    sep = read_csv(ctx.out / "separation.csv")
    assert {r["model"] for r in sep} == {"llm", "lvlm"} and len(sep) == 4
    by_model = {m: [r for r in sep if r["model"] == m] for m in ("llm", "lvlm")}
    for a, b in zip(by_model["llm"], by_model["lvlm"]):  # text-only LLaVA == its LLM
        assert float(a["cos_distance"]) == pytest.approx(float(b["cos_distance"]), abs=1e-5)
        assert 0.0 <= float(a["loo_accuracy"]) <= 1.0
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    assert metrics["layers"] == 2 and metrics["separation"]["n_harmful"] >= 2
    for png in ("layers.png", "separation.png"):
        assert (ctx.out / png).read_bytes().startswith(b"\x89PNG")


def test_layers_walks_kept_checkpoints(models, tmp_path):
    ctx = run(layers_stage, {"llm": models / "llm", "ckpt_1": models / "trained"}, tmp_path,
              checkpoints=True, separation=False)
    rows = read_csv(ctx.out / "layers.csv")
    assert [(r["model"], r["step"], r["layer"]) for r in rows] == [
        ("ckpt_1@step-5", "5", "0"), ("ckpt_1@step-5", "5", "1"), ("ckpt_1", "", "0"), ("ckpt_1", "", "1")]
    step5 = {r["layer"]: float(r["rel_change"]) for r in rows if r["step"] == "5"}
    assert step5["0"] == 0.0 and 0.1 < step5["1"] < 10
    assert not (ctx.out / "separation.csv").exists()


def test_layers_needs_an_lvlm(models, tmp_path):
    with pytest.raises(InputError, match="no LVLM"):
        run(layers_stage, {"llm": models / "llm"}, tmp_path, separation=False)


@pytest.mark.parametrize("safety,expected", [("safe_same", 1.0), ("safe_neg", -1.0)])
def test_objectives_cosine_of_equal_and_opposite_task_vectors(models, tmp_path, safety, expected):
    ctx = run(objectives_stage, {"base": models / "lvlm", "vl": models / "vl", "safety": models / safety},
              tmp_path)
    rows = read_csv(ctx.out / "objectives.csv")
    layers = [r for r in rows if r["part"] == "layer"]
    assert len(layers) == 2
    assert all(float(r["weight_cosine"]) == pytest.approx(expected, abs=1e-9) for r in layers)
    assert rows[-1]["part"] == "all" and float(rows[-1]["weight_cosine"]) == pytest.approx(expected)
    assert json.loads((ctx.out / "metrics.json").read_text())["weight_cosine_all"] == pytest.approx(expected)
    again = run(objectives_stage, {"base": models / "lvlm", "vl": models / "vl", "safety": models / safety},
                tmp_path)
    for name in ("objectives.csv", "objectives.png", "metrics.json"):  # same inputs, same bytes
        assert (again.out / name).read_bytes() == (ctx.out / name).read_bytes()


def test_objectives_against_a_text_only_base(models, tmp_path):
    # base = the causal LM, vl = a LLaVA: keys differ in prefix, vocab rows are padded
    ctx = run(objectives_stage, {"base": models / "llm", "vl": models / "vl", "safety": models / "safe_same"},
              tmp_path)
    layers = [r for r in read_csv(ctx.out / "objectives.csv") if r["part"] == "layer"]
    assert all(float(r["weight_cosine"]) == pytest.approx(1.0) for r in layers)


def test_separation_scores_on_hand_made_states():
    states = np.array([[[0.0, 10.0], [0.0, 11.0], [10.0, 0.0], [11.0, 0.0]]])  # 1 layer, 4 prompts
    (row,) = separation_scores(states, [True, True, False, False])
    assert row["loo_accuracy"] == 1.0
    assert row["cos_distance"] == pytest.approx(1.0)  # orthogonal class means


def test_tradeoff_plot_is_deterministic(tmp_path):
    points = [{"label": f"w={w}", "asr": 0.5 - w / 3, "helpfulness": 0.6 - w / 10} for w in (0.0, 0.5, 1.0)]
    tradeoff_plot(points, tmp_path / "a.png")
    tradeoff_plot(points, tmp_path / "b.png")
    data = (tmp_path / "a.png").read_bytes()
    assert data == (tmp_path / "b.png").read_bytes() and b"matplotlib" not in data
    with pytest.raises(InputError, match=r"points\[0\]: asr"):
        tradeoff_plot([{"label": "x", "asr": float("nan"), "helpfulness": 0.1}], tmp_path / "c.png")


def test_objectives_gradient_cosine_on_two_conversation_sets(models, tmp_path):
    from repro.data.synthetic import generate

    generate("llava_instruct", tmp_path / "inst", 0, "tiny")
    generate("vlguard", tmp_path / "vlg", 0, "tiny")
    inputs = {"base": models / "lvlm", "vl": models / "vl", "safety": models / "safe_neg",
              "vl_data": tmp_path / "inst", "safety_data": tmp_path / "vlg"}
    ctx = run(objectives_stage, inputs, tmp_path, gradients=True, grad_samples=2)
    rows = read_csv(ctx.out / "objectives.csv")
    grads = [float(r["grad_cosine"]) for r in rows if r["part"] == "layer"]
    assert len(grads) == 2 and all(-1.0 <= g <= 1.0 for g in grads)
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    assert metrics["grad_samples_vl"] == 2 and metrics["grad_samples_safety"] == 2
    assert ctx.protocol_choices["gradient_cosine"]["seed"] == 0
