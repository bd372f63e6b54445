"""The sample browser's data: one script file per benchmark beside report.html, and thumbnails.

``report_files/samples-<benchmark>-<digest>.js`` holds every evaluation of the benchmark (each a
table row and a judge) and its samples: prompt, response, verdict label, the judge's raw output,
the dataset's category, the image's thumbnail. report.html loads one when its benchmark is
chosen, by adding a ``<script>`` element: a page opened from the file system may not fetch()
files beside it, but it may run scripts from them. The file calls ``reproReportLoaded(<JSON>)``;
JSON is a JavaScript literal, and every string stays data (the page renders it as text).

Thumbnails (``report_files/thumbs/<image sha256>.jpg``, at most ``THUMB`` pixels a side) are
written once per image digest; the image is read from the evaluation's dataset and must hash to
the digest its samples record. File names carry their content digest, so a report.html never
reads another rendering's data; files no report.html names are removed after it is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from repro.errors import InputError
from repro.report.samples import Evaluation, benchmark_order, evaluations, read_samples, verdict_label

FILES = "report_files"
THUMBS = "thumbs"
THUMB = 256  # pixels, the longer side
CALLBACK = "reproReportLoaded"


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------ images
def _images(manifest: dict, runs_root: Path, ev: Evaluation) -> dict[str, Path]:
    """Sample id -> image file, from the dataset the evaluation read (its ``data`` input)."""
    from repro.data import open_dataset

    data_stage = manifest["stages"][ev.stage]["inputs"].get("data")
    if data_stage is None:
        return {}
    try:
        split = (json.loads((ev.output / "protocol.json").read_text()).get("dataset") or {}).get("split")
    except FileNotFoundError:
        split = None
    records = open_dataset(runs_root / manifest["stages"][data_stage]["output"]).records(split)
    return {r.id: Path(r.image) for r in records if r.image is not None}


def thumbnail(source: Path, digest: str, folder: Path) -> str:
    """Write ``folder/<digest>.jpg`` unless it exists; returns its name."""
    name = f"{digest}.jpg"
    target = folder / name
    if target.exists():
        return name
    data = source.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise InputError(f"{source}: image differs from the one the samples were generated for "
                         f"(sha256 {digest[:16]}…); run `repro verify`")
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        img.thumbnail((THUMB, THUMB))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
    write_atomic(target, buf.getvalue())
    return name


# ------------------------------------------------------------------ samples
def _detail(sample: dict[str, Any]) -> str:
    """What else the verdict says: the judge's fields, or the extracted answer."""
    verdict = sample.get("verdict")
    if isinstance(verdict, dict):
        shown = {k: v for k, v in verdict.items() if v not in (None, "") and k != "refusal_calls"}
        return json.dumps(shown, sort_keys=True)
    if "answer" in sample:
        return f"answer {sample.get('answer')}; extracted {sample.get('extracted')} ({sample.get('extract_method')})"
    return ""


class _Strings:
    """Prompts repeat across rows: each is stored once per benchmark file."""

    def __init__(self):
        self.items: list[str] = []
        self.index: dict[str, int] = {}

    def add(self, text: str) -> int:
        if text not in self.index:
            self.index[text] = len(self.items)
            self.items.append(text)
        return self.index[text]


def benchmark_data(manifest: dict, runs_root: Path, evals: list[Evaluation], thumbs: Path) -> dict[str, Any]:
    strings = _Strings()
    out: list[dict[str, Any]] = []
    images: dict[str, str] = {}  # sha256 -> thumbnail name
    for i, ev in enumerate(evals):
        samples = read_samples(ev.output)
        paths = _images(manifest, runs_root, ev) if any(s.get("image_sha256") for s in samples) else {}
        for s in samples:
            digest = s.get("image_sha256")
            if digest and digest not in images:
                if s["id"] not in paths:
                    raise InputError(f"{ev.output}/samples.jsonl: sample {s['id']!r}: no image with that id "
                                     f"in the dataset of stage {ev.stage!r}")
                images[digest] = thumbnail(paths[s["id"]], digest, thumbs)
            prompt = s.get("prompt", "")
            out.append({"e": i, "id": s["id"], "c": str(s.get("category") or ""), "v": verdict_label(s),
                        "h": s.get("harmful"), "p": strings.add(prompt),
                        "q": strings.add(s["judge_prompt"]) if s.get("judge_prompt") else None,
                        "r": s.get("response", ""), "j": str(s.get("judge_raw") or ""),
                        "k": s.get("keyword_match") or "", "d": _detail(s),
                        "i": images.get(digest) if digest else None})
    return {"benchmark": evals[0].benchmark, "strings": strings.items, "samples": out,
            "evals": [{"stage": ev.stage, "row": ev.row, "judge": ev.judge, "model": ev.model,
                       "title": ev.title, "source": ev.source} for ev in evals]}


def write_browser_data(exp_dir: Path, manifest: dict) -> tuple[list[dict[str, Any]], set[str]]:
    """Write every benchmark's data file and thumbnails. Returns the index report.html embeds
    (``[{benchmark, file, n, evals}]``, in run order) and the thumbnails it uses."""
    runs_root = exp_dir.parent
    folder = exp_dir / FILES
    (folder / THUMBS).mkdir(parents=True, exist_ok=True)
    by_bench: dict[str, list[Evaluation]] = {name: [] for name in benchmark_order(manifest)}
    for ev in evaluations(manifest, runs_root):
        by_bench.setdefault(ev.benchmark, []).append(ev)
    index, used = [], set()
    for bench, evals in ((b, e) for b, e in by_bench.items() if e):
        data = benchmark_data(manifest, runs_root, evals, folder / THUMBS)
        used.update(s["i"] for s in data["samples"] if s["i"])
        text = f"{CALLBACK}({json.dumps(data, sort_keys=True, ensure_ascii=True)});\n".encode()
        name = f"samples-{bench}-{hashlib.sha256(text).hexdigest()[:16]}.js"
        if not (folder / name).exists():
            write_atomic(folder / name, text)
        index.append({"benchmark": bench, "file": f"{FILES}/{name}", "n": len(data["samples"]),
                      "evals": [ev.title for ev in evals]})
    return index, used


def prune(exp_dir: Path, index: list[dict[str, Any]], used: set[str]) -> None:
    """Remove the data files and thumbnails the report.html just written does not use."""
    folder = exp_dir / FILES
    keep = {Path(entry["file"]).name for entry in index}
    for path in folder.glob("samples-*.js"):
        if path.name not in keep:
            path.unlink(missing_ok=True)
    for path in (folder / THUMBS).glob("*.jpg"):
        if path.name not in used:
            path.unlink(missing_ok=True)
