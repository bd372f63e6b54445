"""Conversation -> ``input_ids``/``labels`` with the label mask taken from the chat template.

The full rendered text is tokenised once (so token boundaries are those the model sees at
inference) and a token is trained on iff its character span overlaps an assistant span of
``templates.render`` (the response and its eos); everything else is ``-100``. This is the same
rule as transformers' ``return_assistant_tokens_mask``. For LLaVA each ``<image>`` placeholder is
expanded to the number of image tokens the processor produces, before tokenisation, so the
offsets are those of the expanded text. Truncation to ``max_length`` never cuts image tokens: a
sample whose image tokens would not fit is dropped and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TokenizedSample:
    id: str
    input_ids: list[int]
    labels: list[int]
    image: Path | None = None
    truncated: bool = False


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


def encode_conversation(sample, tokenizer, template: str | Template, max_length: int,
                        image_tokens: ImageTokens | None = None) -> TokenizedSample | str:
    """Tokenise one ``ConversationSample``; returns the encoded sample or a drop reason."""
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
                           truncated=truncated)


def tokenize_samples(samples, tokenizer, template: str, max_length: int,
                     image_tokens: ImageTokens | None = None,
                     require_image: bool = False) -> tuple[list[TokenizedSample], dict]:
    """Encode every sample; returns the kept samples and counts (used, dropped by reason).

    ``require_image`` drops text-only samples (stage 1 trains only the projector: a batch
    without an image has no gradient at all).
    """
    if max_length <= 0:
        raise InputError(f"params: max_length: {max_length} must be positive")
    get_template(template)
    kept: list[TokenizedSample] = []
    dropped: Counter = Counter()
    for sample in samples:
        if require_image and sample.image is None:
            dropped[DROP_NO_IMAGE] += 1
            continue
        result = encode_conversation(sample, tokenizer, template, max_length, image_tokens)
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
    }
    return kept, stats
