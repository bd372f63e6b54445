"""Conversation -> ``input_ids``/``labels`` with the label mask taken from the chat template.

The full rendered text is tokenised once (so token boundaries are those the model sees at
inference) and a token is trained on iff its character span overlaps an assistant span of
``templates.render`` (the response and its eos); everything else is ``-100``. This is the same
rule as transformers' ``return_assistant_tokens_mask``. For LLaVA each ``<image>`` placeholder is
expanded to the number of image tokens the processor produces, before tokenisation, so the
offsets are those of the expanded text. Truncation to ``max_length`` never cuts image tokens: a
sample whose image tokens would not fit is dropped and counted.

Two LLaVA data-handling steps (``haotian-liu/LLaVA`` ``llava/train/train.py``) are params of the
training stages, recorded as protocol choices:
- ``conversation_format``: ``chat`` (the model's chat template) or ``plain``, LLaVA's
  ``preprocess_plain`` for stage 1 (``--version plain``): the first user turn is replaced by the
  image alone and the sequence is bos + image tokens + caption + ``\\n``; only the caption and its
  ``\\n`` are labelled (bos and image tokens are -100), with no chat markup, instruction or eos.
- ``image_token_placement``: ``first`` (LLaVA's ``preprocess_multimodal``: ``<image>`` is removed
  from wherever a record puts it and ``<image>\\n`` starts the turn that held it) or ``as_is``.
  Records it changed are counted (``image_token_moved``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from repro.errors import InputError
from repro.models.templates import IMAGE_TOKEN, Template, get_template, render

IGNORE_INDEX = -100
MASK_POLICY = ("full-text tokenisation; a token is labelled iff its character span overlaps an "
               "assistant span of the chat template (response + eos); all else -100")
TRUNCATION_POLICY = ("right truncation to max_length; samples whose image tokens do not fit, or "
                     "with no labelled token left, are dropped and counted")

# reasons a sample is dropped (metrics keys)
DROP_IMAGE_TRUNCATED = "image_tokens_exceed_max_length"
DROP_NO_LABELS = "no_labelled_tokens"
DROP_NO_IMAGE = "text_only_when_image_required"  # projector-only training learns nothing from it

CONVERSATION_FORMATS = ("chat", "plain")
IMAGE_TOKEN_PLACEMENTS = ("first", "as_is")
PLAIN_SEP = "\n"  # conv_llava_plain.sep: the end of a caption in LLaVA's plain format
PLAIN_POLICY = ("LLaVA preprocess_plain: bos + image tokens + caption + '\\n'; labels on the "
                "caption and '\\n' only; no chat template, no instruction, no eos")
PLACEMENT_POLICY = {"first": "LLaVA preprocess_multimodal: <image> removed and '<image>\\n' put "
                             "at the start of the turn that held it",
                    "as_is": "<image> left where the record puts it"}


@dataclass(frozen=True)
class TokenizedSample:
    id: str
    input_ids: list[int]
    labels: list[int]
    image: Path | None = None
    truncated: bool = False
    # LLaVA's modality length (LazySupervisedDataset.modality_lengths): the record's word count,
    # negative for a text-only record; the modality-grouped sampler reads it
    modality_length: int = 0


@dataclass(frozen=True)
class ImageTokens:
    """How one ``<image>`` placeholder expands for a given processor."""
    token: str
    token_id: int
    count: int


def image_tokens_of(processor) -> ImageTokens:
    """Ask the processor itself how many tokens one image becomes (the count the model expects)."""
    from PIL import Image

    from repro.models.images import prepare_image

    # LLaVA-1.5 pads to square and resizes, so any input size gives the processed size's count
    dummy = prepare_image(Image.new("RGB", (48, 32)), processor.image_processor)
    encoded = processor(text=IMAGE_TOKEN, images=[dummy], return_tensors=None)
    token_id = processor.image_token_id
    ids = encoded["input_ids"]
    ids = ids[0] if ids and isinstance(ids[0], list) else ids
    count = sum(1 for t in ids if t == token_id)
    if count == 0:
        raise InputError(f"processor: image_token: {processor.image_token!r} was not expanded")
    return ImageTokens(token=processor.image_token, token_id=token_id, count=count)


def modality_length(sample) -> int:
    """LLaVA's ``modality_lengths`` entry: words of every turn (``str.split``), negated when the
    record has no image."""
    words = sum(len(text.split()) for _, text in sample.turns)
    return words if sample.image is not None else -words


def place_image_token(turns: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], bool]:
    """LLaVA's ``preprocess_multimodal`` on one record: each turn holding ``<image>`` becomes
    ``<image>\\n`` + its text without the token, stripped. Returns (turns, whether any changed)."""
    out, moved = [], False
    for role, text in turns:
        if IMAGE_TOKEN in text:
            new = (IMAGE_TOKEN + "\n" + text.replace(IMAGE_TOKEN, "").strip()).strip()
            moved = moved or new != text
            text = new
        out.append((role, text))
    return out, moved


def _conversation_turns(sample, image_tokens: ImageTokens | None) -> list[tuple[str, str]]:
    """The sample's turns with its image placeholder checked (and added when missing)."""
    turns = [tuple(turn) for turn in sample.turns]
    placeholders = sum(text.count(IMAGE_TOKEN) for _, text in turns)
    if sample.image is None:
        if placeholders:
            raise InputError(f"sample {sample.id!r}: turns: contains {IMAGE_TOKEN} but no image")
        return turns
    if image_tokens is None:
        raise InputError(f"sample {sample.id!r}: image: {sample.image.name} given to a text-only "
                         "model (train/text_sft takes text-only conversations)")
    if placeholders > 1:
        raise InputError(f"sample {sample.id!r}: turns: {placeholders} {IMAGE_TOKEN} placeholders "
                         "for one image")
    if placeholders == 0 and turns and turns[0][0] == "user":
        # LLaVA's convention (and repro.models.templates.prompt_text): the image leads the first turn
        turns[0] = ("user", f"{IMAGE_TOKEN}\n{turns[0][1]}")
    return turns


