"""SentencePiece tokenizer files (``tokenizer.model`` + ``tokenizer.json``) from a vocabulary.

Two sources: llama.cpp's vocabulary-only GGUF (pieces, scores and token types; the training
settings are not in it, so they come from a published dump of Meta's file) and a ready
``.model`` (Mistral's, from mistral-common). Both end in the same ``tokenizer.json`` writer.

Why ``tokenizer.json`` is written here rather than by a library converter: Meta's file was made
by transformers' 2023 ``LlamaConverter`` (tokenizers 0.13 layout: merges as "a b" strings, no
``ignore_merges``; a ``Prepend("▁")`` + ``Replace(" ", "▁")`` normalizer; merges sorted by score
only). transformers 5.19's converter writes a Metaspace pre-tokenizer, no BOS template, merge
pairs and a length tie-break (``generate_merges``), and tokenizers 0.23 serialises another
layout, so neither reproduces the published bytes; this writer does (sha256 checked by the
stage against manifest.lock).
"""

from __future__ import annotations

import json

# Meta's tokenizer.model training settings, as printed from the released file by
# karpathy/llama2.c doc/train_llama_tokenizer.md (same values in other public dumps). Every
# field listed there is explicitly set (proto2 presence), which the serialised bytes depend on.
LLAMA2_TRAINER_SPEC = {
    "input": ["/large_experiments/theorem/datasets/MERGED/all.test1.merged"],
    "model_prefix": "spm_model_32k_200M_charcov099995_allowWSO__v2",
    "model_type": "BPE", "vocab_size": 32000, "self_test_sample_size": 0, "input_format": "text",
    "character_coverage": 0.99995, "input_sentence_size": 200000000,
    "seed_sentencepiece_size": 1000000, "shrinking_factor": 0.75, "num_threads": 80,
    "num_sub_iterations": 2, "max_sentence_length": 4192, "shuffle_input_sentence": True,
    "max_sentencepiece_length": 16, "split_by_unicode_script": True, "split_by_whitespace": True,
    "split_by_number": True, "treat_whitespace_as_suffix": False, "split_digits": True,
    "allow_whitespace_only_pieces": True, "vocabulary_output_piece_score": True,
    "hard_vocab_limit": True, "use_all_vocab": False, "byte_fallback": True, "required_chars": "",
    "unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1, "unk_surface": " \u2047 ",
    "unk_piece": "<unk>", "bos_piece": "<s>", "eos_piece": "</s>", "pad_piece": "<pad>",
    "train_extremely_large_corpus": False, "enable_differential_privacy": False,
    "differential_privacy_noise_level": 0.0, "differential_privacy_clipping_threshold": 0,
}
LLAMA2_NORMALIZER_SPEC = {"name": "identity", "precompiled_charsmap": b"", "add_dummy_prefix": True,
                          "remove_extra_whitespaces": False, "normalization_rule_tsv": ""}
TRAINER_SPECS = {"llama2": (LLAMA2_TRAINER_SPEC, LLAMA2_NORMALIZER_SPEC)}
NORMAL, UNKNOWN, CONTROL = 1, 2, 3  # sentencepiece piece types; GGUF token types use the same codes


def _pb2():
    from sentencepiece import sentencepiece_model_pb2  # needs protobuf

    return sentencepiece_model_pb2


def model_from_gguf(gguf_path, spec_name: str) -> bytes:
    """A serialised ``ModelProto`` from a llama.cpp SentencePiece ('llama') vocabulary GGUF."""
    from gguf import GGUFReader

    from repro.errors import InputError

    if spec_name not in TRAINER_SPECS:
        raise InputError(f"tokenizer: trainer_spec: {spec_name!r} is not one of {', '.join(TRAINER_SPECS)}")
    fields = GGUFReader(str(gguf_path)).fields
    kind = fields["tokenizer.ggml.model"].contents() if "tokenizer.ggml.model" in fields else None
    if kind != "llama":
        raise InputError(f"{gguf_path}: tokenizer.ggml.model is {kind!r}, not a SentencePiece ('llama') vocabulary")
    tokens, scores, types = (fields[f"tokenizer.ggml.{k}"].contents() for k in ("tokens", "scores", "token_type"))
    trainer, normalizer = TRAINER_SPECS[spec_name]
    if len(tokens) != trainer["vocab_size"]:
        raise InputError(f"{gguf_path}: {len(tokens)} tokens, trainer_spec {spec_name} says {trainer['vocab_size']}")
    pb2 = _pb2()
    proto = pb2.ModelProto()
    for piece, score, kind in zip(tokens, scores, types):
        entry = proto.pieces.add(piece=piece, score=score)
        if kind != NORMAL:  # NORMAL is the default and is left unset, as sentencepiece writes it
            entry.type = kind
    for key, value in trainer.items():
        if key == "input":
            proto.trainer_spec.input.extend(value)
        elif key == "model_type":
            proto.trainer_spec.model_type = pb2.TrainerSpec.ModelType.Value(value)
        else:
            setattr(proto.trainer_spec, key, value)
    for key, value in normalizer.items():
        setattr(proto.normalizer_spec, key, value)
    return proto.SerializeToString()


