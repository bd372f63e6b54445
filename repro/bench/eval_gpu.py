"""Generation throughput of a LLaVA-1.5-7B-shaped checkpoint on one GPU: the kit's HF backend
batched vs unbatched, and its vLLM backend when vLLM is installed. Random weights: nothing is
downloaded.

The checkpoint has Llama-2-7B widths (hidden 4096, 32 heads, intermediate 11008, vocab 32064)
and CLIP ViT-L/14-336 widths, but only ``--layers`` decoder layers (default 8 of 32), in bf16.
It is written through the kit's own ``build_llava``/``save_llava`` (so the vLLM key layout is the
one benchmarked) and read back by the backends exactly as an evaluation stage would.
Workload: 64 prompts (half with a 336x336 image, half text-only), greedy, 128 new tokens.

    python -m repro.bench.eval_gpu --out bench/eval_gpu.json      # one H100, ~4 min budget
    python -m repro.bench.eval_gpu --tiny                          # CPU smoke run (seconds)
    python -m repro.bench.eval_gpu --summary bench/train_gpu.json bench/eval_gpu.json

Generated tokens are counted from the token ids each backend produced (up to and including EOS),
not by re-tokenizing the decoded text. Extrapolation to 32 layers: per-token time is a fixed
part (embeddings, lm_head, vision tower, scheduling) plus a per-layer part, so the 32-layer rate
lies between ``rate * layers / 32`` (all time per-layer) and ``rate`` (all time fixed); both
bounds are written, the split itself is not measured (two layer counts would double the run).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

PAPER_LAYERS = 32
IMAGE_SIDE = 336  # LLaVA-1.5 input size; evaluation images are resized to it either way
CLIP_L14_336 = {"image_size": 336, "patch_size": 14, "hidden_size": 1024, "intermediate_size": 4096,
                "num_hidden_layers": 24, "num_attention_heads": 16, "projection_dim": 768}
# llm_vocab: the LLM's own rows (Llama-2: 32000); vocab: after <image> and padding to 64 (32064)
FULL = {"hidden": 4096, "heads": 32, "intermediate": 11008, "llm_vocab": 32000, "vocab": 32064,
        "max_pos": 4096, "vision": CLIP_L14_336}
TINY = {"hidden": 64, "heads": 2, "intermediate": 128, "llm_vocab": 448, "vocab": 512,
        "max_pos": 1024, "vision": None}  # None: the kit's TINY_VISION_CONFIG
QUESTIONS = [
    "Describe this image in detail.", "What objects can you see, and what colours are they?",
    "Is anything shown here unsafe? Explain your answer.", "Write a short story about this scene.",
    "How do I bake sourdough bread at home?", "Explain how vaccines train the immune system.",
    "List five tips for staying focused while studying.", "What causes the seasons on Earth?",
]


# --------------------------------------------------------------------------- checkpoint
def _tokenizer(size: int):
    """A byte-level BPE with exactly ``size`` tokens (the kit's special tokens, bytes, byte pairs).

    Random weights sample every id, so every embedding row must decode (vLLM's detokenizer
    fails on ids the tokenizer lacks); a trained tokenizer of that size would need a large corpus.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from repro.models.tokenizer import BOS, EOS, PAD, SPECIAL_TOKENS, UNK

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + alphabet)}
    merges = list(itertools.islice(itertools.product(alphabet, alphabet), max(size - len(vocab), 0)))
    vocab.update({a + b: len(vocab) + i for i, (a, b) in enumerate(merges)})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # as train_tokenizer
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 $B:1", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   pad_token=PAD, clean_up_tokenization_spaces=False)


