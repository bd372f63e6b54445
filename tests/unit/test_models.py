"""Tiny model builders and LLaVA assembly: tokenizer, determinism, checkpoint layout, reload."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from repro.errors import InputError  # noqa: E402
from repro.models import llava as llava_mod  # noqa: E402
from repro.models.images import IMAGE_PREPROCESSING, prepare_image  # noqa: E402
from repro.models.templates import prompt_text  # noqa: E402
from repro.models.tiny import build_tiny_llm, make_tiny_llava  # noqa: E402
from repro.models.tokenizer import train_tokenizer  # noqa: E402

TEXTS = [
    "[INST] What colour is the square? [/INST] The square is red. </s>",
    "<|user|>\nIs this safe?\n<|assistant|>\nI cannot help with that.</s>",
    "A small green circle sits on a blue background.",
] * 5


def safetensors_keys(path: Path) -> list[str]:
    """Tensor names from a safetensors header, without loading any tensor."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return sorted(k for k in json.loads(raw[8:8 + n]) if k != "__metadata__")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- tokenizer ---------------------------------------------------------------------------------

def test_tokenizer_special_tokens_and_round_trip(tmp_path):
    tok = train_tokenizer(TEXTS, vocab_size=300)
    assert [tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id] == [0, 1, 2, 3]
    text = prompt_text("llama2", "what colour?") + " red </s>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == 1 and ids[-1] == 2 and ids.count(1) == 1 and ids.count(2) == 1
    assert tok.decode(ids) == text
    # byte-level: text never seen in training (accents, emoji, CJK) still round-trips exactly
    unseen = "Ça coûte 5€ 🙂 漢字\n\ttabs"
    assert tok.decode(tok(unseen, add_special_tokens=False)["input_ids"]) == unseen
    # like Llama-2: add_special_tokens prepends <s> only
    assert tok("hi")["input_ids"] == [1] + tok("hi", add_special_tokens=False)["input_ids"]
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text, add_special_tokens=False)["input_ids"] == ids


def test_tokenizer_deterministic_and_validated():
    assert train_tokenizer(TEXTS, 300).get_vocab() == train_tokenizer(TEXTS, 300).get_vocab()
    with pytest.raises(InputError, match="vocab_size"):
        train_tokenizer(TEXTS, 100)
    with pytest.raises(InputError, match="texts"):
        train_tokenizer(["", ""], 300)


# --- tiny LLM ----------------------------------------------------------------------------------

