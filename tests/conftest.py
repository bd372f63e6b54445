import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so tests can import stagefns

from repro.stages import KINDS, declare  # noqa: E402
from repro.stages.kind import REQUIRED, Kind, P  # noqa: E402

if "test/write_text" not in KINDS:  # the small stage kinds of tests/stagefns.py, declared like any other
    declare(Kind("test/write_text", "stagefns:write_text", (P("text", str, REQUIRED), P("repeat", int, 1, ">=1"))),
            Kind("test/concat", "stagefns:concat", (P("partial", bool, False),)),
            Kind("test/fail_midway", "stagefns:fail_midway", (P("file", str),)),
            Kind("test/write_link", "stagefns:write_link", ()))


@pytest.fixture
def experiments(tmp_path):
    """A temporary experiments directory with a three-stage experiment ``chain``."""
    root = tmp_path / "experiments"
    (root / "_base").mkdir(parents=True)
    (root / "_base" / "tiny.yaml").write_text(
        "schema: 1\nrecipes:\n  greet: {text: hello, repeat: 2}\n")
    (root / "_base" / "paper.yaml").write_text(
        "schema: 1\nrecipes:\n  greet: {text: hello, repeat: 1000}\n")
    (root / "chain.yaml").write_text(
        "schema: 1\n"
        "description: three stages in a line\n"
        "include: ['_base/{profile}.yaml']\n"
        "stages:\n"
        "  a: {kind: test/write_text, recipe: greet}\n"
        "  b: {kind: test/write_text, params: {text: world}}\n"
        "  c: {kind: test/concat, inputs: {x: a, y: b}}\n"
        "results: [c]\n")
    return root


@pytest.fixture(autouse=True)
def _no_tokens(monkeypatch):
    # A planted fake token: nothing the kit writes may contain it (checked by tests that look).
    monkeypatch.setenv("HF_TOKEN", "hf_FAKEtokenFAKEtokenFAKEtokenFAKE0000")
    yield


@pytest.fixture(scope="session")
def llama2_tokenizer(tmp_path_factory):
    """The real LLaMA-2 tokenizer, rebuilt once per session by models/registry_tokenizer from the
    pinned llama-cpp-python sdist (tests/registry_helpers.py); its StageContext."""
    pytest.importorskip("gguf")
    pytest.importorskip("sentencepiece")
    from registry_helpers import build_tokenizer

    return build_tokenizer("llama2", tmp_path_factory.mktemp("llama2_tokenizer"))


@pytest.fixture(scope="session")
def llama3_tokenizer(tmp_path_factory):
    """Meta-Llama-3-8B's tokenizer (the Llama Guard 3 family), rebuilt once per session from the
    same sdist's ggml-vocab-llama-bpe.gguf (reading its 408k strings takes most of the time)."""
    pytest.importorskip("gguf")
    from registry_helpers import build_tokenizer

    return build_tokenizer("llama3", tmp_path_factory.mktemp("llama3_tokenizer"))
