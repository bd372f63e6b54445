"""``report.md`` of a finished run, rendered from its manifest (``repro report EXPERIMENT``).

Why after the run and not as a stage: the hardware/software description, the stage keys and the
output digests live in the manifest, which is written after the last stage; a stage cannot read
the manifest of the run it is part of. A stage that copied machine facts from its inputs'
statements would also break the stage contract: its output would depend on which machine first
built each input, not only on its key. So tables and figures are stages (hashed, verified), and
report.md is a view of ``manifest.json``: the same manifest gives the same bytes, and the report
names the manifest digest it was rendered from. Figures are embedded by their path under
``<experiment>/stages/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from repro.errors import InputError
from repro.report.browser import write_atomic
from repro.report.references import load_references, reference_for
from repro.stages import KINDS

REPORT = "report.md"
SYSTEM_FIELDS = ("accelerator_model_name", "accelerators_per_node", "accelerator_memory_capacity",
                 "host_processor_model_name", "host_processor_core_count", "host_memory_capacity",
                 "number_of_nodes", "operating_system", "framework", "python")
VALUE_WIDTH = 140


def read_manifest(exp_dir: Path) -> dict:
    """The manifest of ``runs/<experiment>`` (or the manifest file ``exp_dir`` names)."""
    path = exp_dir / "manifest.json" if exp_dir.is_dir() or not exp_dir.suffix else exp_dir
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing (run the experiment first: repro run {path.parent.name})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON ({exc.msg})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("stages"), dict):
        raise InputError(f"{path}: not an experiment manifest (no 'stages')")
    return manifest


def _short(value, width: int = VALUE_WIDTH) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _result_stages(manifest: dict) -> list[str]:
    names = []
    for r in manifest.get("result_stages") or []:
        names += [s for s in manifest["stages"] if s == r or s.startswith(f"{r}@")]
    return names


def results_section(manifest: dict, runs_root: Path) -> list[str]:
    lines = ["## Results", ""]
    for name in _result_stages(manifest):
        entry = manifest["stages"][name]
        kind = KINDS.get(entry["kind"])  # what a result contributes: (text file, images)
        text_file, images = kind.report if kind else (None, ())
        out = runs_root / entry["output"]
        lines.append(f"### `{name}` ({entry['kind']})")
        lines.append("")
        if text_file and (out / text_file).is_file():
            body = (out / text_file).read_text(encoding="utf-8").strip().splitlines()
            lines += [ln.replace("### ", "#### ", 1) if ln.startswith("### ") else ln for ln in body] + [""]
        files = sorted(p.name for p in out.iterdir() if p.suffix in (".csv", ".tex", ".json") and p.name != "metrics.json") if out.is_dir() else []
        if files:
            lines += ["Files: " + ", ".join(f"[{f}](stages/{name}/{f})" for f in files), ""]
        for image in images:
            if (out / image).is_file():
                lines += [f"![{name}: {image}](stages/{name}/{image})", ""]
    return lines


def reference_rows(manifest: dict) -> list[dict]:
    """Each result value that has a paper reference: ours, the paper's, the delta, the verdict."""
    refs = load_references()
    rows = []
    for stage in _result_stages(manifest):
        for metric, value in sorted(((manifest["results"].get(stage) or {}).get("metrics") or {}).items()):
            ref = reference_for(refs, manifest["experiment"], stage, metric)
            if ref is None or not isinstance(value, (int, float)):
                continue
            delta = value - ref["value"]
            src = ref["source"]
            rows.append({"stage": stage, "metric": metric, "ours": value, "paper": ref["value"], "delta": delta,
                         "tolerance": ref["tolerance"], "verdict": "within" if abs(delta) <= ref["tolerance"] else "OUTSIDE",
                         "source": f"{src['paper']} table {src['table']}, {src['row']}, {src['column']}"})
    return rows


NO_REFERENCE = ("No reference: no value of this experiment has a reference with a source in "
                "`repro/report/references.yaml` (the paper's tables could not be read; see "
                "docs/experiments.md). No number here is compared with the paper.")


def references_section(manifest: dict) -> list[str]:
    lines = ["## Reference values", ""]
    rows = [f"| {r['stage']} | {r['metric']} | {r['ours']:.4f} | {r['paper']:.4f} | {r['delta']:+.4f} | "
            f"±{r['tolerance']} | {r['verdict']} | {r['source']} |" for r in reference_rows(manifest)]
    if not rows:
        return lines + [NO_REFERENCE, ""]
    return lines + ["| stage | metric | ours | paper | delta | tolerance | verdict | source |",
                    "|---|---|---|---|---|---|---|---|", *rows, ""]


