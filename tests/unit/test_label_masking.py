"""Label masking with the real LLaMA-2 tokenizer (issue 18): the ids a conversation trains on are
the ids Meta's SentencePiece model gives it, exactly the assistant replies and their ``</s>``
carry labels, nothing is silently truncated into having no labels, the image sits where
evaluation puts it, and DPO's prompt/completion split matches the whole text (TRL's text and
vision paths).

Two loadings of one vocabulary: the kit's rebuilt files (``tokenizer_class``
``PreTrainedTokenizerFast``) and a checkpoint as the Hub ships it (Meta's and AllenAI's
``tokenizer_config.json`` name ``LlamaTokenizer``, which transformers 5 rebuilds into a pipeline
that encodes unlike SentencePiece) after ``models/fetch`` made it load ``tokenizer.json`` as written.
"""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

from repro.data.records import ConversationSample, PreferencePair  # noqa: E402
from repro.models.fetch import tokenizer_as_written  # noqa: E402
from repro.models.templates import get_template, prompt_text, render  # noqa: E402
from repro.train.tokenize import (DROP_NO_LABELS, IGNORE_INDEX, ImageTokens,  # noqa: E402
                                  encode_conversation, tokenize_samples)

BOS, EOS, NEWLINE, CLOSE_BRACKET = 1, 2, 13, 29962  # "]" ends "[/INST]"
HUB_CONFIG = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
              "clean_up_tokenization_spaces": False, "legacy": False, "padding_side": "right",
              "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>"}
TEMPLATES = ("llama2", "llama2_meta", "llama2_nosys", "tulu")
MULTI_TURN = [("user", "Is a red circle safe?"), ("assistant", "Yes, it is a shape."),
              ("user", " And a blue square?"), ("assistant", "Also safe.\nIt has four sides.")]
TEXT_ONLY = [("user", "Hello"), ("assistant", " Hello to you")]


def _hub_copy(src, dst):
    dst.mkdir()
    for name in ("tokenizer.model", "tokenizer.json", "special_tokens_map.json"):
        shutil.copy(src / name, dst / name)
    (dst / "tokenizer_config.json").write_text(json.dumps(HUB_CONFIG))
    return dst


@pytest.fixture(scope="module")
def sp(llama2_tokenizer):
    return spm.SentencePieceProcessor(model_file=str(llama2_tokenizer.out / "tokenizer.model"))


@pytest.fixture(scope="module", params=["kit", "hub"])
def tokenizer(request, llama2_tokenizer, tmp_path_factory):
    from transformers import AutoTokenizer

    folder = llama2_tokenizer.out
    if request.param == "hub":
        folder = _hub_copy(folder, tmp_path_factory.mktemp("hub") / "tok")
        assert tokenizer_as_written(folder) == "LlamaTokenizer"
    return AutoTokenizer.from_pretrained(folder)


def test_hub_tokenizer_class_encodes_unlike_sentencepiece_until_fetch_rewrites_it(llama2_tokenizer, sp, tmp_path):
    from transformers import AutoTokenizer

    folder = _hub_copy(llama2_tokenizer.out, tmp_path / "tok")
    text = "<s>[INST] Hi [/INST]"
    as_named = AutoTokenizer.from_pretrained(folder)(text, add_special_tokens=False)["input_ids"]
    assert as_named[:2] == [BOS, 29961]  # "[" without its "▁": not what Llama 2 was trained on
    assert tokenizer_as_written(folder) == "LlamaTokenizer"
    fixed = AutoTokenizer.from_pretrained(folder)
    assert fixed(text, add_special_tokens=False)["input_ids"] == [BOS] + sp.encode("[INST] Hi [/INST]")
    assert fixed(" Hello", add_special_tokens=False)["input_ids"] == [29871, 15043]
    assert tokenizer_as_written(folder) is None  # once only


def _reference(sp, text: str) -> list[int]:
    """Meta's encoding of a rendered conversation: each text between <s>/</s> through the
    SentencePiece model (its dummy prefix included), as Llama 2's chat code and LLaVA's legacy
    tokenizer do."""
    ids, chunk = [], ""
    i = 0
    while i < len(text):
        special = next((s for s in ("<s>", "</s>") if text.startswith(s, i)), None)
        if special is None:
            chunk += text[i]
            i += 1
            continue
        ids += sp.encode(chunk) if chunk else []
        ids.append(BOS if special == "<s>" else EOS)
        chunk, i = "", i + len(special)
    return ids + (sp.encode(chunk) if chunk else [])


def _runs(labels: list[int]) -> list[list[int]]:
    runs, current = [], []
    for label in labels + [IGNORE_INDEX]:
        if label != IGNORE_INDEX:
            current.append(label)
        elif current:
            runs.append(current)
            current = []
    return runs


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("turns", [MULTI_TURN, TEXT_ONLY], ids=["multi_turn", "text_only"])
def test_conversation_ids_and_labels(tokenizer, sp, template, turns):
    sample = ConversationSample(id="s", turns=tuple(turns))
    enc = encode_conversation(sample, tokenizer, template, max_length=2048)
    text = "".join(seg for seg, _ in render(template, list(turns)))
    assert enc.input_ids == _reference(sp, text)
    replies = [t for role, t in turns if role == "assistant"]
    runs = _runs(enc.labels)
    assert len(runs) == len(replies)
    for run, reply in zip(runs, replies):
        assert run[-1] == EOS  # the reply's </s> is trained on, as LLaVA does
        assert tokenizer.decode(run[:-1]).strip() == reply.strip()
    # what comes right before each reply is prompt: "]" of [/INST], Tulu's "\n" after <|assistant|>
    starts = [i for i, (a, b) in enumerate(zip([IGNORE_INDEX] + enc.labels, enc.labels)) if a == IGNORE_INDEX != b]
    before = CLOSE_BRACKET if template.startswith("llama2") else NEWLINE
    assert [enc.input_ids[i - 1] for i in starts] == [before] * len(replies)
    assert all(enc.labels[i] in (IGNORE_INDEX, enc.input_ids[i]) for i in range(len(enc.labels)))


