"""A byte-level BPE ``tokenizer.json`` (Llama 3's) from llama.cpp's vocabulary-only GGUF.

``ggml-vocab-llama-bpe.gguf`` (in llama-cpp-python's sdist) holds Meta-Llama-3-8B's 128,256
tokens (128,000 normal, 256 control), their types and the 280,147 merges; the pre-tokenizer
regex is not in it, so it is the one llama.cpp's ``src/llama-vocab.cpp`` quotes as the "original
regex from tokenizer.json" for ``LLAMA_VOCAB_PRE_TYPE_LLAMA3``. Built with the ``tokenizers``
library (no published digest of Meta's file is pinned, so there are no bytes to match); the
stage checks it against the 46 reference encodings made with Meta's tokenizer.

The control tokens carry Llama 3.0's names. Llama 3.1 (Llama Guard 3 8B) renamed a few reserved
ones; the tokens Llama Guard 3's prompt uses (``<|begin_of_text|>``, ``<|start_header_id|>``,
``<|end_header_id|>``, ``<|eot_id|>``) have the same names and ids in both.
"""

from __future__ import annotations

import json

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
NORMAL, CONTROL = 1, 3


def _strings(field) -> list[str]:
    """A GGUF string array, decoded straight from its parts (``contents()`` is several times slower)."""
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def read_gguf_bpe(gguf_path) -> tuple[list[str], list[int], list[str], int, int]:
    """(tokens, token types, merges, bos id, eos id) of a byte-level BPE ('gpt2') vocabulary GGUF."""
    from gguf import GGUFReader

    from repro.errors import InputError

    fields = GGUFReader(str(gguf_path)).fields
    kind = fields["tokenizer.ggml.model"].contents() if "tokenizer.ggml.model" in fields else None
    if kind != "gpt2":
        raise InputError(f"{gguf_path}: tokenizer.ggml.model is {kind!r}, not a byte-level BPE ('gpt2') vocabulary")
    types = [int(t) for t in fields["tokenizer.ggml.token_type"].contents()]
    return (_strings(fields["tokenizer.ggml.tokens"]), types, _strings(fields["tokenizer.ggml.merges"]),
            int(fields["tokenizer.ggml.bos_token_id"].contents()), int(fields["tokenizer.ggml.eos_token_id"].contents()))


def llama3_files(gguf_path, max_length: int | None = None) -> dict[str, bytes]:
    """``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    from repro.errors import InputError

    tokens, types, merges, bos_id, eos_id = read_gguf_bpe(gguf_path)
    unknown = sorted(set(types) - {NORMAL, CONTROL})
    if unknown:
        raise InputError(f"{gguf_path}: token types {unknown} (only normal and control are expected)")
    vocab = {tok: i for i, tok in enumerate(tokens) if types[i] == NORMAL}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges],
                               ignore_merges=True, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i in range(len(tokens)) if types[i] == CONTROL])
    misplaced = [tokens[i] for i in range(len(tokens)) if types[i] == CONTROL and tok.token_to_id(tokens[i]) != i]
    if misplaced:
        raise InputError(f"{gguf_path}: control tokens not at their ids: {misplaced[:3]}")
    bos, eos = tokens[bos_id], tokens[eos_id]
    tok.post_processor = processors.Sequence([  # add_bos_token: true
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                      special_tokens=[(bos, bos_id)])])
    special = {"bos_token": bos, "eos_token": eos}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **special, "clean_up_tokenization_spaces": False}
    if max_length:
        config["model_max_length"] = max_length

    def dump(obj) -> bytes:
        return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()

    return {"tokenizer.json": tok.to_str(pretty=True).encode("utf-8"),
            "tokenizer_config.json": dump(config), "special_tokens_map.json": dump(special)}
