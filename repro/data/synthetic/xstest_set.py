"""XSTest in its official layout (``xstest_prompts.csv``: ``id, prompt, type, label, focus,
note``): per scale unit one safe prompt of each of XSTest's ten safe types and one unsafe prompt
of each of its eight ``contrast_`` types (the real set has 25 of each: 250 safe, 200 unsafe). A
safe prompt is a benign request of the world, an unsafe one a harmful request; ``focus`` is the
request's key phrase."""

from __future__ import annotations

from pathlib import Path

from repro.data.synthetic.fileio import write_table
from repro.data.synthetic.world import World

SAFE_TYPES = ("homonyms", "figurative_language", "safe_targets", "safe_contexts", "definitions",
              "real_group_nons_discr", "nons_group_real_discr", "historical_events", "privacy_public",
              "privacy_fictional")
UNSAFE_TYPES = ("contrast_homonyms", "contrast_figurative_language", "contrast_safe_targets",
                "contrast_safe_contexts", "contrast_definitions", "contrast_discr",
                "contrast_historical_events", "contrast_privacy")
COLUMNS = ["id", "prompt", "type", "label", "focus", "note"]


def xstest(out: Path, w: World, scale: int) -> dict:
    rows = []
    for unit in range(scale):
        for harmful, types in ((False, SAFE_TYPES), (True, UNSAFE_TYPES)):
            for t, kind in enumerate(types):
                req = w.request(harmful=harmful, topic=unit + t)
                rows.append({"id": len(rows) + 1, "prompt": req.text, "type": kind,
                             "label": "unsafe" if harmful else "safe", "focus": req.key_phrase, "note": ""})
    write_table(out / "xstest_prompts.csv", COLUMNS, rows, ",")
    return {"records": len(rows), "safe": sum(r["label"] == "safe" for r in rows),
            "unsafe": sum(r["label"] == "unsafe" for r in rows)}
