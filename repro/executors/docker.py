"""The docker executor: each stage runs in its image (train kinds in the train image, evaluation
kinds in the eval image) through the Docker SDK, as ``repro stage-exec`` on a request file.

The runs directory is bind-mounted at ``/workspace/runs`` (inputs, scratch, and the build
directory the stage writes into), the Hugging Face cache at ``/cache/huggingface``. GPUs are
given by device requests. ``HF_TOKEN``, ``OPENAI_API_KEY`` (chat judges, docs/judges.md) and a
few Hub switches are passed from this process's environment by name; their values never enter a
log line or a record. The image a stage ran in
is inspected (ID, repo digests, labels), not taken from its tag.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.executors.base import Executor, StageFailed, StageJob, image_role, lock_image
from repro.executors.resources import stage_gpus
from repro.fetch import packages
from repro.provenance import pins
from repro.provenance.pins import image_builds
from repro.stages.request import REQUEST_FILE, RESULT_FILE, StageResult, observed_fields, take_result

CONTAINER_RUNS = "/workspace/runs"
CONTAINER_HF = "/cache/huggingface"
CONTAINER_PACKAGES = "/cache/repro-packages"  # models/registry_tokenizer's registry files
# Passed into containers by name when set here; never logged, never recorded with values.
PASS_ENV = ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
            "HF_HUB_ENABLE_HF_TRANSFER", "REPRO_LAUNCH_DIR", "OPENAI_API_KEY")
# Labels of the kit's images worth keeping in a stage record (docs/containers.md).
KEPT_LABELS = ("org.opencontainers.image.title", "org.opencontainers.image.revision",
               "org.opencontainers.image.base.name", "org.opencontainers.image.base.digest",
               "org.repro.base.stand-in-for")
SIGNALS = {137: "killed (SIGKILL: out of memory or stopped)", 139: "crashed (SIGSEGV)",
           143: "terminated (SIGTERM)", 134: "aborted (SIGABRT)"}


def exit_reason(code: int, oom: bool) -> str:
    if oom:
        return f"exit {code}: killed by the kernel's OOM killer (container memory limit)"
    return f"exit {code}: " + SIGNALS.get(code, "the stage failed")


class DockerExecutor(Executor):
    name = "docker"

    def __init__(self, settings: dict[str, Any], profile: str, client=None):
        self.settings = settings
        self.profile = profile
        self._client = client
        self._images: dict[str, Any] = {}  # role -> docker Image
        self._probes: dict[str, dict] = {}  # image id -> probe
        self._daemon: dict | None = None

    # ------------------------------------------------------------------ docker plumbing

    @property
    def client(self):
        if self._client is None:
            try:
                import docker
            except ImportError:
                raise InputError("executor docker: the `docker` Python package is not installed "
                                 "(pip install -e '.[docker]')") from None
            try:
                self._client = docker.from_env()
                self._client.ping()
            except docker.errors.DockerException as exc:
                raise InputError(f"executor docker: cannot reach the Docker daemon ({exc})") from None
        return self._client

    def image_ref(self, role: str) -> str:
        images = self.settings.get("images") or {}
        ref = images.get(role)
        if not ref:
            raise InputError(f"executor docker: no image for role {role!r} (settings images.{role})")
        return ref

    def image(self, role: str):
        if role not in self._images:
            self._images[role] = self._resolve(self.image_ref(role), role)
        return self._images[role]

    def find_image(self, role: str):
        """The role's image if the daemon has it (never pulls or builds), else None."""
        from docker.errors import ImageNotFound

        try:
            return self.client.images.get(self.image_ref(role))
        except ImageNotFound:
            return None

    def _resolve(self, ref: str, role: str):
        from docker.errors import ImageNotFound

        try:
            return self.client.images.get(ref)
        except ImageNotFound:
            pass
        if "@sha256:" in ref and self.settings.get("pull", True):
            return self.client.images.pull(ref)
        if self.settings.get("build"):
            return self._build(ref, role)
        name = lock_image(self.profile, role)
        raise InputError(f"executor docker: image {ref!r} not found; build it with `docker build "
                         f"$(python -m repro.provenance.pins build-args {name}) -t {ref} .` "
                         f"(or set build: true), or name a pulled image by digest")

    def _build(self, ref: str, role: str):
        dockerfile, args = image_builds.build_arg_values(pins.load_lock(), lock_image(self.profile, role))
        image, _ = self.client.images.build(path=str(pins.repo_root()), dockerfile=dockerfile,
                                            buildargs=args, tag=ref, rm=True)
        return image

    def image_record(self, role: str) -> dict[str, Any]:
        image = self.image(role)
        attrs = image.attrs or {}
        env = dict(e.split("=", 1) for e in (attrs.get("Config") or {}).get("Env") or [] if "=" in e)
        return {"ref": self.image_ref(role), "id": image.id,
                "repo_digests": sorted(attrs.get("RepoDigests") or []),
                "labels": {k: v for k, v in (image.labels or {}).items() if k in KEPT_LABELS},
                "python_lock_sha256": env.get("REPRO_PYTHON_LOCK_SHA256"),
                "lock_image": lock_image(self.profile, role)}

    def daemon(self) -> dict[str, Any]:
        if self._daemon is None:
            info = self.client.info()
            self._daemon = {"host": info.get("Name"), "server_version": info.get("ServerVersion"),
                            "runtimes": sorted(info.get("Runtimes") or {})}
        return self._daemon

    # ------------------------------------------------------------------ container settings

    def _user(self) -> str:
        return str(self.settings.get("user") or f"{os.getuid()}:{os.getgid()}")

    def _env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in PASS_ENV if os.environ.get(k)}
        # a uid the image does not know has no writable home; libraries cache under $HOME
        env.update({"HOME": "/tmp", "TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
        if self.settings.get("package_cache"):
            env[packages.CACHE_ENV] = CONTAINER_PACKAGES
        return env

    def _volumes(self, runs: Path) -> dict[str, dict]:
        volumes = {str(runs.resolve()): {"bind": CONTAINER_RUNS, "mode": "rw"}}
        for setting, bind in (("hf_cache", CONTAINER_HF), ("package_cache", CONTAINER_PACKAGES)):
            cache = self.settings.get(setting)
            if cache:
                path = Path(os.path.expanduser(str(cache)))
                path.mkdir(parents=True, exist_ok=True)
                volumes[str(path.resolve())] = {"bind": bind, "mode": "rw"}
        return volumes

    def _device_requests(self, gpus: int) -> list:
        if gpus == 0:
            return []
        from docker.types import DeviceRequest

        return [DeviceRequest(count=-1 if gpus < 0 else gpus, capabilities=[["gpu"]])]

    def gpus_for(self, kind: str, params: dict) -> int:
        setting = self.settings.get("gpus", "auto")
        if setting == "auto":
            return stage_gpus(kind, params, self.profile)
        if setting == "all":
            return -1
        if setting in (None, "none", 0):
            return 0
        if isinstance(setting, int) and setting > 0:
            return setting
        raise InputError(f"executor docker: gpus: {setting!r}; expected auto, all, none or a count")

    # ------------------------------------------------------------------ executor interface

    def probe(self, role: str) -> dict[str, Any]:
        image = self.image(role)
        if image.id not in self._probes:
            out = self._container_output(image, ["stage-probe"])
            try:
                self._probes[image.id] = json.loads(out)
            except ValueError:
                raise InputError(f"executor docker: `repro stage-probe` in {self.image_ref(role)} "
                                 f"printed no JSON: {out[-200:]!r}") from None
        return self._probes[image.id]

    def _container_output(self, image, command: list[str]) -> str:
        from docker.errors import ContainerError

        try:
            out = self.client.containers.run(image.id, command, remove=True, stdout=True,
                                              stderr=False, user=self._user(), environment={"HOME": "/tmp"},
                                              network_disabled=True)
        except ContainerError as exc:
            raise InputError(f"executor docker: {' '.join(command)} failed in image {image.id[:19]}: "
                             f"exit {exc.exit_status}") from None
        return out.decode(errors="replace") if isinstance(out, bytes) else str(out)

    def run(self, job: StageJob) -> StageResult:
        request_path = job.build / REQUEST_FILE
        job.request.write(request_path, job.runs)
        role = image_role(job.request.kind)
        image = self.image(role)
        gpus = self.gpus_for(job.request.kind, job.request.params)
        rel = request_path.resolve().relative_to(job.runs.resolve()).as_posix()
        command = ["stage-exec", "--runs-dir", CONTAINER_RUNS, f"{CONTAINER_RUNS}/{rel}"]
        container = self.client.containers.run(
            image.id, command, detach=True, user=self._user(), environment=self._env(),
            volumes=self._volumes(job.runs), device_requests=self._device_requests(gpus),
            shm_size=self.settings.get("shm_size") or None, working_dir="/workspace",
            labels={"org.repro.stage": job.request.name, "org.repro.key": job.key})
        tail: collections.deque[str] = collections.deque(maxlen=int(self.settings.get("tail_lines", 30)))
        try:
            pending = ""
            for chunk in container.logs(stream=True, follow=True):
                pending += chunk.decode(errors="replace") if isinstance(chunk, bytes) else str(chunk)
                *lines, pending = pending.split("\n")
                for line in lines:
                    tail.append(line)
                    job.echo(f"    | {line}")
            if pending:
                tail.append(pending)
                job.echo(f"    | {pending}")
            code = int(container.wait().get("StatusCode", -1))
            container.reload()
            state = (container.attrs or {}).get("State") or {}
            oom = bool(state.get("OOMKilled"))
            container_id = container.id
        finally:
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - the container may already be gone; the stage result stands
                pass
        if code != 0:
            last = "\n".join(f"    {line}" for line in tail) or "    (no output)"
            raise StageFailed(f"stage {job.request.name!r}: container {container_id[:12]} "
                              f"({self.image_ref(role)}) {exit_reason(code, oom)}; nothing was "
                              f"published; last log lines:\n{last}")
        if not (job.build / RESULT_FILE).exists():
            raise StageFailed(f"stage {job.request.name!r}: container exited 0 but wrote no "
                              f"{RESULT_FILE}; nothing was published")
        result = take_result(job.build)
        inside = result["observed"]
        execution = {"executor": self.name, "image": self.image_record(role),
                     "container": {"id": container_id, "hostname": inside["host"], "exit_code": code},
                     "host": self.daemon()["host"], "daemon": self.daemon(),
                     "gpus_requested": "all" if gpus < 0 else gpus, **observed_fields(inside),
                     "env_passed": sorted(k for k in self._env() if k in PASS_ENV)}
        return StageResult(dependencies=result["dependencies"], protocol=result["protocol"],
                           started=result["started"], finished=result["finished"],
                           system=result["system"], execution=execution)

    def describe(self, kind: str, profile: str) -> dict[str, Any]:
        role = image_role(kind)
        return {"executor": self.name, "image": self.image_ref(role), "role": role,
                "lock_image": lock_image(profile, role)}
