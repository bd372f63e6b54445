"""report.html in a real browser: Debian's Chromium, headless, driven by Playwright's Python package
pointed at it (``executable_path``; Playwright downloads no browser of its own). Every page is
opened from the file system, as a researcher opens a report.

On a hand-built run (``tests/report_run.py``): the page loads with no console error and makes
no request but to its own files, the filters change what is shown, a sample's judge output is
visible, a benchmark's samples load only when it is chosen, the side-by-side view lists the
prompts where two rows' verdicts differ, and injection attempts in a sample stay text. On the
real tiny smoke run: the report of a reproduction loads clean and shows its judges' outputs and
thumbnails. Skips, saying why, where Chromium or Playwright is absent, unless
REPRO_REQUIRE_BROWSER=1 (CI installs Chromium from Debian's packages and sets it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conftest import copy_runs, repro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report_run import INJECT, ROW_A, ROW_B, make_run  # noqa: E402

CHROMIUM = Path(os.environ.get("REPRO_CHROMIUM", "/usr/bin/chromium"))
# a fresh profile per launch (Playwright's own temporary user-data-dir), nothing reaching out
# functions, not expressions: Playwright evaluates an expression with eval, which the page's CSP forbids
THUMB_LOADED = "() => Array.from(document.querySelectorAll('img.thumb')).some(i => i.complete && i.naturalWidth > 0)"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _missing(reason: str):
    if os.environ.get("REPRO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"REPRO_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (make setup installs it with the dev extra)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


class Page:
    """A page opened from file:// with its console errors and the URLs it requested."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page(viewport={"width": 1280, "height": 1600})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("#list article.sample")

    def count(self) -> str:
        return self.page.inner_text("#list-count")

    def select(self, select_id: str, label: str) -> None:
        self.page.select_option(f"#{select_id}", label=label)


@pytest.fixture
def demo(tmp_path, browser):
    from repro.report.html import write_html

    page = Page(browser, write_html(make_run(tmp_path)))
    yield page
    page.page.close()


def test_loads_clean_filters_change_what_is_shown_judge_output_visible(demo):
    assert demo.errors == []
    assert all(u.startswith(("file://", "data:")) for u in demo.requests), demo.requests
    assert demo.count() == "12 of 12 samples of mm_safetybench"  # 2 rows + 1 re-judging, 4 items each
    demo.select("f-row", ROW_B)
    assert demo.count() == "4 of 12 samples of mm_safetybench"
    assert demo.page.locator("#list .side .head b").all_inner_texts() == [f"{ROW_B} · exact"] * 4
    demo.select("f-verdict", "refusal")
    assert demo.count() == "1 of 12 samples of mm_safetybench"
    judge_out = demo.page.locator("#list .field.judge pre").all_inner_texts()
    assert judge_out == ["refusal"]  # the judge's raw output, shown
    demo.select("f-row", "all rows")
    demo.select("f-judge", "keyword_refusal")
    assert demo.count() == "4 of 12 samples of mm_safetybench"
    assert demo.page.locator("#list .field.judge pre").all_inner_texts() == ["i cannot"] * 4
    demo.page.fill("#f-text", "no such text anywhere")
    assert demo.count() == "0 of 12 samples of mm_safetybench"
    thumb = demo.page.locator("img.thumb").first
    demo.page.fill("#f-text", "")
    demo.page.wait_for_function(THUMB_LOADED)
    assert thumb.get_attribute("src").startswith("report_files/thumbs/")
    assert demo.errors == []


def test_benchmarks_load_lazily(demo):
    scripts = "() => Array.from(document.querySelectorAll('script[src]')).map(s => s.src.split('/').pop())"
    loaded = demo.page.evaluate(scripts)
    assert len(loaded) == 1 and loaded[0].startswith("samples-mm_safetybench-")
    demo.page.select_option("#f-bench", label="sorry_bench (2)")
    demo.page.wait_for_function("() => document.getElementById('list-count').textContent.includes('sorry_bench')")
    assert demo.count() == "2 of 2 samples of sorry_bench"
    assert sorted(n.split("-")[1] for n in demo.page.evaluate(scripts)) == ["mm_safetybench", "sorry_bench"]
    assert demo.errors == []


def test_side_by_side_lists_prompts_whose_verdicts_differ(demo):
    demo.page.click("#tab-compare")
    demo.select("cmp-a", f"{ROW_A} · exact")
    demo.select("cmp-b", f"{ROW_B} · exact")
    assert demo.page.inner_text("#cmp-count") == "2 prompts where the verdicts differ, of 4 prompts both were scored on"
    cards = demo.page.locator("#compare article.sample")
    assert cards.count() == 2
    sides = cards.first.locator(".side")
    assert sides.count() == 2 and sides.nth(0).locator(".verdict").inner_text() == "refusal"
    assert sides.nth(1).locator(".verdict").inner_text() == "unsafe"
    demo.select("cmp-b", f"{ROW_A} · keyword_refusal")  # two judges on the same responses
    assert demo.page.inner_text("#cmp-count").startswith("1 prompts where the verdicts differ, of 4")
    assert demo.errors == []


def test_injection_in_samples_and_labels_stays_text(demo):
    page = demo.page
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("img[src='x']").count() == 0 and page.locator("b:text-is('A')").count() == 0
    body = page.inner_text("body")
    assert INJECT in body  # shown literally: in the prompt, the response and the category
    assert ROW_A in body  # a row label with markup, shown as written
    prompts = page.locator("#list .field.prompt pre").all_inner_texts()
    assert INJECT in prompts
    assert page.evaluate("() => window.__pwned") is None and demo.errors == []


def test_report_of_a_real_tiny_run(smoke_run, tmp_path, browser):
    runs = copy_runs(smoke_run.runs, tmp_path / "runs")
    proc = repro("report", "smoke", "--runs-dir", runs)
    assert proc.returncode == 0, proc.stderr
    page = Page(browser, runs / "smoke" / "report.html")
    assert page.errors == [] and all(u.startswith(("file://", "data:")) for u in page.requests)
    assert page.page.locator("table.results tbody tr").count() == 2  # LLM, LLM-VL
    assert page.page.locator("#list .field.judge pre").first.inner_text() in ("refusal", "other")
    page.page.select_option("#f-bench", label=page.page.locator("#f-bench option", has_text="mm_safetybench").inner_text())
    page.page.wait_for_function(THUMB_LOADED)
    assert page.errors == []
    page.page.close()
