"""Fetching pinned models/datasets: mirrors, digests, unpinned/gated/GitHub refusals, pickle
conversion, ``repro fetch``/``data check``/``lock``. No network: the Hub is monkeypatched."""

import json
import shutil
import zipfile
from pathlib import Path

import httpx2
import huggingface_hub
from huggingface_hub import errors as hf_errors
import pytest

from repro.data.synthetic import generate
from repro.errors import InputError
from fetch_helpers import (REV, FAKE_TOKEN, traversal_vlguard, entry, make_lock,
                           one_line, run_stage, sha, tiny_llm)  # noqa: F401 (fixture)



@pytest.fixture(scope="module")
def pickled_llm(tiny_llm, tmp_path_factory):
    """The tiny LLM re-saved the way tulu-2-7b ships: two pytorch_model-*.bin shards + index."""
    import torch
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("pickled")
    for f in tiny_llm.iterdir():
        if f.suffix != ".safetensors" and f.name != "repro_model.json":
            shutil.copy(f, root / f.name)
    state = load_file(tiny_llm / "model.safetensors")
    names = sorted(state)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:]), start=1):
        shard = f"pytorch_model-0000{i}-of-00002.bin"
        torch.save({k: state[k] for k in part}, root / shard)
        weight_map.update({k: shard for k in part})
    (root / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return root, state


# --------------------------------------------------------------------------- models/fetch


def test_model_from_env_mirror_is_linked_and_recorded(tiny_llm, tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_LOCAL_TINY", str(tiny_llm))
    files = {"model.safetensors": sha(tiny_llm / "model.safetensors")}
    lock = make_lock(models={"tiny": entry("org/tiny", files=files)})
    ctx = run_stage(tmp_path, "models/fetch", {"model": "tiny", "template": "llama2"}, lock)
    out = ctx.out
    assert (out / "model.safetensors").stat().st_ino == (tiny_llm / "model.safetensors").stat().st_ino
    assert json.loads((out / "repro_model.json").read_text()) == {"architecture": "causal_lm", "template": "llama2"}
    (dep,) = ctx.dependencies
    assert dep["uri"] == "hf://org/tiny" and "dirHash" in dep["digest"]
    ann = dep["annotations"]
    assert (ann["lock_key"], ann["lock_kind"], ann["revision"], ann["source"]) == ("tiny", "models", REV, "local")
    assert ann["verified_files"] == files
    for f in out.rglob("*"):
        if f.is_file():
            assert FAKE_TOKEN.encode() not in f.read_bytes()
    assert FAKE_TOKEN not in json.dumps(ctx.dependencies)


def test_model_digest_mismatch_names_file_and_both_digests(tiny_llm, tmp_path):
    lock = make_lock(models={"tiny": entry("org/tiny", files={"model.safetensors": "0" * 64})})
    with pytest.raises(InputError) as err:
        run_stage(tmp_path, "models/fetch", {"model": "tiny", "template": "llama2", "local_dir": str(tiny_llm)}, lock)
    one_line(err, "model.safetensors", "0" * 64, sha(tiny_llm / "model.safetensors"))


def test_unpinned_refused_unless_allowed(tiny_llm, tmp_path):
    lock = make_lock(models={"tiny": entry("org/tiny", revision=None)})
    params = {"model": "tiny", "template": "llama2", "local_dir": str(tiny_llm)}
    with pytest.raises(InputError) as err:
        run_stage(tmp_path, "models/fetch", params, lock)
    one_line(err, "models.tiny.revision", "unpinned", "allow_unpinned")
    ctx = run_stage(tmp_path / "b", "models/fetch", {**params, "allow_unpinned": True}, lock)
    assert ctx.dependencies[0]["annotations"]["unpinned"] is True


def test_llm_needs_a_template(tiny_llm, tmp_path):
    lock = make_lock(models={"tiny": entry("org/tiny")})
    with pytest.raises(InputError) as err:
        run_stage(tmp_path, "models/fetch", {"model": "tiny", "local_dir": str(tiny_llm)}, lock)
    one_line(err, "template")


def _raise(exc):
    def fake(*args, **kwargs):
        raise exc
    return fake


def _response(status):
    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/x"))


@pytest.mark.parametrize("exc", [
    hf_errors.GatedRepoError("Access to model org/gated is restricted", response=_response(401)),
    hf_errors.HfHubHTTPError("401 Unauthorized", response=_response(401)),
    hf_errors.HfHubHTTPError("403 Forbidden", response=_response(403)),
])
def test_gated_repo_says_which_page_and_hf_token(tmp_path, monkeypatch, exc):
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _raise(exc))
    lock = make_lock(models={"gated": entry("org/gated", gated=True)},
                     datasets={"gated_ds": entry("org/gds", gated=True)})
    with pytest.raises(InputError) as err:
        run_stage(tmp_path, "models/fetch", {"model": "gated", "template": "llama2"}, lock)
    msg = one_line(err, "https://huggingface.co/org/gated", "HF_TOKEN")
    assert FAKE_TOKEN not in msg
    with pytest.raises(InputError) as err:
        run_stage(tmp_path / "d", "data/fetch", {"dataset": "gated_ds", "loader": "sorry_bench"}, lock)
    one_line(err, "https://huggingface.co/datasets/org/gds", "HF_TOKEN")


def test_hub_download_at_pinned_revision_skips_pickles(tiny_llm, tmp_path, monkeypatch):
    calls = []

    def fake_snapshot(repo_id, *, revision, repo_type, local_dir, allow_patterns=None, ignore_patterns=None, **kw):
        calls.append((repo_id, revision, repo_type, ignore_patterns, kw.get("token")))
        for f in tiny_llm.iterdir():
            shutil.copy(f, Path(local_dir) / f.name)
        (Path(local_dir) / "training_args.bin").write_bytes(b"pickle")
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    lock = make_lock(models={"tiny": entry("org/tiny")})
    ctx = run_stage(tmp_path, "models/fetch", {"model": "tiny", "template": "tulu"}, lock)
    assert calls[0][:3] == ("org/tiny", REV, "model") and "*.bin" in calls[0][3]
    assert calls[0][4] is None  # the token is left to huggingface_hub (HF_TOKEN / login)
    assert not (ctx.out / "training_args.bin").exists()
    assert ctx.dependencies[0]["annotations"]["source"] == "hub"
    assert not list((tmp_path / "build").glob(".download-*"))  # temporary download folder removed


def test_github_dataset_needs_a_mirror(tmp_path):
    lock = make_lock(datasets={"figstep": entry("ThuCCSLab/FigStep", host="github")})
    with pytest.raises(InputError) as err:
        run_stage(tmp_path, "data/fetch", {"dataset": "figstep"}, lock)
    one_line(err, "github", "REPRO_LOCAL_FIGSTEP")


# --------------------------------------------------------------------------- pickle weights


def test_pickle_conversion_round_trip(pickled_llm, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    root, state = pickled_llm
    bins = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    lock = make_lock(models={"tulu": entry("org/tulu", files={b: sha(root / b) for b in bins})})
    ctx = run_stage(tmp_path, "models/fetch", {"model": "tulu", "template": "tulu", "allow_pickle": True,
                                               "local_dir": str(root)}, lock)
    out = ctx.out
    assert not list(out.glob("*.bin")) and not (out / "pytorch_model.bin.index.json").exists()
    index = json.loads((out / "model.safetensors.index.json").read_text())
    converted = {}
    for shard in sorted(set(index["weight_map"].values())):
        converted.update(load_file(out / shard))
    assert sorted(converted) == sorted(state)
    assert all(converted[k].equal(state[k]) and converted[k].dtype == state[k].dtype for k in state)
    conv = ctx.dependencies[0]["annotations"]["converted_from_pickle"]
    assert conv[bins[0]]["sha256"] == sha(root / bins[0])
    assert conv[bins[0]]["safetensors_sha256"] == sha(out / "model-00001-of-00002.safetensors")
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    assert model.lm_head.weight.equal(state["lm_head.weight"])


def test_hub_bin_only_repo_needs_allow_pickle(pickled_llm, tmp_path, monkeypatch):
    import fnmatch

    root, _ = pickled_llm
    calls = []

    def fake_snapshot(repo_id, *, revision, repo_type, local_dir, allow_patterns=None, ignore_patterns=None, **kw):
        calls.append(allow_patterns)
        for f in root.iterdir():
            if ignore_patterns and any(fnmatch.fnmatch(f.name, p) for p in ignore_patterns):
                continue
            if allow_patterns and not any(fnmatch.fnmatch(f.name, p) for p in allow_patterns):
                continue
            shutil.copy(f, Path(local_dir) / f.name)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    bins = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    lock = make_lock(models={"tulu": entry("org/tulu", files={b: sha(root / b) for b in bins})})
    with pytest.raises(InputError) as err:
        run_stage(tmp_path, "models/fetch", {"model": "tulu", "template": "tulu"}, lock)
    one_line(err, "no *.safetensors", "allow_pickle: true")
    assert calls == [None]  # the 2 .bin shards were never downloaded
    ctx = run_stage(tmp_path / "b", "models/fetch", {"model": "tulu", "template": "tulu", "allow_pickle": True}, lock)
    assert calls[-1] == ["pytorch_model*.bin", "pytorch_model.bin.index.json"]
    assert (ctx.out / "model-00002-of-00002.safetensors").is_file() and not list(ctx.out.glob("*.bin"))


def test_pickle_refused_without_pin_or_permission(pickled_llm, tmp_path):
    root, _ = pickled_llm
    lock = make_lock(models={"tulu": entry("org/tulu")})
    params = {"model": "tulu", "template": "tulu", "local_dir": str(root)}
    with pytest.raises(InputError) as err:
        run_stage(tmp_path, "models/fetch", params, lock)
    one_line(err, "pickle", "allow_pickle")
    with pytest.raises(InputError) as err:
        run_stage(tmp_path / "b", "models/fetch", {**params, "allow_pickle": True}, lock)
    one_line(err, "models.tulu.files.pytorch_model-00001-of-00002.bin", "pin the digest first")


# --------------------------------------------------------------------------- data/fetch


def test_dataset_from_mirror_writes_marker_and_counts(tmp_path):
    mirror = tmp_path / "mirror"
    generate("sorry_bench", mirror, seed=0, size="tiny")
    files = {"question.jsonl": sha(mirror / "question.jsonl")}
    lock = make_lock(datasets={"sorry_bench": entry("org/sorry", files=files)})
    ctx = run_stage(tmp_path, "data/fetch", {"dataset": "sorry_bench", "local_dir": str(mirror)}, lock)
    marker = json.loads((ctx.out / "DATASET.json").read_text())
    assert marker == {"dataset": "sorry_bench", "source": "local", "id": "org/sorry", "revision": REV,
                      "lock_key": "sorry_bench"}
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    assert metrics["counts"]["default"]["n"] > 0
    assert ctx.dependencies[0]["annotations"]["lock_kind"] == "datasets"


def test_broken_mirror_fails_at_fetch(tmp_path):
    mirror = traversal_vlguard(tmp_path / "mirror")
    lock = make_lock(datasets={"vlguard": entry("org/vlguard")})
    with pytest.raises(InputError) as err:
        run_stage(tmp_path, "data/fetch", {"dataset": "vlguard", "local_dir": str(mirror)}, lock)
    one_line(err, "train.json", "..")


def test_zip_extraction_and_zip_slip(tmp_path):
    mirror = tmp_path / "mirror"
    generate("llava_pretrain", mirror, seed=0, size="tiny")
    with zipfile.ZipFile(mirror / "images.zip", "w") as zf:
        for img in sorted((mirror / "images").rglob("*.*")):
            zf.write(img, img.relative_to(mirror / "images").as_posix())
    shutil.rmtree(mirror / "images")
    lock = make_lock(datasets={"llava_pretrain": entry("org/pretrain")})
    ctx = run_stage(tmp_path, "data/fetch", {"dataset": "llava_pretrain", "local_dir": str(mirror)}, lock)
    assert (ctx.out / "images").is_dir() and not (ctx.out / "images.zip").exists()
    with zipfile.ZipFile(mirror / "images.zip", "a") as zf:
        zf.writestr("../evil.png", b"x")
    with pytest.raises(InputError) as err:
        run_stage(tmp_path / "b", "data/fetch", {"dataset": "llava_pretrain", "local_dir": str(mirror)}, lock)
    one_line(err, "images.zip", "escapes")
