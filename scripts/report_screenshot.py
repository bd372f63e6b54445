"""The screenshots of docs/reporting.md: a finished run's report.html opened from the file system
in headless Chromium (Playwright pointed at the system binary, as the browser test does), the
sample browser on one benchmark, then the side-by-side view of two of its evaluations.

    .venv/bin/python scripts/report_screenshot.py runs/table2 --benchmark wildjailbreak \
        --compare "LLM B-VL" "+ safety SFT (VLGuard)" --out docs/img/report-table2
"""

from __future__ import annotations

import argparse
from pathlib import Path

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
HEIGHT = 1600  # pixels of each shot (a full page of samples is several thousand)


def _option(page, select_id: str, starts: str) -> str:
    """The value of the first option of ``select_id`` whose label starts with ``starts``."""
    labels = page.eval_on_selector(f"#{select_id}", "s => Array.from(s.options).map(o => [o.value, o.text])")
    found = [value for value, text in labels if text.startswith(starts)]
    if not found:
        raise SystemExit(f"#{select_id}: no option starts with {starts!r}; options: {[t for _, t in labels]}")
    return found[0]


def shoot(run: Path, benchmark: str, compare: tuple[str, str], out: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    shots = [out.with_name(out.name + ".png"), out.with_name(out.name + "-side-by-side.png")]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((run / "report.html").resolve().as_uri())
        page.wait_for_selector("#list article.sample")
        page.select_option("#f-bench", _option(page, "f-bench", benchmark + " "))
        page.wait_for_function("() => document.getElementById('list-count').textContent.length > 0")
        page.screenshot(path=str(shots[0]), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": HEIGHT})
        page.click("#tab-compare")
        page.select_option("#cmp-a", _option(page, "cmp-a", compare[0]))
        page.select_option("#cmp-b", _option(page, "cmp-b", compare[1]))
        box = page.locator("#compare-view").bounding_box()  # relative to the viewport, the clip to the page
        box["y"] += page.evaluate("() => window.scrollY")
        page.screenshot(path=str(shots[1]), full_page=True,
                        clip={"x": box["x"], "y": box["y"], "width": box["width"], "height": min(box["height"], HEIGHT)})
        browser.close()
    if errors:
        raise SystemExit(f"{run / 'report.html'}: the page logged errors: {errors}")
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="runs/<experiment> with a report.html")
    parser.add_argument("--benchmark", required=True)
    parser.add_argument("--compare", nargs=2, required=True, metavar=("ROW_A", "ROW_B"),
                        help="the evaluations to set side by side (the start of their titles)")
    parser.add_argument("--out", type=Path, required=True, help="path prefix of the PNG files")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for shot in shoot(args.run, args.benchmark, tuple(args.compare), args.out, args.chromium):
        print(shot)


if __name__ == "__main__":
    main()
