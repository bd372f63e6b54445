"""Hugging Face ``generate`` backend: batched, left-padded, seeded; returns only the new text.

Commands (the backend is used by the ``evaluate/benchmark`` stage, never called directly):
  CPU tiny:  repro run <experiment> --profile tiny            (backend: hf, float32)
  1 GPU:     repro run <experiment> --set eval.params.backend=hf   (bfloat16 on CUDA)

Prompts arrive fully rendered, special tokens written as text (``<s>[INST] ...``), so they are
tokenized with ``add_special_tokens=False``: a second BOS would change the model's input.
LLaVA images go through the kit's own ``prepare_image`` (LLaVA-1.5 pad-to-square), the same
function training uses; other vision models (a Llama-Guard-3-Vision judge) get the raw image and
their own processor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.evaluate.backends import Request, read_model_info
from repro.models.images import open_image, prepare_image


class HFBackend:
    name = "hf"

    def __init__(self, model_dir: Path, dtype: str | None = None, device: str | None = None,
                 batch_size: int = 8):
        import torch
        import transformers as tf

        info = read_model_info(model_dir)
        self.architecture = info["architecture"]
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = dtype or ("bfloat16" if self.device.startswith("cuda") else "float32")
        self.batch_size = max(1, int(batch_size))
        kwargs = {"dtype": getattr(torch, self.dtype), "use_safetensors": True, "trust_remote_code": False}
        try:
            if self.architecture == "causal_lm":
                self.model = tf.AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
                self.processor = None
                self.tokenizer = tf.AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
            else:
                cls = (tf.LlavaForConditionalGeneration if self.architecture == "llava"
                       else tf.AutoModelForImageTextToText)
                self.model = cls.from_pretrained(model_dir, **kwargs)
                self.processor = tf.AutoProcessor.from_pretrained(model_dir, trust_remote_code=False)
                self.tokenizer = self.processor.tokenizer
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise InputError(f"{model_dir}: cannot load {self.architecture} checkpoint: {first}") from None
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"  # decoder-only batching: prompts end at the same column
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def info(self) -> dict[str, Any]:
        import torch
        import transformers

        return {"backend": self.name, "transformers": transformers.__version__,
                "torch": torch.__version__, "dtype": self.dtype, "device_type": self.device.split(":")[0],
                "architecture": self.architecture, "batch_size": self.batch_size}

    # ------------------------------------------------------------------ generation
    def generate(self, requests: list[Request], sampling: dict[str, Any]) -> list[str]:
        import torch

        if float(sampling.get("frequency_penalty", 0.0)) != 0.0:
            raise InputError("sampling: frequency_penalty: the hf backend supports only 0.0 (use vllm)")
        if any(r.image is not None for r in requests) and self.processor is None:
            raise InputError("a text-only (causal_lm) model got image inputs")
        torch.manual_seed(int(sampling.get("seed", 0)))
        outputs: list[str | None] = [None] * len(requests)
        # text-only and image requests go in separate batches: the processor needs one image per
        # <image> token in the batch, and pixel values cannot be given for half a batch
        for has_image in (False, True):
            idx = [i for i, r in enumerate(requests) if (r.image is not None) == has_image]
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                texts = self._generate_batch([requests[i] for i in chunk], sampling)
                for i, text in zip(chunk, texts):
                    outputs[i] = text
        return [o or "" for o in outputs]

    def _encode(self, batch: list[Request]):
        prompts = [r.prompt for r in batch]
        if batch[0].image is None:
            return self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        images = [open_image(r.image) for r in batch]
        if self.architecture == "llava":
            images = [prepare_image(img, self.processor.image_processor) for img in images]
        else:  # e.g. Mllama's processor wants one list of images per prompt
            images = [[img] for img in images]
        return self.processor(text=prompts, images=images, return_tensors="pt", padding=True,
                              add_special_tokens=False)

    def _generate_batch(self, batch: list[Request], sampling: dict[str, Any]) -> list[str]:
        import torch

        inputs = self._encode(batch).to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        temperature = float(sampling.get("temperature", 0.0))
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": int(sampling["max_new_tokens"]),
            "repetition_penalty": float(sampling.get("repetition_penalty", 1.0)),
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": temperature > 0.0,
        }
        if temperature > 0.0:
            gen_kwargs.update(temperature=temperature, top_p=float(sampling.get("top_p", 1.0)), top_k=0)
        else:  # explicit, so a checkpoint's generation_config cannot turn sampling back on
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **gen_kwargs)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