def test_tiny_llm_deterministic_by_seed(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        build_tiny_llm(tmp_path / name, TEXTS, seed=seed, vocab_size=300)
    digest = {n: sha256(tmp_path / n / "model.safetensors") for n in "abc"}
    assert digest["a"] == digest["b"] != digest["c"]
    assert sha256(tmp_path / "a" / "tokenizer.json") == sha256(tmp_path / "c" / "tokenizer.json")
    card = json.loads((tmp_path / "a" / "repro_model.json").read_text())
    assert card == {"architecture": "causal_lm", "template": "llama2"}
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["hidden_size"] // config["num_attention_heads"] >= 32
    assert not list((tmp_path / "a").glob("*.bin"))


def test_tiny_llm_rejects_small_heads_and_unknown_template(tmp_path):
    with pytest.raises(InputError, match="head dim 16"):
        build_tiny_llm(tmp_path, TEXTS, seed=0, hidden_size=64, num_heads=4)
    with pytest.raises(InputError, match="chat template"):
        build_tiny_llm(tmp_path, TEXTS, seed=0, template="vicuna")


# --- LLaVA assembly ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    """An in-memory tiny LLaVA, its saved checkpoint and the reloaded model."""
    root = tmp_path_factory.mktemp("llava")
    build_tiny_llm(root / "llm", TEXTS, seed=0, vocab_size=300)
    model, processor, card, info = llava_mod.build_llava(
        root / "llm", vision=dict(llava_mod.TINY_VISION_CONFIG), seed=0)
    llava_mod.save_llava(model, processor, card, root / "out")
    reloaded, reprocessor = llava_mod.load_llava(root / "out")
    return {"root": root, "model": model, "info": info, "out": root / "out",
            "reloaded": reloaded, "processor": reprocessor}


def image_inputs(processor, colour=(200, 30, 30)):
    from PIL import Image

    img = prepare_image(Image.new("RGB", (48, 32), colour), processor.image_processor)
    text = prompt_text("llama2", "what colour?", with_image=True)
    return processor(images=[img], text=[text], return_tensors="pt", add_special_tokens=False)


def test_llava_token_ids_and_padded_vocab(assembled):
    info, model = assembled["info"], assembled["reloaded"]
    tok = assembled["processor"].tokenizer
    llm_vocab = json.loads((assembled["root"] / "llm" / "config.json").read_text())["vocab_size"]
    # <image> appended right after the LLM's vocabulary (Llama-2: 32000); the tiny tokenizer
    # already has <pad> (id 3), so only <image> is new
    assert info["image_token_id"] == llm_vocab == tok.convert_tokens_to_ids("<image>")
    assert info["pad_token_id"] == tok.pad_token_id == 3
    assert model.config.image_token_id == info["image_token_id"]
    assert model.config.text_config.pad_token_id == 3
    vocab = model.config.text_config.vocab_size
    assert vocab % 64 == 0 and vocab - 64 < len(tok) <= vocab == info["vocab_size"]
    assert model.get_input_embeddings().weight.shape[0] == vocab
    assert assembled["model"].get_input_embeddings().padding_idx == 3  # in memory == reloaded
    assert model.get_output_embeddings().weight.shape[0] == vocab
    assert model.config.vision_feature_layer == -2
    assert model.config.vision_feature_select_strategy == "default"


def test_llama_style_tokenizer_gets_image_then_pad():
    """A tokenizer without a pad token (Llama-2) gets <image>=V and <pad>=V+1 (32000/32001)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, "<unk>")),
                                  bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    assert llava_mod._add_tokens(tok) == (4, 5)
    assert tok.pad_token == "<pad>"
    with pytest.raises(InputError, match="already present"):
        llava_mod._add_tokens(tok)


def test_saved_layout_is_vllm_compatible(assembled):
    out = assembled["out"]
    keys = safetensors_keys(out / "model.safetensors")
    prefixes = {".".join(k.split(".")[:2]) for k in keys}
    assert prefixes == {"language_model.model", "language_model.lm_head", "vision_tower.vision_model",
                        "multi_modal_projector.linear_1", "multi_modal_projector.linear_2"}
    assert len(keys) == len(assembled["model"].state_dict())
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))
    card = json.loads((out / "repro_model.json").read_text())
    assert card == {"architecture": "llava", "template": "llama2",
                    "image_preprocessing": IMAGE_PREPROCESSING}


def test_reload_identical_weights_and_logits(assembled):
    model, reloaded = assembled["model"], assembled["reloaded"]
    before, after = model.state_dict(), reloaded.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    enc = image_inputs(assembled["processor"])
    n_image = int((enc["input_ids"] == assembled["info"]["image_token_id"]).sum())
    assert n_image == assembled["info"]["image_tokens_per_image"] == 16  # (32/8)^2, CLS dropped
    with torch.no_grad():
        a, b = model(**enc).logits, reloaded(**enc).logits
        other = reloaded(**image_inputs(assembled["processor"], (20, 20, 220))).logits
    assert torch.equal(a, b)
    assert not torch.equal(a, other)  # the image really reaches the language model


def test_generate_greedy(assembled):
    enc = image_inputs(assembled["processor"])
    kwargs = dict(max_new_tokens=4, do_sample=False)
    with torch.no_grad():
        first = assembled["reloaded"].generate(**enc, **kwargs)
        second = assembled["reloaded"].generate(**enc, **kwargs)
    assert enc["input_ids"].shape[1] < first.shape[1] <= enc["input_ids"].shape[1] + 4
    assert torch.equal(first[:, :enc["input_ids"].shape[1]], enc["input_ids"])
    assert torch.equal(first, second)
    assert isinstance(assembled["processor"].decode(first[0, enc["input_ids"].shape[1]:]), str)


def test_vision_tower_from_full_clip_checkpoint(assembled, tmp_path):
    """The paper's tower is a full CLIPModel checkpoint; its vision half must load unchanged."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                vocab_size=100, bos_token_id=0, eos_token_id=1)
    clip = CLIPModel(CLIPConfig(vision_config=dict(llava_mod.TINY_VISION_CONFIG),
                                text_config=text, projection_dim=64))
    clip.save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32},
                       crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path / "clip")
    model, *_ = llava_mod.build_llava(assembled["root"] / "llm", vision=tmp_path / "clip", seed=0)
    CLIPImageProcessor(size={"shortest_edge": 48},
                       crop_size={"height": 48, "width": 48}).save_pretrained(tmp_path / "clip")
    with pytest.raises(InputError, match="crop_size 48x48 does not match"):
        llava_mod.build_llava(assembled["root"] / "llm", vision=tmp_path / "clip", seed=0)
    ours = model.model.vision_tower.state_dict()
    theirs = clip.vision_model.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_assembly_rejects_bad_inputs(assembled, tmp_path):
    with pytest.raises(InputError, match="repro_model.json: missing"):
        llava_mod.assemble_llava(tmp_path, tmp_path / "o", vision={}, seed=0)
    with pytest.raises(InputError, match="expected 'causal_lm'"):  # a LLaVA is not an LLM input
        llava_mod.assemble_llava(assembled["out"], tmp_path / "o", vision={}, seed=0)
    with pytest.raises(InputError, match="vision_config"):
        llava_mod.assemble_llava(assembled["root"] / "llm", tmp_path / "o",
                                 vision={"no_such_field": 1}, seed=0)


