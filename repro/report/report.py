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
from repro.report.references import load_references, reference_for
from repro.stages import KINDS

REPORT = "report.md"
SYSTEM_FIELDS = ("accelerator_model_name", "accelerators_per_node", "accelerator_memory_capacity",
                 "host_processor_model_name", "host_processor_core_count", "host_memory_capacity",
                 "number_of_nodes", "operating_system", "framework", "python")
VALUE_WIDTH = 140


def read_manifest(exp_dir: Path) -> dict:
    path = exp_dir / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing (run the experiment first: repro run {exp_dir.name})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON ({exc.msg})") from None


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


def references_section(manifest: dict) -> list[str]:
    refs = load_references()
    lines = ["## Reference values", ""]
    rows = []
    for stage in _result_stages(manifest):
        for metric, value in sorted(((manifest["results"].get(stage) or {}).get("metrics") or {}).items()):
            ref = reference_for(refs, manifest["experiment"], stage, metric)
            if ref is None or not isinstance(value, (int, float)):
                continue
            delta = value - ref["value"]
            verdict = "within" if abs(delta) <= ref["tolerance"] else "OUTSIDE"
            src = ref["source"]
            rows.append(f"| {stage} | {metric} | {value:.4f} | {ref['value']:.4f} | {delta:+.4f} | "
                        f"±{ref['tolerance']} | {verdict} | {src['paper']} table {src['table']}, {src['row']}, {src['column']} |")
    if not rows:
        return lines + ["No reference: no value of this experiment has a reference with a source in "
                        "`repro/report/references.yaml` (the paper's tables could not be read; see "
                        "docs/experiments.md). No number here is compared with the paper.", ""]
    return lines + ["| stage | metric | ours | paper | delta | tolerance | verdict | source |",
                    "|---|---|---|---|---|---|---|---|", *rows, ""]


def coverage_section(manifest: dict) -> list[str]:
    lines = ["## Coverage", "", "| stage | benchmark | model | evaluated / total | |", "|---|---|---|---|---|"]
    partial = 0
    for name, entry in manifest["stages"].items():
        res = manifest["results"].get(name) or {}
        if not entry["kind"].startswith("evaluate/") or "n" not in res:
            continue
        flag = "**partial**" if res.get("partial") else "complete"
        partial += bool(res.get("partial"))
        lines.append(f"| {name} | {res.get('benchmark')} | {entry['inputs'].get('model', '-')} | "
                     f"{res['n']} / {res.get('n_total')} | {flag} |")
    summary = (f"{partial} evaluation(s) are partial (`--limit`): not a reproduction." if partial
               else "Every evaluation covers its whole dataset.")
    return lines + ["", summary, ""]


def system_section(manifest: dict) -> list[str]:
    system = manifest.get("system") or {}
    lines = ["## Hardware and software", "", f"System description digest: `{manifest.get('system_sha256')}` "
             "(field names of the MLPerf system description).", "", "| field | value |", "|---|---|"]
    lines += [f"| {k} | {_short(system.get(k))} |" for k in SYSTEM_FIELDS if k in system]
    for k, v in sorted((system.get("library_versions") or {}).items()):
        lines.append(f"| library_versions.{k} | {_short(v)} |")
    for k, v in sorted((system.get("other_software_stack") or {}).items()):
        lines.append(f"| {k} | {_short(v)} |")
    return lines + [""]


def protocol_section(manifest: dict) -> list[str]:
    seen: dict[str, dict[str, list[str]]] = {}
    for name, entry in manifest["stages"].items():
        for choice, value in (entry.get("protocol_choices") or {}).items():
            seen.setdefault(choice, {}).setdefault(_short(value), []).append(name)
    lines = ["## Protocol choices", "", "Everything the paper does not state, as each stage recorded it "
             "(docs/protocol-choices.md).", "", "| choice | value | stages |", "|---|---|---|"]
    for choice in sorted(seen):
        for value, stages in sorted(seen[choice].items()):
            shown = ", ".join(stages[:4]) + (f" (+{len(stages) - 4})" if len(stages) > 4 else "")
            lines.append(f"| {choice} | {value} | {shown} |")
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
            f"- rendered from `manifest.json` (sha256 `{manifest.get('manifest_sha256')}`) by `repro report`", ""]
    parts = [head, results_section(manifest, runs_root), references_section(manifest),
             coverage_section(manifest), system_section(manifest), protocol_section(manifest),
             digests_section(manifest)]
    return "\n".join(line for part in parts for line in part).rstrip("\n") + "\n"


def write_report(exp_dir: Path) -> Path:
    """Render ``exp_dir/manifest.json`` into ``exp_dir/report.md``; returns its path."""
    exp_dir = Path(exp_dir)
    manifest = read_manifest(exp_dir)
    path = exp_dir / REPORT
    path.write_text(render_report(manifest, exp_dir.parent), encoding="utf-8")
    return path