def _char_spans(segments: list[tuple[str, bool]], expand: str | None) -> tuple[str, list[tuple[int, int]]]:
    """Concatenate segments (expanding ``<image>``) and return the trainable character spans."""
    text, spans = [], []
    pos = 0
    for seg, trainable in segments:
        if expand is not None:
            seg = seg.replace(IMAGE_TOKEN, expand)
        if trainable and seg:
            spans.append((pos, pos + len(seg)))
        text.append(seg)
        pos += len(seg)
    return "".join(text), spans


def _plain_segments(sample, template: str | Template) -> list[tuple[str, bool]]:
    """LLaVA's ``preprocess_plain``: one (image, caption) exchange; the human turn becomes the image."""
    t = get_template(template) if isinstance(template, str) else template
    if sample.image is None:
        raise InputError(f"sample {sample.id!r}: image: conversation_format plain needs an image record")
    if len(sample.turns) != 2 or IMAGE_TOKEN not in sample.turns[0][1]:
        raise InputError(f"sample {sample.id!r}: turns: conversation_format plain needs one human turn "
                         f"holding {IMAGE_TOKEN} and one answer, got {len(sample.turns)} turns")
    return [(t.bos, False), (IMAGE_TOKEN, False), (sample.turns[1][1] + PLAIN_SEP, True)]


def encode_conversation(sample, tokenizer, template: str | Template, max_length: int,
                        image_tokens: ImageTokens | None = None,
                        conversation_format: str = "chat") -> TokenizedSample | str:
    """Tokenise one ``ConversationSample``; returns the encoded sample or a drop reason."""
    if conversation_format == "plain":
        segments = _plain_segments(sample, template)
        _conversation_turns(sample, image_tokens)  # the same placeholder checks as chat
    else:
        turns = _conversation_turns(sample, image_tokens)
        try:
            segments = render(template, turns)
        except InputError as exc:
            raise InputError(f"sample {sample.id!r}: turns: {exc}") from None
    expand = image_tokens.token * image_tokens.count if sample.image is not None else None
    text, spans = _char_spans(segments, expand)
    # the template writes <s> itself; the tokenizer must not add another one
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [tok if any(s < end and e > start for start, end in spans) else IGNORE_INDEX
              for tok, (s, e) in zip(ids, offsets)]
    if sample.image is not None:
        positions = [i for i, tok in enumerate(ids) if tok == image_tokens.token_id]
        if len(positions) != image_tokens.count:
            raise InputError(f"tokenizer: {image_tokens.token!r} is not a single token "
                             f"({len(positions)} ids for {image_tokens.count} image tokens)")
        if positions[-1] >= max_length:
            return DROP_IMAGE_TRUNCATED
    truncated = len(ids) > max_length
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        return DROP_NO_LABELS
    return TokenizedSample(id=sample.id, input_ids=list(ids), labels=labels, image=sample.image,
                           truncated=truncated, modality_length=modality_length(sample))


def tokenize_samples(samples, tokenizer, template: str, max_length: int,
                     image_tokens: ImageTokens | None = None, require_image: bool = False,
                     conversation_format: str = "chat",
                     image_token_placement: str = "as_is") -> tuple[list[TokenizedSample], dict]:
    """Encode every sample; returns the kept samples and counts (used, dropped by reason, and
    the records whose ``<image>`` was moved).

    ``require_image`` drops text-only samples (stage 1 trains only the projector: a batch
    without an image has no gradient at all).
    """
    if max_length <= 0:
        raise InputError(f"params: max_length: {max_length} must be positive")
    check_choice("conversation_format", conversation_format, CONVERSATION_FORMATS)
    check_choice("image_token_placement", image_token_placement, IMAGE_TOKEN_PLACEMENTS)
    get_template(template)
    kept: list[TokenizedSample] = []
    dropped: Counter = Counter()
    moved = 0
    for sample in samples:
        if require_image and sample.image is None:
            dropped[DROP_NO_IMAGE] += 1
            continue
        if image_token_placement == "first" and conversation_format == "chat":
            turns, changed = place_image_token(list(sample.turns))
            moved += changed
            sample = replace(sample, turns=tuple(turns)) if changed else sample
        result = encode_conversation(sample, tokenizer, template, max_length, image_tokens,
                                     conversation_format)
        if isinstance(result, str):
            dropped[result] += 1
            continue
        kept.append(result)
    if not kept:
        raise InputError(f"dataset: no usable sample (dropped: {dict(dropped) or 'none given'})")
    stats = {
        "samples_total": len(kept) + sum(dropped.values()),
        "samples_used": len(kept),
        "samples_dropped": sum(dropped.values()),
        "samples_dropped_by_reason": dict(sorted(dropped.items())),
        "samples_truncated": sum(1 for s in kept if s.truncated),
        "samples_with_image": sum(1 for s in kept if s.image is not None),
        "image_token_moved": moved,
    }
    return kept, stats


def check_choice(name: str, value, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InputError(f"params: {name}: {value!r}; expected one of {', '.join(allowed)}")
    return value
