"""How report.html copes with a paper-size run (docs/reporting.md, "Scale"): a hand-made run of
ROWS model rows x ITEMS prompts of one benchmark (text-only, SORRY-Bench-like answers of a few
hundred characters), rendered by `repro report`'s code and opened in headless Chromium from the
file system; prints the render time, the data file's size and the browser's times.

    .venv/bin/python scripts/report_scale.py --rows 6 --items 5000 [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from repro.report.html import write_html

WORDS = "the a tool step green red box plan first then next check part one two allowed task".split()


def _text(rng: int, n: int) -> str:
    return " ".join(WORDS[(rng * 7 + i * 13) % len(WORDS)] for i in range(n))


def make_run(root: Path, rows: int, items: int) -> Path:
    runs, stages, results, decl_rows = root / "runs", {}, {}, []
    for r in range(rows):
        out = runs / "store" / f"k{r}" / "out"
        out.mkdir(parents=True)
        with open(out / "samples.jsonl", "w") as fh:
            for i in range(items):
                unsafe = (i * (r + 3)) % 5 == 0
                response = _text(i + r, 60)
                fh.write(json.dumps({"id": str(i), "category": f"category {i % 45}", "harmful": True,
                                     "prompt": f"[INST] {_text(i, 40)} [/INST]", "judge_prompt": _text(i, 40),
                                     "response": response,
                                     "response_sha256": hashlib.sha256(response.encode()).hexdigest(),
                                     "verdict": {"parsed": True, "unsafe": unsafe, "refusal": not unsafe},
                                     "judge_raw": "unsafe\nS2" if unsafe else "safe"}) + "\n")
        metrics = {"benchmark": "sorry_bench", "primary": "asr", "metrics": {"asr": 0.2}, "n": items,
                   "n_total": items, "partial": False, "judge": {"name": "sorry_bench_judge"}}
        (out / "metrics.json").write_text(json.dumps(metrics))
        name = f"eval~m{r}~sorry_bench"
        stages[name] = {"kind": "evaluate/benchmark", "key": f"k{r}", "output": f"store/k{r}/out",
                        "output_digest": "d", "inputs": {"model": f"m{r}"}, "external": [], "protocol_choices": {}}
        results[name] = metrics
        decl_rows.append({"label": f"model {r}", "cells": {"SORRY": name}})
    stages["t"] = {"kind": "report/table", "key": "kt", "output": "store/kt/out", "output_digest": "d",
                   "inputs": {n: n for n in stages}, "external": [], "protocol_choices": {}}
    manifest = {"experiment": "scale", "profile": "paper", "stages": stages, "results": results, "result_stages": [],
                "declaration": {"stages": {"t": {"params": {"rows": decl_rows}}}}}
    (runs / "scale").mkdir(parents=True)
    (runs / "scale" / "manifest.json").write_text(json.dumps(manifest))
    return runs / "scale"


def browse(page_path: Path, chromium: str) -> dict:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        t0 = time.perf_counter()
        page.goto(page_path.as_uri())
        page.wait_for_selector("#list article.sample")
        out["load_and_first_page_s"] = time.perf_counter() - t0
        for label, action in [("filter_row_s", lambda: page.select_option("#f-row", label="model 3")),
                              ("filter_verdict_s", lambda: page.select_option("#f-verdict", label="unsafe")),
                              ("text_search_s", lambda: page.fill("#f-text", "green tool")),
                              ("side_by_side_s", lambda: (page.fill("#f-text", ""), page.click("#tab-compare")))]:
            t0 = time.perf_counter()
            action()
            page.evaluate("() => document.getElementById('list-count').textContent")
            out[label] = time.perf_counter() - t0
        out["side_by_side"] = page.inner_text("#cmp-count")
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exp = make_run(Path(tmp), args.rows, args.items)
        t0 = time.perf_counter()
        page = write_html(exp)
        result = {"samples": args.rows * args.items, "render_s": time.perf_counter() - t0,
                  "report_html_kb": page.stat().st_size // 1024,
                  "data_file_mb": round(sum(p.stat().st_size for p in (exp / "report_files").glob("*.js")) / 2**20, 1)}
        result.update(browse(page, args.chromium))
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
