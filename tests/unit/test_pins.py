"""manifest.lock: schema, canonical form, lock-file digests, and one-line errors for bad pins."""

import re
from pathlib import Path

import pytest
import yaml

from repro.errors import InputError
from repro.provenance import pins
from repro.provenance.pins import image_builds
from repro.provenance.pins.__main__ import main as pins_cli

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "manifest.lock"
DIGEST = "sha256:" + "ab" * 32

MODELS = {
    "llama2_7b_chat", "tulu2_7b", "clip_vit_l14_336", "sorry_bench_judge", "llama_guard3_8b",
    "llama_guard3_11b_vision", "wildguard", "harmbench_cls", "tulu2_vl_ckpt_8600",
    "tulu2_vl_dpo_saferlhf", "tulu2_vl_dpo_dataaug", "tulu2_dpo_saferlhf", "tulu2_dpo_saferlhf_vl",
}
DATASETS = {
    "llava_pretrain", "llava_instruct", "vlguard", "pku_saferlhf", "spa_vl", "sorry_bench",
    "wildjailbreak", "mm_safetybench", "siuo", "figstep", "mmbench", "mme", "seed_bench",
}


@pytest.fixture(scope="module")
def lock():
    return pins.load_lock(LOCK)


def _write(tmp_path, lock):
    path = tmp_path / "manifest.lock"
    path.write_text(yaml.safe_dump(lock, sort_keys=True))
    return path


def _one_line_error(path, *needles):
    with pytest.raises(InputError) as err:
        pins.load_lock(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


# --------------------------------------------------------------------------- the real lock


def test_lock_loads_and_is_canonical(lock):
    assert lock["schema"] == pins.SCHEMA
    assert set(lock["images"]) == {"train", "eval", "cpu"}
    # Deterministic formatting: the file is exactly what the writer would produce.
    assert LOCK.read_text() == pins.dump_lock(lock)


def test_every_expected_model_and_dataset_is_listed(lock):
    assert MODELS <= set(lock["models"])
    assert DATASETS <= set(lock["datasets"])


def test_revisions_are_full_shas_or_unpinned(lock):
    for kind in ("models", "datasets"):
        for key, pin in lock[kind].items():
            if pin["revision"] is None:
                assert pin["status"] == "unpinned", f"{kind}.{key}"
            else:
                assert re.fullmatch(r"[0-9a-f]{40}", pin["revision"]), f"{kind}.{key}"
                assert pin["status"] == "pinned", f"{kind}.{key}"


def test_short_only_pins_stay_unpinned(lock):
    # PINS.md gives only short SHAs (or nothing) for these; inventing the rest is not allowed.
    for kind, key in [("models", "llama_guard3_11b_vision"), ("models", "tulu2_vl_dpo_dataaug"),
                      ("datasets", "sorry_bench"), ("datasets", "seed_bench"), ("datasets", "vlguard")]:
        assert lock[kind][key]["revision"] is None


def test_base_images_are_pinned_with_their_source(lock):
    for name, img in lock["images"].items():
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", img["digest"]) and img["status"] == "pinned", name
        assert img["source"] == "pinned in public Dockerfiles; not read from a registry here", name


def test_python_lock_digests_match_files(lock):
    assert pins.stale_python_locks(lock, ROOT) == []
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "requirements").glob("*.txt")}
    assert set(lock["python_locks"]) == on_disk


def test_lock_path_honours_env(monkeypatch, tmp_path):
    monkeypatch.delenv("REPRO_LOCK", raising=False)
    assert pins.lock_path() == ROOT / "manifest.lock"
    monkeypatch.setenv("REPRO_LOCK", str(tmp_path / "other.lock"))
    assert pins.lock_path() == tmp_path / "other.lock"


# --------------------------------------------------------------------------- corrupted locks


@pytest.mark.parametrize(
    "edit, needles",
    [
        (lambda d: d["models"]["tulu2_7b"].update(revision="4e4bd56"), ["models.tulu2_7b.revision", "40-hex"]),
        (lambda d: d["models"]["tulu2_7b"].update(revison="x"), ["models.tulu2_7b.revison", "unknown key", "revision"]),
        (lambda d: d["datasets"]["figstep"].update(status="unpinned"), ["datasets.figstep.status"]),
        (lambda d: d["datasets"]["sorry_bench"].update(status="pinned"), ["datasets.sorry_bench.status"]),
        (lambda d: d["models"]["wildguard"].pop("license"), ["models.wildguard.license", "missing"]),
        (lambda d: d["models"]["wildguard"].update(gated="yes"), ["models.wildguard.gated"]),
        (lambda d: d["models"]["clip_vit_l14_336"]["files"].update({"pytorch_model.bin": "abc"}),
         ["models.clip_vit_l14_336.files.pytorch_model.bin"]),
        (lambda d: d["images"]["train"].update(digest="sha256:123"), ["images.train.digest"]),
        (lambda d: d["images"]["eval"].update(ref="nvidia/cuda@sha256:" + "a" * 64), ["images.eval.ref"]),
        (lambda d: d["images"]["eval"].pop("source"), ["images.eval.source", "missing"]),
        (lambda d: d["images"]["cpu"].update(source=""), ["images.cpu.source", "non-empty"]),
        (lambda d: d.update(extra={}), ["(top).extra", "unknown key"]),
        (lambda d: d.update(schema=2), ["schema"]),
        (lambda d: d["python_locks"]["requirements/cpu.txt"].update(sha256="zz"),
         ["python_locks.requirements/cpu.txt.sha256"]),
        (lambda d: d["datasets"].update({"Bad-Key": d["datasets"]["mme"]}), ["datasets.Bad-Key", "snake_case"]),
    ],
)
def test_corrupted_lock_names_file_and_key(tmp_path, lock, edit, needles):
    broken = yaml.safe_load(yaml.safe_dump(lock))
    edit(broken)
    _one_line_error(_write(tmp_path, broken), *needles)


