"""Executors decide where a stage runs: ``local`` (this process), ``docker`` (the stage's
pinned image, through the Docker SDK) or ``slurm`` (an sbatch job per stage, in the image via
Apptainer/Enroot or on the host). Settings come from ``configs/executors.yaml``; a user's file
overrides any key. See docs/executors.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from repro.errors import InputError
from repro.executors.base import Executor, StageFailed, StageJob, image_role
from repro.executors.docker import DockerExecutor
from repro.executors.local import LocalExecutor
from repro.executors.slurm import SlurmExecutor
from repro.stages.request import StageResult

EXECUTORS = ("local", "docker", "slurm")
DEFAULTS = Path(__file__).resolve().parents[2] / "configs" / "executors.yaml"

__all__ = ["EXECUTORS", "Executor", "StageFailed", "StageJob", "StageResult", "image_role",
           "make_executor", "settings"]


def settings(name: str, profile: str, config: Path | None = None) -> dict[str, Any]:
    """The executor's settings: defaults < the user's file; ``images`` resolved for ``profile``."""
    defaults = yaml.safe_load(DEFAULTS.read_text())[name]
    merged = dict(defaults)
    if config is not None:
        try:
            user = yaml.safe_load(Path(config).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"{config}: cannot read executor settings ({exc.__class__.__name__})") from None
        if not isinstance(user, dict):
            raise InputError(f"{config}: expected a mapping of executor names to settings")
        section = user.get(name) or {}
        unknown = sorted(set(section) - set(defaults))
        if unknown:
            raise InputError(f"{config}: {name}.{unknown[0]}: unknown setting "
                             f"(known: {', '.join(sorted(defaults))})")
        merged.update(section)
    images = merged.get("images") or {}
    if isinstance(images.get(profile), dict):  # per profile, else one mapping for all profiles
        images = images[profile]
    merged["images"] = images
    return merged


def make_executor(name: str, profile: str, config: Path | None = None) -> Executor:
    if name == "local":
        return LocalExecutor()
    if name == "docker":
        return DockerExecutor(settings("docker", profile, config), profile)
    if name == "slurm":
        return SlurmExecutor(settings("slurm", profile, config), profile)
    raise InputError(f"--executor {name!r}: one of {', '.join(EXECUTORS)}")
