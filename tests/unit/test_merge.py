"""Merges over real (tiny) checkpoints: exact end points, hand-computed TIES/DARE, refusals,
streaming across shard layouts, a loadable result, and the benchmark at toy size."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from repro.errors import InputError
from repro.merge import dare, linear, task_arithmetic, ties
from repro.merge.stage import merge_dirs, run_merge
from repro.merge.stream import Checkpoint
from repro.pipeline.context import StageContext


def rewrite(src: Path, dst: Path, change) -> Path:
    """Copy checkpoint ``src`` to ``dst`` with its tensors passed through ``change(dict)``."""
    shutil.copytree(src, dst)
    tensors = change(load_file(src / "model.safetensors"))
    save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def shifted(seed: float):
    def change(tensors):
        g = torch.Generator().manual_seed(int(seed * 1000))
        return {k: v if k.startswith("vision_tower.") else v + 0.05 * torch.randn(v.shape, generator=g)
                for k, v in tensors.items()}
    return change


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    from repro.models.tiny import make_tiny_llava

    root = tmp_path_factory.mktemp("merge")
    make_tiny_llava(root / "a", seed=0)
    rewrite(root / "a", root / "b", shifted(1))
    rewrite(root / "a", root / "c", shifted(2))
    return root


def ctx_for(tmp_path, inputs, kind="merge/linear", seed=0, **params):
    out = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
    out.mkdir()
    return StageContext("exp", "merge", kind, params, inputs, out, seed, "tiny")


def tensor_bytes_of(model_dir: Path) -> dict:
    ck = Checkpoint(model_dir)
    return {k: bytes(ck.read_bytes(k)) for k in ck.shard_of}


@pytest.mark.parametrize("weight,source", [(0.0, "a"), (1.0, "b")])
def test_linear_end_points_reproduce_inputs_bit_for_bit(ckpts, tmp_path, weight, source):
    out = tmp_path / "m"
    out.mkdir()
    merge_dirs({"a": ckpts / "a", "b": ckpts / "b"}, out, linear.make_combine(weight))
    assert tensor_bytes_of(out) == tensor_bytes_of(ckpts / source)
    assert json.loads((out / "config.json").read_text()) == json.loads((ckpts / "a" / "config.json").read_text())


def test_linear_half_is_the_mean_and_vision_tower_is_copied(ckpts, tmp_path):
    ctx = ctx_for(tmp_path, {"a": ckpts / "a", "b": ckpts / "b"}, weight=0.5)
    run_merge(ctx, "linear")
    out, a, b = (load_file(d / "model.safetensors") for d in (ctx.out, ckpts / "a", ckpts / "b"))
    assert set(out) == set(a)
    for key in a:
        torch.testing.assert_close(out[key], (a[key] + b[key]) / 2, rtol=1e-6, atol=1e-7)
        if key.startswith("vision_tower."):
            assert torch.equal(out[key], a[key])
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    assert metrics["tensors_merged"] + metrics["tensors_copied"] == len(a)
    assert metrics["tensors_copied"] == sum(k.startswith("vision_tower.") for k in a)
    assert ctx.protocol_choices["method"] == "linear" and ctx.protocol_choices["merge_weight"] == 0.5
    assert ctx.protocol_choices["merge_frozen_prefixes"] == ["vision_tower."]
    for name in ("tokenizer.json", "processor_config.json", "repro_model.json", "generation_config.json"):
        assert (ctx.out / name).read_bytes() == (ckpts / "a" / name).read_bytes()


def test_task_arithmetic_hand_computed():
    base, m1, m2 = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 2.0]), torch.tensor([1.0, 4.0])
    out = task_arithmetic.task_arithmetic(base.clone(), [m1, m2], [0.5, 1.0])
    assert torch.equal(out, torch.tensor([1.5, 4.0]))


def test_ties_hand_computed():
    base = torch.ones(4)
    m1 = base + torch.tensor([3.0, -1.0, 0.5, 2.0])  # trimmed to [3, 0, 0, 2]
    m2 = base + torch.tensor([-1.0, -2.0, 1.0, 4.0])  # trimmed to [0, -2, 0, 4]
    out = ties.ties(base.clone(), [m1, m2], [1.0, 1.0], density=0.5)
    assert torch.equal(out, base + torch.tensor([3.0, -2.0, 0.0, 3.0]))
    # the sign is elected by summed magnitude, not by majority: +5 beats -2 and -2
    out = ties.ties(torch.zeros(1), [torch.tensor([5.0]), torch.tensor([-2.0]), torch.tensor([-2.0])],
                    [1.0, 1.0, 1.0], density=1.0)
    assert torch.equal(out, torch.tensor([5.0]))


def test_dare_hand_computed():
    base = torch.zeros(10_000)
    m = torch.ones(10_000)
    out = dare.dare(base.clone(), {"m1": m}, [1.0], drop=0.5, seed=3, key="k")
    mask = dare.keep_mask(m.shape, 0.5, 3, "m1", "k")
    assert torch.equal(out, mask.float() * 2.0)  # kept entries rescaled by 1/(1-p)
    assert 0.45 < mask.float().mean() < 0.55
    again = dare.dare(base.clone(), {"m1": m}, [1.0], drop=0.5, seed=3, key="k")
    other = dare.dare(base.clone(), {"m1": m}, [1.0], drop=0.5, seed=4, key="k")
    assert torch.equal(out, again) and not torch.equal(out, other)
    no_drop = dare.dare(base.clone(), {"m1": m}, [0.5], drop=0.0, seed=3, key="k")
    assert torch.equal(no_drop, torch.full((10_000,), 0.5))


def test_ties_and_dare_stages_are_deterministic_and_record_their_params(ckpts, tmp_path):
    inputs = {"base": ckpts / "a", "m1": ckpts / "b", "m2": ckpts / "c"}
    runs = []
    for _ in range(2):
        ctx = ctx_for(tmp_path, inputs, "merge/dare", seed=7, drop=0.3)
        run_merge(ctx, "dare")
        runs.append((ctx.out / "model.safetensors").read_bytes())
    assert runs[0] == runs[1]
    assert ctx.protocol_choices["merge_seed"] == 7 and ctx.protocol_choices["merge_drop_prob"] == 0.3
    ctx = ctx_for(tmp_path, inputs, "merge/ties", density=0.5, weights=[1.0, 0.5])
    run_merge(ctx, "ties")
    assert ctx.protocol_choices["merge_trim_density"] == 0.5
    assert ctx.protocol_choices["merge_weights"] == [1.0, 0.5]
    assert set(load_file(ctx.out / "model.safetensors")) == set(load_file(ckpts / "a" / "model.safetensors"))


def test_missing_key_is_refused(ckpts, tmp_path):
    bad = rewrite(ckpts / "b", tmp_path / "bad", lambda t: {k: v for k, v in t.items()
                                                           if k != "language_model.model.norm.weight"})
    with pytest.raises(InputError, match=r"bad.*language_model\.model\.norm\.weight.*missing"):
        merge_dirs({"a": ckpts / "a", "b": bad}, tmp_path, linear.make_combine(0.5))


def test_dtype_mismatch_is_refused(ckpts, tmp_path):
    bad = rewrite(ckpts / "b", tmp_path / "bad", lambda t: {
        k: v.half() if k == "language_model.lm_head.weight" else v for k, v in t.items()})
    with pytest.raises(InputError, match=r"language_model\.lm_head\.weight: F16"):
        merge_dirs({"a": ckpts / "a", "b": bad}, tmp_path, linear.make_combine(0.5))


def test_different_vision_towers_are_refused(ckpts, tmp_path):
    key = "vision_tower.vision_model.post_layernorm.weight"
    bad = rewrite(ckpts / "b", tmp_path / "bad", lambda t: {k: v + 1 if k == key else v for k, v in t.items()})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match="do not share a vision tower"):
        merge_dirs({"a": ckpts / "a", "b": bad}, out, linear.make_combine(0.5))


def test_config_mismatch_and_bad_params_are_refused(ckpts, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(ckpts / "b", bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["text_config"]["num_hidden_layers"] = 3
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="text_config.num_hidden_layers"):
        merge_dirs({"a": ckpts / "a", "b": bad}, tmp_path, linear.make_combine(0.5))
    with pytest.raises(InputError, match="weight"):
        run_merge(ctx_for(tmp_path, {"a": ckpts / "a", "b": ckpts / "b"}, weight=50), "linear")
    with pytest.raises(InputError, match="m1..mN"):
        run_merge(ctx_for(tmp_path, {"base": ckpts / "a", "m2": ckpts / "b"}), "ties")


def test_sharded_input_with_index_streams_and_keeps_its_layout(ckpts, tmp_path):
    sharded = tmp_path / "sharded"
    shutil.copytree(ckpts / "a", sharded)
    tensors = load_file(sharded / "model.safetensors")
    (sharded / "model.safetensors").unlink()
    keys = sorted(tensors)
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
    for name, part in zip(names, halves):
        save_file({k: tensors[k] for k in part}, sharded / name, metadata={"format": "pt"})
    weight_map = {k: n for n, part in zip(names, halves) for k in part}
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    out = tmp_path / "out"
    out.mkdir()
    metrics = merge_dirs({"a": sharded, "b": ckpts / "b"}, out, linear.make_combine(0.5))
    assert metrics["shards"] == 2 and sorted(p.name for p in out.glob("*.safetensors")) == names
    assert json.loads((out / "model.safetensors.index.json").read_text())["weight_map"] == weight_map
    b = load_file(ckpts / "b" / "model.safetensors")
    merged = {k: v for n in names for k, v in load_file(out / n).items()}
    assert set(merged) == set(tensors)
    for k in keys:
        torch.testing.assert_close(merged[k], (tensors[k] + b[k]) / 2, rtol=1e-6, atol=1e-7)


def test_merged_llava_loads_in_transformers_and_generates(ckpts, tmp_path):
    from repro.models.llava import load_llava

    out = tmp_path / "m"
    out.mkdir()
    merge_dirs({"a": ckpts / "a", "b": ckpts / "b"}, out, linear.make_combine(0.3))
    model, processor = load_llava(out)  # raises on any missing/unexpected key
    inputs = processor.tokenizer("[INST] What shape is shown? [/INST]", return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 3


def test_bench_merge_runs_at_toy_size(tmp_path):
    from repro.bench.merge import bench_merge

    result = bench_merge(tmp_path / "bench", size_gb=0.02, shard_gb=0.01, repeats=1)
    assert result["shards"] >= 2 and result["copy_mb_per_s"] > 0 and result["merge_mb_per_s"] > 0
    assert result["merge_peak_rss_mb"] > 0 and isinstance(result["goal_met"], bool)
    assert not any((tmp_path / "bench").iterdir())  # the checkpoints were cleaned up


# --- conventions next to mergekit's (tests/golden/mergekit_0.1.5.json: mergekit 0.1.5's own output
# on these tensors, made once with the unpacked wheel; the kit does not depend on mergekit) -------

GOLDEN = Path(__file__).parents[1] / "golden" / "mergekit_0.1.5.json"


def _golden():
    data = json.loads(GOLDEN.read_text())
    base = torch.tensor(data["base"], dtype=torch.float32)
    models = [torch.tensor(m, dtype=torch.float32) for m in data["models"]]
    return data, base, models


@pytest.mark.parametrize("index", range(4))
def test_ties_mergekit_convention_is_mergekits_ties_bit_for_bit(index):
    data, base, models = _golden()
    case = [c for c in data["cases"] if c["method"] == "ties"][index]
    out = ties.ties(base.clone(), models[:case["models"]], case["weights"], case["density"], case["scale"],
                    convention="mergekit")
    assert torch.equal(out, torch.tensor(case["expected"], dtype=torch.float32))
    # these tensors have threshold ties and zero votes (and some weights != 1): the kit's own
    # convention differs from mergekit's on them
    kit = ties.ties(base.clone(), models[:case["models"]], case["weights"], case["density"], case["scale"])
    assert not torch.equal(kit, out)


def test_ties_conventions_agree_where_they_agree():
    data = json.loads(GOLDEN.read_text())["continuous"]
    base = torch.tensor(data["base"], dtype=torch.float32)
    models = [torch.tensor(m, dtype=torch.float32) for m in data["models"]]
    expected = torch.tensor(data["expected"], dtype=torch.float32)
    for convention in ("kit", "mergekit"):
        assert torch.equal(ties.ties(base.clone(), models, data["weights"], data["density"],
                                     convention=convention), expected)


def test_each_ties_convention_difference_on_hand_made_tensors():
    z = torch.zeros(4)
    # trim size: 0.5 of 5 entries is round(2.5) = 2 (kit) vs floor = 2; 0.7 of 5: round 4 vs floor 3
    d = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    assert (ties.trim(d, 0.7) != 0).sum() == 4 and (ties.trim_exact_k(d, 0.7) != 0).sum() == 3
    # ties at the threshold: the kit keeps all three 2.0s, mergekit exactly k = 2 of the four entries
    d = torch.tensor([3.0, 2.0, 2.0, 2.0])
    assert (ties.trim(d, 0.5) != 0).sum() == 4 and (ties.trim_exact_k(d, 0.5) != 0).sum() == 2
    # a zero vote: the kit keeps the base, mergekit elects + and keeps the positive entry
    m1, m2 = torch.tensor([1.0, 0, 0, 0]), torch.tensor([-1.0, 0, 0, 0])
    assert ties.ties(z.clone(), [m1, m2], [1.0, 1.0], 1.0)[0] == 0.0
    assert ties.ties(z.clone(), [m1, m2], [1.0, 1.0], 1.0, convention="mergekit")[0] == 1.0
    # the mean: over agreeing models (kit) vs over their weights (mergekit)
    m1, m2 = torch.tensor([2.0, 0, 0, 0]), torch.tensor([4.0, 0, 0, 0])
    assert ties.ties(z.clone(), [m1, m2], [0.5, 1.0], 1.0)[0] == (1.0 + 4.0) / 2
    assert ties.ties(z.clone(), [m1, m2], [0.5, 1.0], 1.0, convention="mergekit")[0] == (1.0 + 4.0) / 1.5


@pytest.mark.parametrize("index", range(2))
def test_task_arithmetic_is_mergekits_bit_for_bit(index):
    data, base, models = _golden()
    case = [c for c in data["cases"] if c["method"] == "task_arithmetic"][index]
    out = task_arithmetic.task_arithmetic(base.clone(), models[:2], case["weights"])
    assert torch.equal(out, torch.tensor(case["expected"], dtype=torch.float32))


def test_linear_is_mergekits_within_one_ulp():
    from repro.merge.linear import linear

    data, _, models = _golden()
    for case in (c for c in data["cases"] if c["method"] == "linear"):
        out = linear(models[0], models[1], case["weight"])
        expected = torch.tensor(case["expected"], dtype=torch.float32)
        ulp = (torch.nextafter(expected, torch.full_like(expected, float("inf"))) - expected).abs()
        assert ((out - expected).abs() <= ulp).all()


def test_ties_stage_records_its_convention(ckpts, tmp_path):
    inputs = {"base": ckpts / "a", "m1": ckpts / "b", "m2": ckpts / "c"}
    ctx = ctx_for(tmp_path, inputs, "merge/ties", density=0.5, convention="mergekit")
    run_merge(ctx, "ties")
    assert ctx.protocol_choices["merge_convention"] == "mergekit"
    assert ctx.protocol_choices["merge_disjoint_mean"].startswith("divided by the sum")
    with pytest.raises(InputError, match="convention: 'peft'"):
        run_merge(ctx_for(tmp_path, inputs, "merge/ties", convention="peft"), "ties")
