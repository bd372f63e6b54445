"""A saved tokenizer's files depend on the model alone: the same build on a machine with
HF_HUB_OFFLINE=1 writes the same bytes (transformers records ``local_files_only`` otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys

BUILD = ("import sys; from pathlib import Path; from repro.models.tiny import make_tiny_llava; "
         "make_tiny_llava(Path(sys.argv[1]), seed=0)")


def test_tokenizer_files_do_not_follow_hf_hub_offline(tmp_path):
    outs = {}
    for offline in ("0", "1"):
        out = tmp_path / f"offline-{offline}"
        env = {**os.environ, "HF_HUB_OFFLINE": offline}
        subprocess.run([sys.executable, "-c", BUILD, str(out)], env=env, check=True, capture_output=True)
        outs[offline] = out
    for name in ("tokenizer_config.json", "tokenizer.json", "processor_config.json"):
        a, b = (outs[k] / name for k in ("0", "1"))
        assert a.is_file() == b.is_file(), name
        if a.is_file():
            assert a.read_bytes() == b.read_bytes(), name
    assert "local_files_only" not in (outs["1"] / "tokenizer_config.json").read_text()