def test_broken_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "manifest.lock"
    path.write_text("schema: 1\nimages: {train: [\n")
    _one_line_error(path, "line", "malformed YAML")


def test_missing_lock_names_file(tmp_path):
    _one_line_error(tmp_path / "nope.lock", "file not found")


def test_stale_python_lock_is_reported(tmp_path, lock):
    (tmp_path / "requirements").mkdir()
    for rel in lock["python_locks"]:
        (tmp_path / rel).write_bytes((ROOT / rel).read_bytes())
    first = sorted(lock["python_locks"])[0]
    (tmp_path / first).write_text("tampered\n")
    problems = pins.stale_python_locks(lock, tmp_path)
    assert problems == [f"manifest.lock: python_locks.{first}.sha256: stale; run `python -m repro.provenance.pins sync-locks`"]


# --------------------------------------------------------------------------- lookups and CLI


def test_find_pin_suggests_close_key(lock):
    assert pins.find_pin(lock, "datasets", "figstep")["id"] == "ThuCCSLab/FigStep"
    with pytest.raises(InputError, match=r"datasets\.figstpe: no such pin \(did you mean 'figstep'\?\)"):
        pins.find_pin(lock, "datasets", "figstpe")
    with pytest.raises(InputError, match="unknown section"):
        pins.find_pin(lock, "weights", "x")


def test_unpinned_image_refuses_build_args(lock):
    unpinned = yaml.safe_load(yaml.safe_dump(lock))
    unpinned["images"]["train"] = {"ref": "nvidia/cuda:13.0.1-devel-ubuntu24.04", "digest": None,
                                   "status": "unpinned"}
    with pytest.raises(InputError, match=r"images\.train\.digest: unpinned"):
        image_builds.build_args(unpinned, "train")


def test_cli_set_digest_then_build_args(tmp_path, lock, capsys):
    path = tmp_path / "manifest.lock"
    unpinned = yaml.safe_load(yaml.safe_dump(lock))
    unpinned["images"]["cpu"] = {"ref": lock["images"]["cpu"]["ref"], "digest": None, "status": "unpinned"}
    path.write_text(pins.dump_lock(unpinned))
    assert pins_cli(["--lock", str(path), "build-args", "cpu"]) == 2
    assert "images.cpu.digest: unpinned" in capsys.readouterr().err
    assert pins_cli(["--lock", str(path), "set-digest", "cpu", DIGEST]) == 0
    assert pins.load_lock(path)["images"]["cpu"]["source"].startswith("set with `pins set-digest` on 20")
    assert pins_cli(["--lock", str(path), "build-args", "cpu"]) == 0
    out = capsys.readouterr().out.split()
    ref = lock["images"]["cpu"]["ref"]
    assert out[:6] == ["-f", "Dockerfile.eval", "--build-arg", f"BASE_REF={ref}", "--build-arg", f"BASE_DIGEST={DIGEST}"]
    assert out[6:8] == ["--build-arg", f"PYTHON_LOCK_SHA256={lock['python_locks']['requirements/cpu.txt']['sha256']}"]
    assert "LOCK=cpu" in out
    assert pins_cli(["--lock", str(path), "set-digest", "cpu", "sha256:short"]) == 2
    assert pins.load_lock(path)["images"]["cpu"]["digest"] == DIGEST  # the bad value was not written


def test_offline_base_stands_in_for_the_pinned_base_by_image_id(lock):
    cpu = lock["images"]["cpu"]
    dockerfile, args = image_builds.build_arg_values(lock, "cpu", f"repro-offline/debian:bookworm@{DIGEST}")
    assert dockerfile == "Dockerfile.eval"
    assert args["BASE_IMAGE"] == DIGEST  # FROM <image ID>: a local image has no registry digest
    assert (args["BASE_REF"], args["BASE_DIGEST"]) == ("repro-offline/debian:bookworm", DIGEST)
    assert args["BASE_STAND_IN_FOR"] == f"{cpu['ref']}@{cpu['digest']}"  # said in a label
    assert args["PYTHON_LOCK_SHA256"] == lock["python_locks"]["requirements/cpu.txt"]["sha256"]
    assert "BASE_IMAGE" not in image_builds.build_arg_values(lock, "cpu")[1]  # FROM ref@digest then
    unpinned = yaml.safe_load(yaml.safe_dump(lock))
    unpinned["images"]["cpu"] = {"ref": cpu["ref"], "digest": None, "status": "unpinned"}
    assert image_builds.build_arg_values(unpinned, "cpu", f"x@{DIGEST}")[1]["BASE_STAND_IN_FOR"] == cpu["ref"]
    with pytest.raises(InputError, match=r"--offline-base 'debian:12': expected <name>@sha256:<64 hex>"):
        image_builds.build_arg_values(lock, "cpu", "debian:12")


def test_cli_compose_env(tmp_path, lock, capsys):
    pinned = yaml.safe_load(yaml.safe_dump(lock))
    for img in pinned["images"].values():
        img.update(digest=DIGEST, status="pinned", source="test")
    path = _write(tmp_path, pinned)
    assert pins_cli(["--lock", str(path), "compose-env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"EVAL_BASE_DIGEST={DIGEST}" in lines
    assert f"CPU_BASE_REF={lock['images']['cpu']['ref']}" in lines
    assert f"TRAIN_PYTHON_LOCK_SHA256={lock['python_locks']['requirements/train.txt']['sha256']}" in lines
