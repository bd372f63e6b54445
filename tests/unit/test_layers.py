"""Import layers (docs/ARCHITECTURE.md "Layers"): the import-linter contracts in pyproject.toml
hold, and an import inside a function defers a heavy or optional package on purpose."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Deferred on purpose: heavy to import (torch and the libraries over it, Pillow, numpy, pyarrow)
# or an optional extra (docker, sign, gguf, the chat judge's client) that a plain install lacks.
DEFERRED = {"torch", "transformers", "trl", "vllm", "datasets", "deepspeed", "accelerate", "peft",
            "tokenizers", "sentencepiece", "safetensors", "huggingface_hub", "numpy", "PIL", "matplotlib",
            "pyarrow", "docker", "cryptography", "securesystemslib", "model_signing", "gguf", "openai"}


def test_lint_imports_keeps_every_contract():
    """`lint-imports` over the package: the layers and no cycles (import-linter, the dev extra)."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
    assert "2 kept, 0 broken" in done.stdout


def deferred_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import inside a function of ``path``."""
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found += [(node.lineno, a.name) for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    found.append((node.lineno, node.module or "."))
    return found


def test_imports_sit_at_module_top_unless_deferred_on_purpose():
    """A function-level import defers a heavy or optional package. CLI adapters also defer the
    library a command runs, so `repro --help` does not import every module (0.1 s, not 0.4 s)."""
    wrong = []
    for path in sorted((ROOT / "repro").rglob("*.py")):
        cli = path.parent.name == "cli"
        for line, module in deferred_imports(path):
            root = module.split(".")[0]
            if root not in DEFERRED and not (cli and root == "repro"):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not wrong, "move these imports to the module top:\n" + "\n".join(wrong)


def test_deferred_import_check_catches_a_light_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    import json\n    from repro.io import timestamp\n"
                      "    import torch\n    return json, timestamp, torch, os\n")
    assert deferred_imports(source) == [(4, "json"), (5, "repro.io"), (6, "torch")]
