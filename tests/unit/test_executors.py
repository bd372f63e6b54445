"""The docker executor against a fake Docker client that really runs the stage (as `repro
stage-exec` would in the container), and what `repro verify` says of where stages ran. The slurm
executor, `repro plan` and `repro doctor`: test_executors_slurm.py."""

import json
import os
from pathlib import Path

import pytest

from repro.config.load import load_experiment
from repro.executors import image_role, make_executor, settings
from repro.executors.base import StageFailed
from repro.executors.docker import CONTAINER_RUNS, DockerExecutor
from repro.executors.local import probe
from repro.pipeline.runner import Runner
from repro.provenance import pins
from repro.provenance.record import execution_record, read_json
from repro.provenance.verify import verify_manifest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_FAKEtokenFAKEtokenFAKEtokenFAKE0000"  # planted by tests/conftest.py
IMAGE_ID = "sha256:" + "ab" * 32


LOCK = pins.load_lock(ROOT / "manifest.lock")
CPU_BASE = LOCK["images"]["cpu"]


class FakeImage:
    """The CPU image as `docker build $(pins build-args cpu)` labels it: built on the pinned base."""

    def __init__(self, ref):
        self.id = IMAGE_ID
        self.labels = {"org.opencontainers.image.title": "repro-cpu",
                       "org.opencontainers.image.base.digest": CPU_BASE["digest"],
                       "org.opencontainers.image.base.name": CPU_BASE["ref"],
                       "org.repro.base.stand-in-for": "",
                       "maintainer": "someone"}
        lock_sha = LOCK["python_locks"]["requirements/cpu.txt"]["sha256"]
        self.attrs = {"RepoDigests": [], "Config": {"Env": ["REPRO_PYTHON_LOCK_SHA256=" + lock_sha,
                                                             "PATH=/opt/venv/bin"]}}


class FakeContainer:
    """Runs `repro stage-exec` in this process with the container's paths mapped back to the
    host's, so the stage really computes; or dies with ``exit_code`` after printing a line."""

    def __init__(self, command, volumes, exit_code=0, oom=False):
        self.id = "c0ffee" * 10 + "abcd"
        self.command, self.volumes, self.exit_code, self.oom = command, volumes, exit_code, oom
        self.attrs = {}
        self.removed = False

    def _host(self, path):
        for host, spec in self.volumes.items():
            if path.startswith(spec["bind"]):
                return host + path[len(spec["bind"]):]
        return path

    def logs(self, stream, follow):
        if self.exit_code:
            yield b"loading model\nRuntimeError: CUDA out of memory"
            return
        from repro.cli import main

        args = [self._host(a) if a.startswith("/workspace") else a for a in self.command]
        main(args)
        yield b"stage done\n"

    def wait(self):
        return {"StatusCode": self.exit_code}

    def reload(self):
        self.attrs = {"State": {"OOMKilled": self.oom}}

    def remove(self, force):
        self.removed = True


class FakeClient:
    def __init__(self, exit_code=0, oom=False, probe_code=None):
        self.calls, self.pulled = [], []
        self.exit_code, self.oom, self.probe_code = exit_code, oom, probe_code
        self.images = self
        self.containers = self
        self.known = {"repro-smoke:dev", "repro-train:dev", "repro-eval:dev"}

    # images
    def get(self, ref):
        from docker.errors import ImageNotFound

        if ref not in self.known:
            raise ImageNotFound(ref)
        return FakeImage(ref)

    def pull(self, ref):
        self.pulled.append(ref)
        return FakeImage(ref)

    # containers
    def run(self, image, command, **kw):
        self.calls.append({"image": image, "command": command, **kw})
        if command == ["stage-probe"]:
            found = probe()
            if self.probe_code:
                found["code"] = self.probe_code
            return json.dumps(found).encode()
        return FakeContainer(command, kw["volumes"], self.exit_code, self.oom)

    def info(self):
        return {"Name": "gpu-box-1", "ServerVersion": "27.0", "Runtimes": {"runc": {}, "nvidia": {}}}