@pytest.mark.parametrize("template", TEMPLATES)
def test_training_prompt_is_the_evaluation_prompt_with_the_image_first(tokenizer, template, tmp_path):
    """The ids before the first reply are those evaluation feeds (prompt_text), with the image's
    576 tokens (ViT-L/14-336) at the same place."""
    tok = _with_image_token(tokenizer)
    image = ImageTokens(token="<image>", token_id=tok.convert_tokens_to_ids("<image>"), count=576)
    sample = ConversationSample(id="s", turns=(("user", "What is in it?"), ("assistant", "A circle.")),
                                image=tmp_path / "x.png")
    enc = encode_conversation(sample, tok, template, max_length=2048, image_tokens=image)
    first_label = next(i for i, label in enumerate(enc.labels) if label != IGNORE_INDEX)
    prompt = prompt_text(template, "What is in it?", with_image=True).replace("<image>", "<image>" * 576)
    assert enc.input_ids[:first_label] == tok(prompt, add_special_tokens=False)["input_ids"]
    positions = [i for i, t in enumerate(enc.input_ids) if t == image.token_id]
    assert len(positions) == 576 and positions == list(range(positions[0], positions[0] + 576))


def _with_image_token(tokenizer):
    import copy

    from repro.models.llava import _add_tokens

    tok = copy.deepcopy(tokenizer)
    _add_tokens(tok)  # <image> = 32000, <pad> = 32001, as the assembled LLaVA has them
    assert tok.convert_tokens_to_ids("<image>") == 32000
    return tok


def test_a_sample_cut_before_its_reply_is_dropped_and_counted(tokenizer):
    long = ConversationSample(id="long", turns=(("user", "word " * 300), ("assistant", "Done.")))
    short = ConversationSample(id="short", turns=tuple(TEXT_ONLY))
    assert encode_conversation(long, tokenizer, "llama2", max_length=64) == DROP_NO_LABELS
    kept, stats = tokenize_samples([long, short], tokenizer, "llama2", max_length=64)
    assert [s.id for s in kept] == ["short"]
    assert stats["samples_dropped_by_reason"] == {DROP_NO_LABELS: 1}


@pytest.mark.parametrize("template", ("llama2", "tulu"))
def test_dpo_text_prompt_is_a_token_prefix(tokenizer, template):
    """TRL's text path splits prompt and completion where tokenize(prompt) and
    tokenize(prompt + chosen) diverge: the whole prompt must be a prefix (no boundary merge)."""
    from repro.train.dpo import _tokenizer_adds_bos, render_pair

    row = render_pair(PreferencePair("p", "Is it safe?", "Sure thing.", "No."), template,
                      strip_bos=_tokenizer_adds_bos(tokenizer))
    for completion in (row["chosen"], row["rejected"]):
        prompt_ids = tokenizer(row["prompt"])["input_ids"]
        whole = tokenizer(row["prompt"] + completion)["input_ids"]
        assert whole[:len(prompt_ids)] == prompt_ids and whole[-1] == EOS
        assert whole.count(BOS) == 1


@pytest.mark.parametrize("template", ("llama2", "tulu"))
def test_dpo_image_pairs_tokenise_completions_in_context(tokenizer, template, tmp_path):
    """TRL's vision collator tokenises completions alone; the kit's collator gives it the ids of
    the whole text, so no stray '▁' precedes the answer."""
    from PIL import Image
    from transformers import CLIPImageProcessor, LlavaProcessor

    from repro.train.dpo import ImageFileCollator, render_pair

    tok = _with_image_token(tokenizer)
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 28},
                                                                  crop_size={"height": 28, "width": 28}),
                               tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "i.png")
    pairs = [PreferencePair("a", "Is it safe?", "Sure thing.", "No, sorry.", image=tmp_path / "i.png"),
             PreferencePair("b", "And this one?", "It is fine.", "I cannot help.", image=tmp_path / "i.png")]
    rows = [dict(render_pair(p, template, strip_bos=False), images=[str(p.image)]) for p in pairs]
    batch = ImageFileCollator(processor)(rows)
    for i, row in enumerate(rows * 2):  # chosen rows, then rejected rows
        completion = row["chosen"] if i < len(rows) else row["rejected"]
        keep = batch["attention_mask"][i].bool()
        ids = batch["input_ids"][i][keep].tolist()
        expanded = row["prompt"].replace("<image>", "<image>" * 4)
        assert ids == tok(expanded + completion, add_special_tokens=False)["input_ids"]
        answer = batch["input_ids"][i][batch["completion_mask"][i].bool()].tolist()
        assert answer[0] != 29871 and answer[-1] == EOS
        assert answer == ids[len(tok(expanded, add_special_tokens=False)["input_ids"]):]
