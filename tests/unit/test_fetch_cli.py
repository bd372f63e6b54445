"""The fetch CLI (`repro fetch`, `data check`, `lock`) and Hub fetches at other revisions.
No network: the Hub is monkeypatched."""

import hashlib
import shutil
from pathlib import Path

import click
import huggingface_hub
import pytest
from click.testing import CliRunner

from repro.cli.fetch import COMMANDS
from repro.data.synthetic import generate
from repro.errors import InputError
from repro.provenance import pins
from fetch_helpers import (REV, traversal_vlguard, entry, make_lock,
                           one_line, run_stage, sha, tiny_llm)  # noqa: F401 (fixture)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli():
    group = click.Group("repro")
    for command in COMMANDS:
        group.add_command(command)
    return group


def test_data_check_good_and_traversal(cli, tmp_path):
    good = tmp_path / "good"
    generate("vlguard", good, seed=0, size="tiny")
    result = CliRunner().invoke(cli, ["data", "check", "vlguard", str(good), "--split", "train", "--split", "test"])
    assert result.exit_code == 0, result.output
    from repro.data import DATASETS

    for split in ("train", "test"):
        assert f"vlguard {split}: {len(DATASETS.get('vlguard')(good, split))} records" in result.output
    assert "  safe image: " in result.output
    bad = traversal_vlguard(tmp_path / "bad")
    result = CliRunner().invoke(cli, ["data", "check", "vlguard", str(bad)])
    assert result.exit_code != 0 and isinstance(result.exception, InputError)
    assert "escapes the dataset root" in str(result.exception) and "\n" not in str(result.exception)


def test_fetch_command_downloads_to_dir(cli, tmp_path, monkeypatch):
    def fake_snapshot(repo_id, *, revision, repo_type, local_dir, **kw):
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / "question.jsonl").write_text("{}\n")
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    lock_file = tmp_path / "manifest.lock"
    files = {"question.jsonl": hashlib.sha256(b"{}\n").hexdigest()}
    pins.write_lock(make_lock(datasets={"sorry": entry("org/sorry", files=files)}), lock_file)
    monkeypatch.setenv("REPRO_LOCK", str(lock_file))
    result = CliRunner().invoke(cli, ["fetch", "sorry", "--to", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert f"REPRO_LOCAL_SORRY={tmp_path / 'm' / 'sorry'}" in result.output
    assert "1 pinned digests checked" in result.output


class FakeFile:
    def __init__(self, path, lfs_sha=None):
        self.path = path
        self.lfs = type("L", (), {"sha256": lfs_sha})() if lfs_sha else None


class FakeApi:
    def model_info(self, repo_id, **kw):
        return type("I", (), {"sha": "2" * 40})()

    dataset_info = model_info

    def list_repo_tree(self, repo_id, **kw):
        assert kw["revision"] == "2" * 40 and kw["recursive"]
        return [FakeFile("config.json"), FakeFile("model.safetensors", "3" * 64)]


def test_lock_lists_and_resolves(cli, tmp_path, monkeypatch):
    lock_file = tmp_path / "manifest.lock"
    pins.write_lock(make_lock(models={"tiny": entry("org/tiny", revision=None)},
                              datasets={"gh": entry("o/gh", host="github")}), lock_file)
    result = CliRunner().invoke(cli, ["lock", "--lock", str(lock_file)])
    assert result.exit_code == 0 and "unpinned   models.tiny" in result.output
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(cli, ["lock", "--resolve", "--lock", str(lock_file)])
    assert isinstance(result.exception, InputError) and "HF_HUB_OFFLINE" in str(result.exception)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    result = CliRunner().invoke(cli, ["lock", "--resolve", "--lock", str(lock_file)])
    assert result.exit_code == 0, result.output
    lock = pins.load_lock(lock_file)
    tiny = lock["models"]["tiny"]
    assert (tiny["revision"], tiny["status"], tiny["files"]) == ("2" * 40, "pinned", {"model.safetensors": "3" * 64})
    assert lock_file.read_text() == pins.dump_lock(lock)  # canonical, deterministic text


def test_unpinned_hub_fetch_records_resolved_revision(tmp_path, monkeypatch):
    seen = []

    class Api:
        def repo_info(self, repo_id, repo_type=None, **kw):
            return type("I", (), {"sha": "4" * 40})()

    def fake_snapshot(repo_id, *, revision, repo_type, local_dir, **kw):
        seen.append(revision)
        generate("sorry_bench", Path(local_dir), seed=0, size="tiny")
        return local_dir

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    lock = make_lock(datasets={"sorry_bench": entry("org/sorry", revision=None)})
    ctx = run_stage(tmp_path, "data/fetch", {"dataset": "sorry_bench", "allow_unpinned": True}, lock)
    assert seen == ["4" * 40]  # the head is resolved first, then exactly that commit is downloaded
    ann = ctx.dependencies[0]["annotations"]
    assert ann["revision"] == "4" * 40 and ann["unpinned"] is True and ann["source"] == "hub"


def test_mirror_at_another_revision_is_refused(tiny_llm, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(tiny_llm, mirror)
    meta = mirror / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "config.json.metadata").write_text("5" * 40 + "\netag\n0\n")
    lock = make_lock(models={"tiny": entry("org/tiny")})
    with pytest.raises(InputError) as err:
        run_stage(tmp_path, "models/fetch", {"model": "tiny", "template": "llama2", "local_dir": str(mirror)}, lock)
    one_line(err, "5" * 40, REV)