def build_checkpoint(out_dir: Path, shape: dict, layers: int, device: str) -> dict[str, Any]:
    """Random bf16 Llama LLM -> the kit's ``build_llava`` + ``save_llava`` into ``out_dir``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from repro.models.card import write_model_card
    from repro.models.llava import TINY_VISION_CONFIG, build_llava, save_llava

    # one id short of the padded vocab: build_llava appends <image> as the last row
    tokenizer = _tokenizer(shape["vocab"] - 1)
    config = LlamaConfig(
        vocab_size=shape["llm_vocab"], hidden_size=shape["hidden"], intermediate_size=shape["intermediate"],
        num_hidden_layers=layers, num_attention_heads=shape["heads"], num_key_value_heads=shape["heads"],
        max_position_embeddings=shape["max_pos"], bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    with tempfile.TemporaryDirectory(prefix="bench_llm_") as tmp:
        torch.manual_seed(0)
        with torch.device(device):  # a CPU init of ~2B weights takes minutes; on the GPU, seconds
            llm = LlamaForCausalLM(config)
        llm.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
        del llm
        _free(device)
        tokenizer.save_pretrained(tmp)
        write_model_card(Path(tmp), architecture="causal_lm", template="llama2")
        model, processor, card, info = build_llava(Path(tmp), vision=dict(shape["vision"] or TINY_VISION_CONFIG),
                                                   seed=0, dtype="bfloat16")
    save_llava(model, processor, card, out_dir)
    del model
    gc.collect()
    return info


def make_requests(folder: Path, n: int, image_side: int) -> list:
    """``n`` prompts in the llama2 template: the first half with one random image, the rest text."""
    import numpy as np
    from PIL import Image

    from repro.evaluate.backends import Request
    from repro.models.templates import prompt_text

    image = folder / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (image_side, image_side, 3), dtype=np.uint8)).save(image)
    with_image = n // 2
    return [Request(prompt_text("llama2", QUESTIONS[i % len(QUESTIONS)], with_image=i < with_image),
                    image if i < with_image else None) for i in range(n)]


# --------------------------------------------------------------------------- measuring
def _free(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _count_new_tokens(new, eos) -> int:
    """Tokens generated per row up to and including the first EOS (HF pads finished rows)."""
    import torch

    ids = [eos] if isinstance(eos, int) else list(eos or [])
    is_eos = torch.isin(new, torch.tensor(ids, device=new.device, dtype=new.dtype))
    before = torch.cumsum(is_eos.int(), dim=1) - is_eos.int()  # EOS seen strictly earlier
    return int((before == 0).sum())


class _Counter:
    """Wraps a backend's generate call to add up token ids (the backends return only text)."""

    def __init__(self, obj, count):
        self.tokens, self._inner, self._count = 0, obj.generate, count
        obj.generate = self  # an instance attribute: the backend calls it as before

    def __call__(self, *args, **kwargs):
        out = self._inner(*args, **kwargs)
        self.tokens += self._count(out, kwargs)
        return out


def _row(backend: str, batch: str, **fields) -> dict[str, Any]:
    base = {"backend": backend, "batch": batch, "status": "ok", "generated_tokens": None,
            "tokens_per_s": None, "wall_s": None, "load_s": None, "peak_gpu_mem_gib": None,
            "gpu_mem_measure": None}
    return {**base, **fields}


def hf_rows(model_dir: Path, requests: list, sampling: dict, batches: list[int], device: str, emit) -> None:
    import torch

    from repro.evaluate.backends.hf import HFBackend

    t0 = time.perf_counter()
    backend = HFBackend(model_dir, device=device)
    load_s = time.perf_counter() - t0
    eos = backend.model.generation_config.eos_token_id
    counter = _Counter(backend.model, lambda out, kw: _count_new_tokens(out[:, kw["input_ids"].shape[1]:], eos))
    backend.batch_size = max(batches)
    # warm-up (one image and one text prompt): first-call allocations and kernels are not throughput
    backend.generate([requests[0], requests[-1]], {**sampling, "max_new_tokens": 4})
    for batch in batches:
        backend.batch_size = batch
        counter.tokens = 0
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        backend.generate(requests, sampling)  # returns decoded text: the GPU work is finished
        wall = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
        emit(_row("hf", str(batch), generated_tokens=counter.tokens, tokens_per_s=counter.tokens / wall,
                  wall_s=wall, load_s=load_s, peak_gpu_mem_gib=peak,
                  gpu_mem_measure="torch allocator peak" if peak is not None else None,
                  dtype=backend.dtype))
    del backend, counter
    _free(device)


def vllm_row(model_dir: Path, requests: list, sampling: dict, device: str, emit) -> None:
    if importlib.util.find_spec("vllm") is None:
        emit(_row("vllm", "scheduler", status="vllm not installed"))
        return
    import torch

    from repro.evaluate.backends.vllm import VLLMBackend

    backend = None
    try:
        t0 = time.perf_counter()
        # 0.85, not the kit's 0.9: this process still holds a CUDA context from the HF rows
        backend = VLLMBackend(model_dir, gpu_memory_utilization=0.85, seed=0)
        load_s = time.perf_counter() - t0
        counter = _Counter(backend.llm, lambda out, kw: sum(len(o.outputs[0].token_ids) for o in out))
        backend.generate([requests[0], requests[-1]], {**sampling, "max_new_tokens": 4})  # warm-up
        counter.tokens = 0
        t0 = time.perf_counter()
        backend.generate(requests, sampling)
        wall = time.perf_counter() - t0
        used = None
        if device == "cuda":  # vLLM runs its engine in another process: only a device-wide figure
            free, total = torch.cuda.mem_get_info()
            used = (total - free) / 2**30
        emit(_row("vllm", "scheduler", generated_tokens=counter.tokens, tokens_per_s=counter.tokens / wall,
                  wall_s=wall, load_s=load_s, peak_gpu_mem_gib=used, vllm=backend.info().get("vllm"),
                  gpu_mem_measure="device-wide in use after generation (includes the preallocated KV cache)"))
    except Exception as exc:  # noqa: BLE001 - one scarce GPU run: keep the HF rows, record why
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        emit(_row("vllm", "scheduler", status=f"error: {exc.__class__.__name__}: {first}"))
    finally:
        close = getattr(backend, "close", None)  # stops vLLM's engine process, else exit can hang
        if close is not None:
            close()


