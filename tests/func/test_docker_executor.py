"""A real tiny stage in a real container: the docker executor against a Docker daemon and the
CPU smoke image (`make docker-smoke-offline` builds it). Skips, saying why, where there is no
daemon or no image; `.ci/run` builds the image and runs this where a daemon is available."""

import json
import socket

import pytest

from stagefns import one_stage_experiments
from repro.config.load import load_experiment
from repro.executors import settings
from repro.executors.base import StageFailed
from repro.executors.docker import DockerExecutor
from repro.pipeline.runner import Runner
from repro.provenance.record import execution_record, read_json
from repro.provenance.verify import verify_manifest

IMAGE = "repro-smoke:dev"


@pytest.fixture(scope="module")
def client():
    docker = pytest.importorskip("docker", reason="docker SDK not installed")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker daemon reachable ({exc.__class__.__name__})")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {IMAGE} not built (make docker-smoke-offline)")
    return client


def test_tiny_stage_runs_in_the_container_and_its_record_names_the_image(client, tmp_path):
    root = one_stage_experiments(tmp_path / "experiments", "{dataset: llava_pretrain, size: enormous}")
    conf = dict(settings("docker", "tiny"), hf_cache=None)
    runs = tmp_path / "runs"
    log = []
    runner = Runner(runs, echo=log.append, executor=DockerExecutor(conf, "tiny", client=client))
    manifest = runner.run(load_experiment("one", "tiny", (), root=root))
    data = json.loads(manifest.read_text())
    statement = read_json(runs / data["stages"]["world"]["statement"])
    record = execution_record(statement)
    image = client.images.get(IMAGE)
    assert record["executor"] == "docker" and record["image"]["id"] == image.id
    assert record["image"]["labels"]["org.opencontainers.image.base.digest"].startswith("sha256:")
    assert record["container"]["exit_code"] == 0
    assert record["container"]["hostname"] != socket.gethostname()  # it really ran elsewhere
    assert record["image_env"] and record["gpus"] == []
    assert any((runs / "one" / "stages" / "world").iterdir())
    system = read_json(runs / "systems" / f"{statement['predicate']['runDetails']['byproducts'][0]['digest']['sha256']}.json")
    assert system["library_versions"]["container_base"] == record["image_env"]
    v, _ = verify_manifest(manifest)
    # PASSED in an image built on the pinned base; in one built offline (make docker-image-offline),
    # WARNED for that alone: its labels say which pinned base its local base stands in for
    others = [c for c in v.checks if c.level != "pass" and "built offline on the local stand-in base" not in c.detail]
    assert v.verdict() in ("PASSED", "WARNED") and not others, others
    # a stage that fails inside the container: its error line comes back, nothing is published
    with pytest.raises(StageFailed, match=r"exit 2: the stage failed; nothing was published(.|\n)*param size"):
        runner.run(load_experiment("bad", "tiny", (), root=root))
    assert len([p for p in (runs / "store").iterdir() if p.name != ".tmp"]) == 1
