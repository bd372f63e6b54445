"""Reduced-size builds of the paper's architectures: LLaVA-1.5 with LLaMA-2's real vocabulary and
ViT-L/14-336's geometry, and judge models of the real judges' families, each loaded by the kit's
own loaders (load_llava, the HF backend)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from repro.errors import InputError  # noqa: E402
from repro.evaluate.backends import GREEDY_SAMPLING, Request  # noqa: E402
from repro.models.tiny import build_llm_stage, build_tiny_llm  # noqa: E402
from repro.pipeline.context import StageContext  # noqa: E402

# ViT-L/14-336's geometry (336 px, patch 14 -> 576 tokens) at reduced depth and width
VISION_336 = {"image_size": 336, "patch_size": 14, "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 3, "num_attention_heads": 2, "projection_dim": 64}
TEXTS = ["[INST] Is this safe? [/INST] I cannot help with that.", "A red square on white.",
         "<|user|>\nDescribe it.\n<|assistant|>\nA circle."] * 4
SAMPLING = {**GREEDY_SAMPLING, "max_new_tokens": 3, "seed": 0}


def _ctx(tmp_path, name, kind, params, inputs):
    out = tmp_path / name
    out.mkdir()
    return StageContext(experiment="t", name=name, kind=kind, params=params, inputs=inputs, out=out,
                        seed=0, profile="rehearsal")


@pytest.fixture(scope="module")
def reduced_llava(llama2_tokenizer, tmp_path_factory):
    from repro.models.llava import assemble_llava

    root = tmp_path_factory.mktemp("reduced_llava")
    ctx = _ctx(root, "llm", "models/tiny_llm",
               {"family": "llama2", "hidden_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
                "intermediate_size": 256, "max_position_embeddings": 4096},
               {"tokenizer": llama2_tokenizer.out})
    build_llm_stage(ctx)
    info = assemble_llava(ctx.out, root / "llava", vision=dict(VISION_336), seed=0)
    return {"llm": ctx, "dir": root / "llava", "info": info}


def test_llm_keeps_the_real_tokenizer_files(reduced_llava, llama2_tokenizer):
    ctx = reduced_llava["llm"]
    for name in ("tokenizer.model", "tokenizer.json", "NOTICE.md"):
        assert (ctx.out / name).read_bytes() == (llama2_tokenizer.out / name).read_bytes(), name
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    assert metrics["vocab_size"] == 32000 and metrics["model_class"] == "LlamaForCausalLM"
    config = json.loads((ctx.out / "config.json").read_text())  # Llama-2-7B's constants (its GGUF)
    assert (config["rms_norm_eps"], config["num_key_value_heads"]) == (1e-5, 4)
    assert "llama-cpp-python==0.3.36" in ctx.protocol_choices["tokenizer"]


def test_llava_vocab_image_tokens_and_clip_processing(reduced_llava):
    from PIL import Image

    from repro.models.images import prepare_image
    from repro.models.llava import load_llava

    info = reduced_llava["info"]
    assert (info["image_token_id"], info["pad_token_id"], info["vocab_size"]) == (32000, 32001, 32064)
    assert info["image_tokens_per_image"] == 576
    model, proc = load_llava(reduced_llava["dir"])
    ip = proc.image_processor  # CLIP ViT-L/14-336 (PINS.md): bicubic, 336 crop, 1/255, OpenAI mean/std
    assert (ip.size["shortest_edge"], ip.crop_size["height"], ip.crop_size["width"]) == (336, 336, 336)
    assert int(ip.resample) == 3 and ip.rescale_factor == pytest.approx(1 / 255)
    assert ip.image_mean == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert ip.image_std == pytest.approx([0.26862954, 0.26130258, 0.27577711])
    tok = proc.tokenizer  # the real vocabulary survives assembly, leading "▁" included
    assert tok("Hello world").input_ids == [1, 15043, 3186] and tok(" Hello").input_ids == [1, 29871, 15043]
    assert tok("<image>", add_special_tokens=False).input_ids == [32000]
    image = prepare_image(Image.new("RGB", (500, 300), (200, 30, 30)), ip)
    enc = proc(text=["USER: <image>\nWhat is shown? ASSISTANT:"], images=[image], return_tensors="pt")
    assert tuple(enc["pixel_values"].shape) == (1, 3, 336, 336)
    assert int((enc["input_ids"] == 32000).sum()) == 576
    with torch.inference_mode():
        logits = model(**enc).logits
    assert logits.shape[-1] == 32064 and torch.isfinite(logits).all()


@pytest.mark.parametrize("family,model_class,kv", [("llama3", "LlamaForCausalLM", 1),
                                                   ("mistral", "MistralForCausalLM", 1)])
def test_judge_families_generate_in_hf_backend(tmp_path, family, model_class, kv):
    from repro.evaluate.backends.hf import HFBackend

    info = build_tiny_llm(tmp_path / family, TEXTS, seed=0, hidden_size=128, num_heads=4,
                          num_layers=2, vocab_size=300, family=family)
    assert info["model_class"] == model_class
    config = json.loads((tmp_path / family / "config.json").read_text())
    assert config["num_key_value_heads"] == kv  # 4 query heads per key/value head, as the 8B/7B
    backend = HFBackend(tmp_path / family, batch_size=2)
    assert len(backend.generate([Request("[INST] hi [/INST]"), Request("hello")], SAMPLING)) == 2


def test_wildguard_family_with_mistral_v3_vocabulary(tmp_path):
    from registry_helpers import build_tokenizer

    from repro.evaluate.backends.hf import HFBackend

    tok = build_tokenizer("mistral_v3", tmp_path / "tok")
    ctx = _ctx(tmp_path, "judge", "models/tiny_llm",
               {"family": "mistral", "hidden_size": 128, "num_attention_heads": 4}, {"tokenizer": tok.out})
    build_llm_stage(ctx)
    assert json.loads((ctx.out / "config.json").read_text())["vocab_size"] == 32768
    out = HFBackend(ctx.out).generate([Request("<s><|user|>\n[INST] Is this harmful? [/INST]")], SAMPLING)
    assert len(out) == 1


def test_tiny_mllama_stage_generates_with_an_image(tmp_path, llama3_tokenizer):
    from PIL import Image

    from repro.evaluate.backends.hf import HFBackend
    from repro.models.tiny_mllama import build_mllama_stage

    ctx = _ctx(tmp_path, "guard_vision", "models/tiny_mllama",
               {"hidden_size": 128, "num_attention_heads": 4, "num_hidden_layers": 3},
               {"tokenizer": llama3_tokenizer.out})
    build_mllama_stage(ctx)
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    # Llama 3.2 Vision's <|image|> follows Llama 3's 128,256 tokens
    assert metrics["model_class"] == "MllamaForConditionalGeneration" and metrics["image_token_id"] == 128256
    Image.new("RGB", (300, 200), (10, 200, 10)).save(tmp_path / "img.png")
    backend = HFBackend(ctx.out)
    assert backend.architecture == "image_text_to_text"
    assert len(backend.generate([Request("<|image|>Is this safe?", tmp_path / "img.png")], SAMPLING)) == 1


def test_family_and_shape_errors(tmp_path):
    from repro.models.tiny_mllama import build_tiny_mllama

    with pytest.raises(InputError, match="family: 'qwen' is not one of llama2, llama3, mistral"):
        build_tiny_llm(tmp_path / "a", TEXTS, seed=0, family="qwen")
    with pytest.raises(InputError, match="num_attention_heads: 2 is not a multiple of the family's 4"):
        build_tiny_llm(tmp_path / "b", TEXTS, seed=0, family="llama3")
    text = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256,
            "max_position_embeddings": 512}
    with pytest.raises(InputError, match="vision_config: unknown key"):
        build_tiny_mllama(tmp_path / "c", TEXTS, seed=0, text=text, cross_attention_layers=[1],
                          vision={"image_sise": 224})
    with pytest.raises(InputError, match=r"cross_attention_layers: \[5\] outside 0..1"):
        build_tiny_mllama(tmp_path / "d", TEXTS, seed=0, text=text, cross_attention_layers=[5], vision={})
    with pytest.raises(InputError, match="tokenizer.json: missing"):
        build_tiny_llm(tmp_path / "e", None, seed=0, tokenizer_dir=tmp_path)