def test_assemble_stage_records_protocol(assembled, tmp_path):
    from repro.stages.context import StageContext

    out = tmp_path / "out"
    out.mkdir()
    ctx = StageContext(experiment="t", name="vlm", kind="models/assemble_llava", params={},
                       inputs={"llm": assembled["root"] / "llm"}, out=out, seed=0, profile="tiny")
    with pytest.raises(InputError, match="vision_config"):  # neither a tower nor a config
        llava_mod.assemble_stage(ctx)
    ctx.params["vision_config"] = dict(llava_mod.TINY_VISION_CONFIG)
    llava_mod.assemble_stage(ctx)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["image_token_id"] == assembled["info"]["image_token_id"]
    assert ctx.protocol_choices["chat_template"] == "llama2"
    assert ctx.protocol_choices["image_preprocessing"] == IMAGE_PREPROCESSING
    # same inputs and seed -> the same bytes as the fixture's checkpoint
    assert sha256(out / "model.safetensors") == sha256(assembled["out"] / "model.safetensors")


def test_make_tiny_llava_is_deterministic_and_path_free(tmp_path):
    infos = [make_tiny_llava(tmp_path / name, seed=3) for name in ("m1", "m2")]
    assert infos[0] == infos[1]
    assert infos[0]["vocab_size"] % 64 == 0 and infos[0]["image_tokens_per_image"] == 16
    files = sorted(p.name for p in (tmp_path / "m1").iterdir())
    assert "repro_model.json" in files and "processor_config.json" in files
    assert files == sorted(p.name for p in (tmp_path / "m2").iterdir())
    for name in files:  # built via different temp dirs, yet byte-identical: no paths leak in
        assert sha256(tmp_path / "m1" / name) == sha256(tmp_path / "m2" / name), name
        if not name.endswith(".safetensors"):
            assert "/tmp" not in (tmp_path / "m1" / name).read_text(), name


def test_llm_stage_trains_tokenizer_on_corpus(tmp_path, monkeypatch):
    import repro.models.tiny
    from repro.models.tiny import build_llm_stage
    from repro.stages.context import StageContext

    class Corpus:  # stands in for a dataset directory: the stage only needs name + texts()
        name = "synthetic_corpus"

        def texts(self):
            yield from TEXTS

    monkeypatch.setattr(repro.models.tiny, "open_dataset", lambda path: Corpus())
    out = tmp_path / "out"
    out.mkdir()
    ctx = StageContext(experiment="t", name="llm", kind="models/tiny_llm",
                       params={"template": "tulu", "vocab_size": 300}, inputs={"corpus": tmp_path},
                       out=out, seed=0, profile="tiny")
    build_llm_stage(ctx)
    assert json.loads((out / "repro_model.json").read_text())["template"] == "tulu"
    assert ctx.protocol_choices["chat_template"] == "tulu"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["corpus_texts"] == len(TEXTS) and metrics["vocab_size"] <= 300
