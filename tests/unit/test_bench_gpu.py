"""The GPU benchmarks' CPU smoke paths: ``repro.bench.eval_gpu --tiny`` and the combined summary."""

from __future__ import annotations

import importlib.util
import json


def test_eval_gpu_bench_tiny_and_summary(tmp_path, capsys):
    from repro.bench.eval_gpu import main
    from repro.bench.train_gpu import main as train_main

    out = tmp_path / "bench" / "eval_gpu.json"
    result = main(["--tiny", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["rows"] == result["rows"] and saved["checkpoint"]["vocab_size"] == 512
    hf = {r["batch"]: r for r in saved["rows"] if r["backend"] == "hf"}
    assert set(hf) == {"4", "1"}  # batched and unbatched
    for row in hf.values():
        assert row["status"] == "ok"
        # counted from token ids: at most prompts x max_new_tokens, and something was generated
        assert 0 < row["generated_tokens"] <= saved["prompts"] * saved["max_new_tokens"]
        assert row["tokens_per_s"] > 0 and row["wall_s"] > 0
        low, high = row["tokens_per_s_32_layers_bounds"]
        assert low < high == row["tokens_per_s"]
    (vllm,) = [r for r in saved["rows"] if r["backend"] == "vllm"]
    if importlib.util.find_spec("vllm") is None:
        assert vllm["status"] == "vllm not installed" and vllm["tokens_per_s"] is None
    else:
        assert vllm["status"] == "ok" or vllm["status"].startswith("error:")

    train = tmp_path / "bench" / "train_gpu.json"
    train_main(["--tiny", "--json", str(train)])
    capsys.readouterr()
    main(["--summary", str(train), str(out)])
    text = capsys.readouterr().out
    assert "tokens/s/GPU" in text and "MFU" in text
    assert "vllm not installed" in text or "vllm " in text
    assert text.count("\n  hf ") == 2
