"""A small byte-level BPE tokenizer trained locally, standing in for the Llama-2 tokenizer.

The tiny profile has no Hub access, so its LLM gets a tokenizer trained in-process on the
corpus it will see. It mirrors the Llama-2 tokenizer's conventions that the rest of the kit
relies on: ``<unk>``/``<s>``/``</s>`` special tokens (ids 0/1/2, as in Llama) plus ``<pad>``
(id 3), ``<s>`` prepended when ``add_special_tokens=True`` (Llama's ``add_bos_token``), no
``</s>`` appended, and special tokens written as literal text (``"<s>"``) tokenized as the special
ids, because chat templates render them as text.
"""

from __future__ import annotations

from collections.abc import Iterable

from repro.errors import InputError

BOS, EOS, UNK, PAD = "<s>", "</s>", "<unk>", "<pad>"
SPECIAL_TOKENS = [UNK, BOS, EOS, PAD]  # order fixes the ids: <unk>=0, <s>=1, </s>=2, <pad>=3
MIN_VOCAB = 256 + len(SPECIAL_TOKENS)  # every byte must stay representable


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """Train a byte-level BPE on ``texts``; returns a ``PreTrainedTokenizerFast``.

    Deterministic: the same texts (in the same order) and vocab size give the same vocabulary.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < MIN_VOCAB:
        raise InputError(f"tokenizer: vocab_size: {vocab_size} is below the minimum {MIN_VOCAB}")
    texts = [t for t in texts if t]
    if not texts:
        raise InputError("tokenizer: texts: no non-empty training text given")

    tok = Tokenizer(models.BPE(unk_token=UNK))
    # add_prefix_space=False keeps "x" and " x" distinct, as the templates' spacing is meaningful
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 $B:1", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=PAD,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