def docker_executor(client, profile="tiny", **overrides):
    conf = settings("docker", profile)
    conf.update({"hf_cache": None, "package_cache": None, **overrides})
    return DockerExecutor(conf, profile, client=client)


def run_chain(experiments, runs, executor, profile="tiny"):
    exp = load_experiment("chain", profile, (), root=experiments)
    log = []
    return Runner(runs, echo=log.append, executor=executor).run(exp), log


def test_docker_executor_mounts_the_package_cache(experiments, tmp_path):
    """models/registry_tokenizer reads `make fetch-packages`' files in the container too."""
    from repro.executors.docker import CONTAINER_PACKAGES

    client = FakeClient()
    cache = tmp_path / "packages"
    run_chain(experiments, tmp_path / "runs", docker_executor(client, package_cache=str(cache)))
    call = next(c for c in client.calls if c["command"][0] == "stage-exec")
    assert call["volumes"][str(cache.resolve())] == {"bind": CONTAINER_PACKAGES, "mode": "rw"}
    assert call["environment"]["REPRO_PACKAGE_CACHE"] == CONTAINER_PACKAGES


def test_docker_executor_runs_stages_in_the_image_and_records_it(experiments, tmp_path):
    client = FakeClient()
    manifest, log = run_chain(experiments, tmp_path / "runs", docker_executor(client))
    runs = tmp_path / "runs"
    assert (runs / "chain" / "stages" / "c" / "text.txt").read_text() == "hellohello+world"
    stage_calls = [c for c in client.calls if c["command"][0] == "stage-exec"]
    assert len(stage_calls) == 3
    call = stage_calls[0]
    assert call["image"] == IMAGE_ID  # by ID, never by a tag that can move
    assert call["volumes"] == {str(runs.resolve()): {"bind": CONTAINER_RUNS, "mode": "rw"}}
    assert call["device_requests"] == []  # tiny profile: no GPUs
    assert call["environment"]["HF_TOKEN"] == TOKEN  # passed by name into the container ...
    assert call["user"] == f"{os.getuid()}:{os.getgid()}"
    assert call["command"][:3] == ["stage-exec", "--runs-dir", CONTAINER_RUNS]
    data = json.loads(manifest.read_text())
    statement = read_json(runs / data["stages"]["c"]["statement"])
    record = execution_record(statement)
    assert record["executor"] == "docker" and record["image"]["id"] == IMAGE_ID
    assert record["image"]["ref"] == "repro-smoke:dev" and record["image"]["lock_image"] == "cpu"
    assert "maintainer" not in record["image"]["labels"]
    assert record["container"]["exit_code"] == 0 and record["host"] == "gpu-box-1"
    assert record["env_passed"] == ["HF_TOKEN"]
    builder = statement["predicate"]["runDetails"]["builder"]
    assert builder["builderDependencies"][0]["digest"] == {"sha256": "ab" * 32}
    # ... and never written anywhere: records, logs, the build's request files
    for path in runs.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="ignore"), path
    assert not any(TOKEN in line for line in log)
    assert not list(runs.rglob("request.json")) and not list(runs.rglob("result.json"))
    # rerun: served from the store, no container started
    client.calls.clear()
    _, log = run_chain(experiments, runs, docker_executor(client))
    assert [c["command"] for c in client.calls] == [["stage-probe"]]
    assert all(" cached " in line for line in log if line.startswith("["))


def test_stage_key_follows_the_code_inside_the_image(experiments, tmp_path):
    local, _ = run_chain(experiments, tmp_path / "a", make_executor("local", "tiny"))
    same, _ = run_chain(experiments, tmp_path / "b", docker_executor(FakeClient()))
    other, _ = run_chain(experiments, tmp_path / "c", docker_executor(FakeClient(probe_code="0" * 64)))
    keys = [json.loads(m.read_text())["stages"]["a"]["key"] for m in (local, same, other)]
    assert keys[0] == keys[1] != keys[2]