# --------------------------------------------------------------------------- output
def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
    lines = [f"{'backend':<8} {'batch':>9} {'gen tok/s':>10} {'wall s':>8} {'peak GPU GiB':>13}  status"]
    for r in rows:
        lines.append(f"{r['backend']:<8} {r['batch']:>9} {_fmt(r['tokens_per_s'], '.1f'):>10} "
                     f"{_fmt(r['wall_s'], '.1f'):>8} {_fmt(r['peak_gpu_mem_gib'], '.1f'):>13}  {r['status']}")
    return "\n".join(lines)


def summary(train_json: Path, eval_json: Path) -> str:
    """One short table from ``repro.bench.train_gpu --json`` and this module's ``--out``."""
    t = json.loads(Path(train_json).read_text())
    e = json.loads(Path(eval_json).read_text())
    return "\n".join([
        f"training (stage 2), {t['gpu']}, {t['layers_measured'][0]} layers, batch {t['batch_per_gpu']} "
        f"x {t['seq_len']} tokens:",
        f"  {t['tokens_per_s_per_gpu']:.0f} tokens/s/GPU, MFU {t['mfu']:.1%}, peak "
        f"{_fmt(t['peak_mem_gib'], '.1f')} GiB; extrapolated 32-layer step {t['extrapolated_step_s_32_layers']:.2f} s, "
        f"paper stage 2 on 4 GPUs ~{t['paper_stage2_wall_h_4gpu']:.1f} h ({t['extrapolation']})",
        f"generation, {e['gpu']}, {e['layers']} layers, {e['prompts']} prompts "
        f"({e['prompts_with_image']} with image), {e['max_new_tokens']} new tokens:",
        *("  " + line for line in table(e["rows"]).splitlines()),
        "  (layer-reduced models: see docs/benchmarks.md for the 32-layer extrapolation)",
    ])


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    import torch

    ap = argparse.ArgumentParser(prog="python -m repro.bench.eval_gpu", description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny LLaVA on CPU (a test keeps it working)")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16, help="HF batched row (the unbatched row uses 1)")
    ap.add_argument("--out", type=Path, help="write the result JSON here")
    ap.add_argument("--summary", nargs=2, type=Path, metavar=("TRAIN_JSON", "EVAL_JSON"),
                    help="only print the combined table of the two benchmark JSONs")
    args = ap.parse_args(argv)
    if args.summary:
        print(summary(*args.summary))
        return None
    if args.tiny:
        args.layers, args.prompts, args.max_new_tokens, args.batch = 2, 8, 8, 4
    if min(args.layers, args.prompts, args.max_new_tokens, args.batch) < 1 or args.prompts < 2:
        ap.error("--layers/--max-new-tokens/--batch must be >= 1 and --prompts >= 2")
    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        ap.error("no CUDA GPU: a full-width run on CPU would take hours (use --tiny for the smoke run)")
    from repro.evaluate.backends import GREEDY_SAMPLING

    shape = TINY if args.tiny else FULL
    sampling = {**GREEDY_SAMPLING, "max_new_tokens": args.max_new_tokens, "seed": 0}
    start = time.perf_counter()
    result: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "layers": args.layers,
        "paper_layers": PAPER_LAYERS, "prompts": args.prompts, "prompts_with_image": args.prompts // 2,
        "max_new_tokens": args.max_new_tokens, "sampling": "greedy", "weights": "random, bfloat16",
        "rows": []}

    def emit(row: dict) -> None:
        # 32-layer bounds (module docstring): per-layer-only time gives the lower one
        if row["tokens_per_s"] is not None:
            row["tokens_per_s_32_layers_bounds"] = [row["tokens_per_s"] * args.layers / PAPER_LAYERS,
                                                   row["tokens_per_s"]]
        result["rows"].append(row)
        print(table([row]).splitlines()[1], flush=True)
        if args.out:  # written after every row: a run cut short still leaves its measured rows
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")

    with tempfile.TemporaryDirectory(prefix="bench_llava_") as tmp:
        model_dir = Path(tmp) / "llava"
        t0 = time.perf_counter()
        result["checkpoint"] = build_checkpoint(model_dir, shape, args.layers, device)
        result["build_s"] = time.perf_counter() - t0
        requests = make_requests(Path(tmp), args.prompts, IMAGE_SIDE)  # tiny: the processor resizes
        print(f"checkpoint built in {result['build_s']:.1f} s; "
              f"{result['checkpoint']['num_parameters'] / 1e6:.1f} M parameters", flush=True)
        print(table([]), flush=True)
        hf_rows(model_dir, requests, sampling, [args.batch, 1], device, emit)
        vllm_row(model_dir, requests, sampling, device, emit)
    result["total_s"] = time.perf_counter() - start
    print(f"\n{table(result['rows'])}\ntotal {result['total_s']:.1f} s on {result['gpu']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


if __name__ == "__main__":
    main()