def parse_model(data: bytes):
    from repro.errors import InputError

    proto = _pb2().ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError; the message names no file
        raise InputError(f"tokenizer.model: not a SentencePiece model ({exc})") from None
    if proto.trainer_spec.model_type != _pb2().TrainerSpec.BPE or not proto.trainer_spec.byte_fallback:
        raise InputError("tokenizer.model: only BPE models with byte_fallback (Llama, Mistral) are supported")
    return proto


def _merges(vocab: dict[str, int], scores: list[tuple[str, float]]) -> list[str]:
    """transformers' 2023 SentencePieceExtractor order: per piece, every split whose halves are in
    the vocabulary (by their ids), then a stable sort on the merged piece's score, descending."""
    merges = []
    for piece, score in scores:
        local = [(piece[:i], piece[i:], score) for i in range(1, len(piece))
                 if piece[:i] in vocab and piece[i:] in vocab]
        merges.extend(sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]])))
    merges.sort(key=lambda m: m[2], reverse=True)
    return [f"{left} {right}" for left, right, _ in merges]


def tokenizer_json(model: bytes) -> bytes:
    """The fast tokenizer of a Llama-style SentencePiece BPE model, in the layout of Meta's file."""
    proto = parse_model(model)
    spec = proto.trainer_spec
    pieces = [(p.piece, p.score, p.type) for p in proto.pieces]
    vocab = {piece: i for i, (piece, _, _) in enumerate(pieces)}
    # the converter scored the unk/bos/eos pieces 0.0; the others keep the model's scores
    scores = [(piece, 0.0 if i < 3 else score) for i, (piece, score, _) in enumerate(pieces)]
    bos = pieces[spec.bos_id][0]
    added = [{"id": i, "content": piece, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, (piece, _, kind) in enumerate(pieces) if kind in (UNKNOWN, CONTROL)]
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {  # add_bos_token: true, add_eos_token: false
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [spec.bos_id], "tokens": [bos]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": pieces[spec.unk_id][0],
                  "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
                  "byte_fallback": True, "vocab": vocab, "merges": _merges(vocab, scores)},
    }
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")  # serde_json's pretty form


def loader_configs(model: bytes, max_length: int | None = None) -> dict[str, bytes]:
    """``tokenizer_config.json`` and ``special_tokens_map.json`` for transformers 5.19.

    ``tokenizer_class`` is ``PreTrainedTokenizerFast`` on purpose: transformers 5.19's
    ``LlamaTokenizer`` (``LlamaTokenizerFast`` is an alias) keeps only the vocabulary and merges
    of ``tokenizer.json`` and rebuilds a Metaspace(prepend_scheme="first") pipeline, which drops
    the extra ``▁`` of text that starts with a space (" Hello" -> [15043], not [29871, 15043]):
    15 of llama.cpp's 46 reference encodings differ, whatever ``legacy`` says. The generic fast
    class loads ``tokenizer.json`` as written, i.e. as the SentencePiece model encodes.
    """
    spec = parse_model(model).trainer_spec
    special = {"bos_token": spec.bos_piece, "eos_token": spec.eos_piece, "unk_token": spec.unk_piece}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **special, "add_bos_token": True,
              "add_eos_token": False, "clean_up_tokenization_spaces": False, "padding_side": "right"}
    if max_length:
        config["model_max_length"] = max_length

    def dump(obj) -> bytes:
        return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()

    return {"tokenizer_config.json": dump(config), "special_tokens_map.json": dump(special)}


def reference_cases(inp: bytes, out: bytes) -> list[tuple[str, list[int]]]:
    """llama.cpp's ``.gguf.inp``/``.gguf.out`` pairs (convert_hf_to_gguf_update.py writes each text
    followed by ``\\n__ggml_vocab_test__\\n``, and one line of ids per text, no BOS)."""
    from repro.errors import InputError

    texts = inp.decode("utf-8").split("\n__ggml_vocab_test__\n")
    if texts and texts[-1] == "":
        texts.pop()
    lines = out.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(texts) != len(lines):
        raise InputError(f"reference encodings: {len(texts)} texts but {len(lines)} id lines")
    return [(text, [int(t) for t in line.split()]) for text, line in zip(texts, lines)]