def coverage_rows(manifest: dict) -> list[dict]:
    """Per evaluation: benchmark, model, evaluated / total items, partial or not."""
    rows = []
    for name, entry in manifest["stages"].items():
        res = manifest["results"].get(name) or {}
        if entry["kind"].startswith("evaluate/") and "n" in res:
            rows.append({"stage": name, "benchmark": res.get("benchmark"), "model": entry["inputs"].get("model", "-"),
                         "n": res["n"], "n_total": res.get("n_total"), "partial": bool(res.get("partial"))})
    return rows


def coverage_summary(rows: list[dict]) -> str:
    partial = sum(r["partial"] for r in rows)
    return (f"{partial} evaluation(s) are partial (`--limit`): not a reproduction." if partial
            else "Every evaluation covers its whole dataset.")


def coverage_section(manifest: dict) -> list[str]:
    lines = ["## Coverage", "", "| stage | benchmark | model | evaluated / total | |", "|---|---|---|---|---|"]
    rows = coverage_rows(manifest)
    lines += [f"| {r['stage']} | {r['benchmark']} | {r['model']} | {r['n']} / {r['n_total']} | "
              f"{'**partial**' if r['partial'] else 'complete'} |" for r in rows]
    return lines + ["", coverage_summary(rows), ""]


def system_rows(manifest: dict) -> list[tuple[str, object]]:
    """(field, value) of the system description: the headline fields, library versions, software."""
    system = manifest.get("system") or {}
    rows = [(k, system.get(k)) for k in SYSTEM_FIELDS if k in system]
    rows += [(f"library_versions.{k}", v) for k, v in sorted((system.get("library_versions") or {}).items())]
    rows += list(sorted((system.get("other_software_stack") or {}).items()))
    return rows


def system_section(manifest: dict) -> list[str]:
    lines = ["## Hardware and software", "", f"System description digest: `{manifest.get('system_sha256')}` "
             "(field names of the MLPerf system description).", "", "| field | value |", "|---|---|"]
    return lines + [f"| {k} | {_short(v)} |" for k, v in system_rows(manifest)] + [""]


def protocol_rows(manifest: dict) -> list[tuple[str, object, list[str]]]:
    """(choice, value, stages that recorded it), one row per distinct value of each choice."""
    seen: dict[str, dict[str, tuple[object, list[str]]]] = {}
    for name, entry in manifest["stages"].items():
        for choice, value in (entry.get("protocol_choices") or {}).items():
            seen.setdefault(choice, {}).setdefault(_short(value), (value, []))[1].append(name)
    return [(choice, value, stages) for choice in sorted(seen)
            for _, (value, stages) in sorted(seen[choice].items())]


def protocol_section(manifest: dict) -> list[str]:
    lines = ["## Protocol choices", "", "Everything the paper does not state, as each stage recorded it "
             "(docs/protocol-choices.md).", "", "| choice | value | stages |", "|---|---|---|"]
    for choice, value, stages in protocol_rows(manifest):
        shown = ", ".join(stages[:4]) + (f" (+{len(stages) - 4})" if len(stages) > 4 else "")
        lines.append(f"| {choice} | {_short(value)} | {shown} |")
    return lines + [""]


def digests_section(manifest: dict) -> list[str]:
    lines = ["## Digests", "", f"- manifest: `{manifest.get('manifest_sha256')}`",
             f"- manifest.lock: `{(manifest.get('lock') or {}).get('sha256')}`",
             "- per stage: cache key and output directory digest (dirHash); `repro verify` re-checks them.",
             "", "| stage | kind | key | output |", "|---|---|---|---|"]
    for name, entry in manifest["stages"].items():
        lines.append(f"| {name} | {entry['kind']} | `{entry['key'][:16]}` | `{str(entry['output_digest'])[:16]}` |")
    return lines + [""]


def render_report(manifest: dict, runs_root: Path) -> str:
    decl = manifest.get("declaration") or {}
    paper = decl.get("paper") or {}
    head = [f"# {manifest['experiment']}: {decl.get('description', '')}", "",
            f"- paper artefact: {_short(paper.get('artefact', 'not mapped'))} (mapping: docs/experiments.md)",
            f"- profile: {manifest.get('profile')}; stages: {len(manifest['stages'])}",
            f"- rendered from `manifest.json` (sha256 `{manifest.get('manifest_sha256')}`) by `repro report`",
            "- every sample (prompt, response, verdict, the judge's output) in a browser: [report.html](report.html)", ""]
    parts = [head, results_section(manifest, runs_root), references_section(manifest),
             coverage_section(manifest), system_section(manifest), protocol_section(manifest),
             digests_section(manifest)]
    return "\n".join(line for part in parts for line in part).rstrip("\n") + "\n"


def write_report(exp_dir: Path) -> Path:
    """Render ``exp_dir/manifest.json`` into ``exp_dir/report.md``; returns its path."""
    exp_dir = Path(exp_dir)
    manifest = read_manifest(exp_dir)
    path = exp_dir / REPORT
    write_atomic(path, render_report(manifest, exp_dir.parent).encode("utf-8"))
    return path