def test_container_death_fails_the_stage_with_its_last_lines_and_publishes_nothing(experiments, tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(StageFailed) as err:
        run_chain(experiments, runs, docker_executor(FakeClient(exit_code=137, oom=True)))
    message = str(err.value)
    assert "exit 137" in message and "OOM killer" in message
    assert "RuntimeError: CUDA out of memory" in message and "nothing was published" in message
    assert not [p for p in (runs / "store").iterdir() if p.name != ".tmp"]
    # a rerun with a healthy container completes
    manifest, _ = run_chain(experiments, runs, docker_executor(FakeClient()))
    assert manifest.exists()


def test_gpu_requests_follow_the_stage(tmp_path):
    from docker.types import DeviceRequest

    ex = docker_executor(FakeClient(), profile="paper")
    assert ex.gpus_for("train/vl_adapt", {"launch": "accelerate_4gpu"}) == 4
    assert ex.gpus_for("evaluate/benchmark", {}) == 1
    assert ex.gpus_for("merge/linear", {}) == 0 and ex.gpus_for("data/fetch", {}) == 0
    assert ex._device_requests(4) == [DeviceRequest(count=4, capabilities=[["gpu"]])]
    assert docker_executor(FakeClient(), profile="paper", gpus="all").gpus_for("data/fetch", {}) == -1
    assert image_role("evaluate/judge") == "eval" and image_role("train/dpo") == "train"
    assert ex.describe("evaluate/benchmark", "paper") == {"executor": "docker", "image": "repro-eval:dev",
                                                          "role": "eval", "lock_image": "eval"}


def test_missing_image_says_how_to_build_it_and_digests_are_pulled():
    from repro.errors import InputError

    client = FakeClient()
    ex = docker_executor(client, images={"train": "nowhere:1", "eval": "reg.example/eval@sha256:" + "1" * 64})
    with pytest.raises(InputError, match=r"image 'nowhere:1' not found; build it with `docker build "
                                         r"\$\(python -m repro.provenance.pins build-args cpu\)"):
        ex.image("train")
    assert ex.image("eval").id == IMAGE_ID and client.pulled == ["reg.example/eval@sha256:" + "1" * 64]


def test_executor_settings_reject_unknown_keys(tmp_path):
    from repro.errors import InputError

    bad = tmp_path / "ex.yaml"
    bad.write_text("docker:\n  gpu: all\n")
    with pytest.raises(InputError, match=r"ex.yaml: docker.gpu: unknown setting"):
        settings("docker", "paper", bad)
    good = tmp_path / "ok.yaml"
    good.write_text("docker:\n  images: {train: my/train:1, eval: my/eval:1}\n")
    assert settings("docker", "paper", good)["images"] == {"train": "my/train:1", "eval": "my/eval:1"}
    assert settings("docker", "tiny")["images"]["eval"] == "repro-smoke:dev"


# ---------------------------------------------------------------------------- verify


def _rewrite_execution(runs, manifest, stage, execution, profile=None):
    from repro.provenance.record import seal, write_json_atomic
    from repro.provenance.digest import sha256_file

    data = json.loads(manifest.read_text())
    path = runs / data["stages"][stage]["statement"]
    statement = read_json(path)
    for item in statement["predicate"]["runDetails"]["byproducts"]:
        if item["name"] == "execution":
            item["annotations"] = execution
    if profile:
        statement["predicate"]["buildDefinition"]["externalParameters"]["profile"] = profile
    write_json_atomic(path, statement)
    data["stages"][stage]["statement_sha256"] = sha256_file(path)
    write_json_atomic(manifest, seal({k: v for k, v in data.items() if k != "manifest_sha256"}))


def test_verify_checks_the_image_a_stage_ran_in(experiments, tmp_path):
    runs = tmp_path / "runs"
    manifest, _ = run_chain(experiments, runs, docker_executor(FakeClient()))
    v, _ = verify_manifest(manifest)
    # built on the pinned base with the locked Python set: PASSED, not WARNED
    assert v.verdict() == "PASSED", [c for c in v.checks if c.level != "pass"]
    record = execution_record(read_json(runs / json.loads(manifest.read_text())["stages"]["a"]["statement"]))
    offline = json.loads(json.dumps(record))
    offline["image"]["labels"].update({  # what scripts/docker/build-offline.sh builds
        "org.opencontainers.image.base.name": "repro-offline/debian:bookworm",
        "org.opencontainers.image.base.digest": "sha256:" + "cd" * 32,
        "org.repro.base.stand-in-for": f"{CPU_BASE['ref']}@{CPU_BASE['digest']}"})
    _rewrite_execution(runs, manifest, "a", offline)
    v, _ = verify_manifest(manifest)
    assert v.verdict() == "WARNED"
    assert any(c.name == "stage a" and c.level == "warn" and "built offline on the local stand-in base "
               "repro-offline/debian:bookworm@sha256:cdcd" in c.detail for c in v.checks)
    # another base, not declared a stand-in for the pin: fails
    offline["image"]["labels"]["org.repro.base.stand-in-for"] = ""
    _rewrite_execution(runs, manifest, "a", offline)
    v, _ = verify_manifest(manifest)
    assert any(c.level == "fail" and f"manifest.lock pins images.cpu at {CPU_BASE['digest']}" in c.detail
               for c in v.checks)
    # another Python lock: fails
    other_lock = json.loads(json.dumps(record))
    other_lock["image"]["python_lock_sha256"] = "ef" * 32
    _rewrite_execution(runs, manifest, "a", other_lock)
    v, _ = verify_manifest(manifest)
    assert any(c.level == "fail" and "with Python lock efef" in c.detail for c in v.checks)
    # unpinned in manifest.lock: said, not passed over
    from repro.provenance import verify as verify_mod

    _rewrite_execution(runs, manifest, "a", record)
    unpinned = json.loads(json.dumps(LOCK))
    unpinned["images"]["cpu"] = {"ref": CPU_BASE["ref"], "digest": None, "status": "unpinned"}
    orig = verify_mod.pins.load_lock
    try:
        verify_mod.pins.load_lock = lambda: unpinned
        v, _ = verify_manifest(manifest)
        assert any(c.level == "warn" and "images.cpu is unpinned" in c.detail for c in v.checks)
    finally:
        verify_mod.pins.load_lock = orig
    # a paper-profile stage run on the host: reported as a deviation
    _rewrite_execution(runs, manifest, "b", {"executor": "local"}, profile="paper")
    v, _ = verify_manifest(manifest)
    assert any(c.name == "stage b" and c.level == "warn" and "ran on the host" in c.detail for c in v.checks)


def test_interrupted_docker_stage_removes_its_container(experiments, tmp_path):
    class Interrupted(FakeClient):
        def run(self, image, command, **kw):
            found = super().run(image, command, **kw)
            if command[0] == "stage-exec":
                def logs(stream, follow):
                    raise KeyboardInterrupt
                    yield b""
                found.logs = logs
                self.container = found
            return found

    client = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        run_chain(experiments, tmp_path / "runs", docker_executor(client))
    assert client.container.removed  # not left running after the runner stops
    assert not [p for p in (tmp_path / "runs" / "store").iterdir() if p.name != ".tmp"]


def test_an_image_with_another_manifest_lock_is_refused(experiments, tmp_path):
    from repro.errors import InputError

    class OtherLock(FakeClient):
        def run(self, image, command, **kw):
            out = super().run(image, command, **kw)
            if command == ["stage-probe"]:
                return json.dumps(dict(json.loads(out), lock_sha256="0" * 64)).encode()
            return out

    with pytest.raises(InputError, match=r"stage 'a': docker executor: the manifest.lock where it runs "
                                         r"\(sha256 0{64}\) differs from this checkout's"):
        run_chain(experiments, tmp_path / "runs", docker_executor(OtherLock()))
