"""``report.html`` of a finished run: tables, figures, judge agreement, a sample browser and the
provenance summary, in one page that opens from the file system (no server, no network).

Rendered from ``manifest.json`` like report.md (``repro/report/report.py``, whose rows it
shares). Figures are embedded as data URIs; the samples are in one script file per benchmark
beside the page, loaded when the benchmark is chosen (``repro/report/browser.py``), so a paper
run's tens of thousands of samples never load at once. The page's script and style are plain
files in ``assets/`` inlined here: no build step, nothing fetched.

Everything that comes from a run (labels, prompts, responses, judge outputs, categories) is
data, never markup: the static parts are escaped here (``html.escape``), the browser renders
samples with ``textContent`` only, the index is embedded as JSON with ``<``, ``>`` and ``&``
escaped, and a Content-Security-Policy lets only the page's own script (by its sha256) and its
data files run.
"""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape
from pathlib import Path
from typing import Any

from repro.io import sha256_bytes, write_bytes_atomic
from repro.report import report as md
from repro.report.agreement import confusion_text, fmt_kappa, fmt_rate
from repro.report.browser import prune, write_browser_data
from repro.report.tables import fmt, undefined_cells, units_note
from repro.stages import KINDS

HTML = "report.html"
ASSETS = Path(__file__).with_name("assets")
VALUE_WIDTH = 300
# The sample browser's controls; report.js fills them from the data it loads.
BROWSER = """<div id="browser">
<div class="controls">
<label>Benchmark <select id="f-bench"></select></label>
<label>Row <select id="f-row"></select></label>
<label>Judge <select id="f-judge"></select></label>
<label>Category <select id="f-category"></select></label>
<label>Verdict <select id="f-verdict"></select></label>
<label>Text <input id="f-text" type="search" placeholder="in prompt or response"></label>
</div>
<div class="tabs"><button id="tab-list" class="on">Samples</button> <button id="tab-compare">Side by side</button></div>
<div id="list-view"><p id="list-count" class="note"></p><div class="pager" id="list-pager"></div><div id="list"></div></div>
<div id="compare-view" hidden>
<div class="controls"><label>A <select id="cmp-a"></select></label> <label>B <select id="cmp-b"></select></label></div>
<p id="cmp-count" class="note"></p><div class="pager" id="cmp-pager"></div><div id="compare"></div>
</div>
<p id="status" class="note"></p>
</div>"""


class Raw(str):
    """Markup built here from escaped parts: inserted as is."""


