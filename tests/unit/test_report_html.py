"""report.html without a browser (tests/func/test_report_browser.py drives one): what the page
and its data files hold, escaping of everything a run carries, thumbnails written once per
image digest, stale data removed, a changed image refused, the script allowed by its hash."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from repro.errors import InputError
from repro.report import html
from repro.report.browser import CALLBACK, THUMB

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report_run import CLOSE, INJECT, ROW_A, make_run  # noqa: E402


@pytest.fixture
def demo(tmp_path) -> Path:
    return make_run(tmp_path)


def _data(exp: Path, bench: str) -> dict:
    (path,) = (exp / "report_files").glob(f"samples-{bench}-*.js")
    text = path.read_text()
    assert text.startswith(f"{CALLBACK}(") and text.endswith(");\n")
    return json.loads(text[len(CALLBACK) + 1:-3])


def test_page_escapes_everything_from_the_run(demo):
    page = html.write_html(demo).read_text()
    for hostile in (INJECT, CLOSE, ROW_A):  # labels, titles, protocol values, system fields
        assert hostile not in page
    assert html.escape(ROW_A) in page and html.escape(INJECT) in page
    # only the page's own two script elements: the JSON index and the browser
    assert len(re.findall(r"<script\b", page)) == 2 and page.count("</script>") == 2
    index = re.search(r'<script type="application/json" id="report-index">(.*?)</script>', page, re.S).group(1)
    assert "<" not in index and json.loads(index)["benchmarks"][0]["benchmark"] == "mm_safetybench"


def test_script_runs_by_its_hash_and_nothing_else(demo):
    page = html.write_html(demo).read_text()
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert f"script-src 'sha256-{digest}' 'self' file:;" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    assert "default-src 'none'" in csp


def test_data_files_hold_every_sample_with_its_judge_output(demo):
    html.write_html(demo)
    data = _data(demo, "mm_safetybench")
    assert [e["title"] for e in data["evals"]] == [f"{ROW_A} · exact", f"{ROW_A} · keyword_refusal", "LLM B-VL · exact"]
    assert len(data["samples"]) == 12
    first = data["samples"][0]
    assert data["strings"][first["p"]] == INJECT and first["r"] == INJECT and first["j"] == CLOSE
    assert first["c"] == INJECT and first["v"] == "unsafe" and first["h"] is True
    assert {s["v"] for s in data["samples"]} == {"unsafe", "refusal"}
    assert len(data["strings"]) < len(data["samples"])  # prompts stored once across rows
    sorry = _data(demo, "sorry_bench")
    assert [s["i"] for s in sorry["samples"]] == [None, None]


def test_thumbnails_bounded_written_once_per_digest(demo):
    from PIL import Image

    html.write_html(demo)
    thumbs = sorted((demo / "report_files" / "thumbs").glob("*.jpg"))
    data = _data(demo, "mm_safetybench")
    assert {t.name for t in thumbs} == {s["i"] for s in data["samples"]} and len(thumbs) == 4  # 12 samples, 4 images
    for t in thumbs:
        with Image.open(t) as img:
            assert max(img.size) <= THUMB
    stamps = {t.name: t.stat().st_mtime_ns for t in thumbs}
    html.write_html(demo)
    assert {t.name: t.stat().st_mtime_ns for t in thumbs} == stamps


def test_stale_data_files_are_removed(demo):
    html.write_html(demo)
    stale = demo / "report_files" / "samples-mm_safetybench-0000000000000000.js"
    stale.write_text(f"{CALLBACK}({{}});\n")
    (demo / "report_files" / "thumbs" / ("0" * 64 + ".jpg")).write_bytes(b"x")
    page = html.write_html(demo).read_text()
    assert not stale.exists() and not (demo / "report_files" / "thumbs" / ("0" * 64 + ".jpg")).exists()
    names = {p.name for p in (demo / "report_files").glob("*.js")}
    assert all(f"report_files/{n}" in page for n in names) and len(names) == 2


def test_an_image_that_changed_since_the_run_is_refused(demo):
    manifest = json.loads((demo / "manifest.json").read_text())
    samples = demo.parent / manifest["stages"]["eval~a~mm_safetybench"]["output"] / "samples.jsonl"
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    lines[0]["image_sha256"] = "f" * 64  # the dataset's image no longer hashes to what was generated for
    samples.write_text("".join(json.dumps(s) + "\n" for s in lines))
    with pytest.raises(InputError, match="image differs from the one the samples were generated for"):
        html.write_html(demo)
    assert not (demo / "report.html").exists()


def test_report_md_links_the_page_and_verdict_is_shown(demo):
    from repro.report.report import write_report

    assert "[report.html](report.html)" in write_report(demo).read_text()
    page = html.write_html(demo).read_text()
    assert "NOT VERIFIED" in page
    verdict = {"subject": [{"digest": {"sha256": hashlib.sha256((demo / "manifest.json").read_bytes()).hexdigest()}}],
               "predicate": {"result": "PASSED", "passedTests": ["a", "b"], "warnedTests": [], "failedTests": []}}
    (demo / "verification.json").write_text(json.dumps(verdict))
    page = html.write_html(demo).read_text()
    assert "verification <b>PASSED</b>" in page and "2 checks passed)" in page


def test_judge_agreement_shows_both_rates_kappa_and_confusion(demo):
    page = html.write_html(demo).read_text()
    # row A: exact says unsafe/refusal/refusal/refusal, the keyword judge refusal x 4 (1 of 4 differs)
    assert "mm_safetybench (asr): exact vs keyword_refusal: kappa 0.000, 3 of 4 verdicts agree" in page
    assert "<td>25.0</td><td>0.0</td><td>0.000</td><td>refusal/refusal 3, unsafe/refusal 1</td>" in page
    assert "<th>exact \\ keyword_refusal</th><th>refusal</th></tr></thead><tbody><tr><td><b>refusal</b></td><td>3</td>" in page
