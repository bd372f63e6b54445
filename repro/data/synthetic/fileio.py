"""Deterministic writers for the official layouts (fixed JSON formatting, "\\n" line ends,
parquet with HF ``Image`` cells and the ``huggingface`` features metadata ``datasets`` reads)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


LAYOUTS = ("mirror", "official")


def check_layout(layout: str | None) -> str:
    """A generator's ``layout`` option (repro.data.layouts): None means the mirror, the default."""
    from repro.errors import InputError

    if layout is None:
        return "mirror"
    if layout not in LAYOUTS:
        raise InputError(f"param layout: {layout!r}; expected one of {', '.join(LAYOUTS)}")
    return layout


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, sort_keys=True, ensure_ascii=False) for r in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_table(path: Path, columns: list[str], rows: list[dict], delimiter: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])


def hf_image(data: bytes | None, name: str | None = None) -> dict | None:
    return None if data is None else {"bytes": data, "path": name}


def write_parquet(path: Path, rows: list[dict], types: dict[str, str]) -> None:
    """``types``: column -> "int" | "str" | "image" | "images" (list of images)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    arrow = {"int": pa.int64(), "str": pa.string(), "image": image, "images": pa.list_(image)}
    hf = {"int": {"dtype": "int64", "_type": "Value"}, "str": {"dtype": "string", "_type": "Value"},
          "image": {"_type": "Image"}, "images": {"feature": {"_type": "Image"}, "_type": "Sequence"}}
    schema = pa.schema([(c, arrow[t]) for c, t in types.items()], metadata={
        "huggingface": json.dumps({"info": {"features": {c: hf[t] for c, t in types.items()}}}, sort_keys=True)})
    table = pa.Table.from_pylist(rows, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")
