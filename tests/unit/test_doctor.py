"""``repro doctor``: plain answers on a CPU machine; the tiny profile passes, paper does not."""

import click
import pytest
from click.testing import CliRunner

from repro import doctor
from repro.cli.fetch import COMMANDS

FAKE_TOKEN = "hf_FAKEtokenFAKEtokenFAKEtokenFAKE0000"  # planted by tests/conftest.py


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never touch the network from a unit test
    monkeypatch.setattr(doctor, "query_gpus", lambda: None)  # this machine: no nvidia-smi
    group = click.Group("repro")
    for command in COMMANDS:
        group.add_command(command)
    return group


def test_paper_profile_on_cpu_fails_with_the_gpu_line(cli, tmp_path):
    result = CliRunner().invoke(cli, ["doctor", "smoke", "--profile", "paper", "--runs-dir", str(tmp_path)])
    assert result.exit_code != 0
    gpu = [line for line in result.output.splitlines() if " gpu " in line]
    assert gpu and gpu[0].startswith("FAIL") and "4x GPU >= 80 GB" in gpu[0] and "H100" in gpu[0]
    assert "profile paper (smoke) needs: 4x GPU >= 80 GB" in result.output
    assert "present (from HF_TOKEN; not shown)" in result.output
    assert FAKE_TOKEN not in result.output
    assert "offline" in result.output  # gated access is not checked offline


def test_tiny_profile_passes_on_cpu(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    result = CliRunner().invoke(cli, ["doctor", "smoke", "--profile", "tiny", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output and "tiny profile runs on CPU" in result.output


def test_gpu_check_accepts_the_paper_hardware():
    needs = doctor.Needs("paper", kinds=["train/vl_adapt"])
    gpus = [{"name": "NVIDIA H100 80GB HBM3", "memory_gb": 79.6, "driver": "550.54"}] * 4
    assert doctor.check_gpus(needs, gpus).level == "OK"
    assert doctor.check_gpus(needs, gpus[:2]).level == "FAIL"
    assert doctor.check_gpus(doctor.Needs("paper", kinds=["evaluate/benchmark"]), gpus[:1]).level == "OK"


def test_lock_check_flags_unpinned_pickles_and_github():
    lock = {"models": {"clip": {"id": "o/clip", "revision": "1" * 40, "gated": False,
                                "files": {"pytorch_model.bin": "a" * 64}},
                       "tulu": {"id": "o/tulu", "revision": "1" * 40, "gated": None, "files": {}}},
            "datasets": {"fig": {"id": "o/fig", "revision": "1" * 40, "gated": False, "files": {},
                                 "host": "github"},
                         "sb": {"id": "o/sb", "revision": None, "gated": True, "files": {}}}}
    needs = doctor.Needs("paper", fetches={("models", "clip"): {}, ("models", "tulu"): {"allow_pickle": True},
                                           ("datasets", "fig"): {}, ("datasets", "sb"): {}})
    lines = [c.line() for c in doctor.check_lock(needs, lock)]
    assert all(line.startswith("FAIL") for line in lines) and len(lines) == 4
    text = "\n".join(lines)
    for needle in ("allow_pickle: true", "pin the digest first", "REPRO_LOCAL_FIG", "datasets.sb: unpinned"):
        assert needle in text