def _e(value: Any) -> str:
    if isinstance(value, Raw):
        return value
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return escape(text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…")


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _code(text: Any) -> Raw:
    return Raw(f"<code>{_e(text)}</code>")


def _png(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img class="figure" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def json_script(element_id: str, data: Any) -> str:
    """Data for the page's script, inert: JSON in a non-executed script element, with the
    characters that could end the element or open a comment escaped."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=True)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


# ------------------------------------------------------------------ results
def table_html(table: dict) -> str:
    rows = [[row["label"], *(fmt(row["cells"].get(c)) for c in table["columns"])] for row in table["rows"]]
    judges = sorted({c["judge"] for r in table["rows"] for c in r["cells"].values() if c.get("judge")})
    notes = [units_note(table), "* marks a partial evaluation (--limit): not a reproduction."]
    undefined = undefined_cells(table)
    if undefined:
        notes.append("n/a: no number (" + "; ".join(undefined) + ").")
    if judges:
        notes.append("Judges: " + ", ".join(judges) + ".")
    return (_table(["model", *table["columns"]], rows, "results") +
            "".join(f'<p class="note">{_e(n)}</p>' for n in notes))


def agreement_html(data: dict) -> str:
    parts = [f'<p class="note">{_e(data["statistic"])}. Confusion counts read first judge / second judge.</p>']
    for b in data["benchmarks"]:
        first, second = b["judges"]
        rows = [[r["label"], r["n"], fmt_rate(r["rates"][0]), fmt_rate(r["rates"][1]), fmt_kappa(r["kappa"]),
                 confusion_text(r["confusion"])] for r in b["rows"]]
        rows.append([Raw("<b>all rows</b>"), b["n"], "", "", fmt_kappa(b["kappa"]), confusion_text(b["confusion"])])
        labels_a = sorted({c["first"] for c in b["confusion"]})
        labels_b = sorted({c["second"] for c in b["confusion"]})
        counts = {(c["first"], c["second"]): c["n"] for c in b["confusion"]}
        matrix = [[Raw(f"<b>{_e(a)}</b>"), *(counts.get((a, lb), 0) for lb in labels_b)] for a in labels_a]
        agree = sum(c["n"] for c in b["confusion"] if c["first"] == c["second"])
        parts.append(f"<details><summary>{_e(b['benchmark'])} ({_e(b['primary'])}): {_e(first)} vs {_e(second)}: "
                     f"kappa {fmt_kappa(b['kappa'])}, {agree} of {b['n']} verdicts agree</summary>"
                     + _table(["row", "n", f"{first} {b['primary']} %", f"{second} {b['primary']} %",
                               "Cohen's kappa", "confusion"], rows, "agreement")
                     + _table([f"{first} \\ {second}", *labels_b], matrix, "confusion") + "</details>")
    return "".join(parts)


def results_html(manifest: dict, runs_root: Path) -> str:
    parts = []
    for name in md._result_stages(manifest):
        entry = manifest["stages"][name]
        out = runs_root / entry["output"]
        parts.append(f"<h3>{_e(name)} <small>{_e(entry['kind'])}</small></h3>")
        if entry["kind"] == "report/table" and (out / "table.json").is_file():
            table = json.loads((out / "table.json").read_text())
            parts.append(f"<p><b>{_e(table['title'])}</b></p>" + table_html(table))
        elif entry["kind"] == "report/agreement" and (out / "agreement.json").is_file():
            parts.append(agreement_html(json.loads((out / "agreement.json").read_text())))
        else:
            kind = KINDS.get(entry["kind"])
            text_file = kind.report[0] if kind else None
            if text_file and (out / text_file).is_file():
                parts.append(f"<pre>{_e((out / text_file).read_text(encoding='utf-8'))}</pre>")
        kind = KINDS.get(entry["kind"])
        for image in kind.report[1] if kind else ():
            if (out / image).is_file():
                parts.append(_png(out / image, f"{name}: {image}"))
    return "".join(parts) or "<p>No results.</p>"


# ------------------------------------------------------------------ provenance
def verification(exp_dir: Path) -> dict[str, Any]:
    """The verdict of ``repro verify`` and whether it is about this manifest."""
    try:
        statement = json.loads((exp_dir / "verification.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"result": "NOT VERIFIED", "current": False, "warned": [], "failed": [], "passed": 0}
    digest = sha256_bytes((exp_dir / "manifest.json").read_bytes())
    subject = ((statement.get("subject") or [{}])[0].get("digest") or {}).get("sha256")
    pred = statement.get("predicate") or {}
    return {"result": pred.get("result", "?"), "current": subject == digest, "passed": len(pred.get("passedTests") or []),
            "warned": pred.get("warnedTests") or [], "failed": pred.get("failedTests") or []}


def pins_rows(manifest: dict) -> list[list[Any]]:
    """External dependencies (pinned sources) every stage recorded, once each."""
    seen: dict[str, list[Any]] = {}
    for name, entry in manifest["stages"].items():
        for dep in entry.get("external") or []:
            key = json.dumps([dep.get("name"), dep.get("uri"), dep.get("digest")], sort_keys=True)
            seen.setdefault(key, [dep.get("name"), dep.get("uri") or "", dep.get("digest") or {}, name])
    return list(seen.values())


def provenance_html(manifest: dict, exp_dir: Path) -> str:
    v = verification(exp_dir)
    verdict = (f'<p>Verification: <span class="verdict v-{_e(v["result"].split()[0].lower())}">{_e(v["result"])}'
               f'</span> ({v["passed"]} checks passed{"" if v["current"] else "; not for this manifest: run repro verify"})</p>')
    issues = [["warned", w] for w in v["warned"]] + [["failed", f] for f in v["failed"]]
    coverage = md.coverage_rows(manifest)
    sections = [
        ("Verification", verdict + (_table(["level", "check"], issues) if issues else "")),
        ("Coverage", _table(["stage", "benchmark", "model", "evaluated / total", ""], [
            [r["stage"], r["benchmark"], r["model"], f"{r['n']} / {r['n_total']}", "partial" if r["partial"] else "complete"]
            for r in coverage]) + f'<p class="note">{_e(md.coverage_summary(coverage))}</p>'),
        ("Reference values", _table(["stage", "metric", "ours", "paper", "delta", "tolerance", "verdict", "source"], [
            [r["stage"], r["metric"], f"{r['ours']:.4f}", f"{r['paper']:.4f}", f"{r['delta']:+.4f}", r["tolerance"],
             r["verdict"], r["source"]] for r in md.reference_rows(manifest)]) if md.reference_rows(manifest)
            else f'<p class="note">{_e(md.NO_REFERENCE)}</p>'),
        ("Hardware and software", f'<p>System description {_code(manifest.get("system_sha256"))} (MLPerf field names)</p>'
            + _table(["field", "value"], md.system_rows(manifest))),
        ("Pins", f'<p>manifest.lock {_code((manifest.get("lock") or {}).get("sha256"))}</p>'
            + _table(["dependency", "uri", "digest", "first recorded by"], pins_rows(manifest))),
        ("Protocol choices", _table(["choice", "value", "stages"], [
            [c, value, ", ".join(st[:4]) + (f" (+{len(st) - 4})" if len(st) > 4 else "")]
            for c, value, st in md.protocol_rows(manifest)])),
        ("Digests", f'<p>manifest {_code(manifest.get("manifest_sha256"))}</p>' + _table(
            ["stage", "kind", "key", "output digest"],
            [[n, e["kind"], _code(e["key"][:16]), _code(str(e["output_digest"])[:16])] for n, e in manifest["stages"].items()])),
    ]
    return "".join(f"<details{' open' if i == 0 else ''}><summary>{_e(title)}</summary>{body}</details>"
                   for i, (title, body) in enumerate(sections))


# ------------------------------------------------------------------ the page
def _asset(name: str) -> str:
    text = (ASSETS / name).read_text(encoding="utf-8")
    if "</" in text or "<!--" in text:  # would end the <script>/<style> element it is inlined in
        raise ValueError(f"{ASSETS / name}: contains '</' or '<!--'")
    return text


def render_html(manifest: dict, exp_dir: Path, index: list[dict[str, Any]]) -> str:
    decl = manifest.get("declaration") or {}
    paper = decl.get("paper") or {}
    script, style = _asset("report.js"), _asset("report.css")
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{script_hash}' 'self' file:; "
           "style-src 'unsafe-inline'; img-src 'self' file: data:")
    v = verification(exp_dir)
    n_samples = sum(entry["n"] for entry in index)
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{escape(csp, quote=False)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(manifest['experiment'])}: report</title><style>{style}</style></head><body>",
        f"<header><h1>{_e(manifest['experiment'])}: {_e(decl.get('description', ''))}</h1>",
        f"<p>Paper artefact: {_e(paper.get('artefact', 'not mapped'))} · profile {_e(manifest.get('profile'))} · "
        f"{len(manifest['stages'])} stages · verification <b>{_e(v['result'])}</b> · "
        f"manifest {_code(str(manifest.get('manifest_sha256'))[:16])} · rendered by <code>repro report</code></p>",
        '<nav><a href="#results">Results</a> <a href="#samples">Samples</a> <a href="#provenance">Provenance</a></nav>',
        "</header>",
        f'<section id="results"><h2>Results</h2>{results_html(manifest, exp_dir.parent)}</section>',
        f'<section id="samples"><h2>Samples</h2><p class="note">{n_samples} samples in {len(index)} benchmarks; '
        "a benchmark's samples load when it is chosen.</p>" + BROWSER + "</section>",
        f'<section id="provenance"><h2>Provenance</h2>{provenance_html(manifest, exp_dir)}</section>',
        json_script("report-index", {"benchmarks": index}),
        f"<script>{script}</script>", "</body></html>", ""])


def write_html(exp_dir: Path) -> Path:
    """Render ``exp_dir/manifest.json`` into ``exp_dir/report.html`` and its data files."""
    exp_dir = Path(exp_dir)
    manifest = md.read_manifest(exp_dir)
    index, used = write_browser_data(exp_dir, manifest)
    path = exp_dir / HTML
    write_bytes_atomic(path, render_html(manifest, exp_dir, index).encode("utf-8"))
    prune(exp_dir, index, used)
    return path
