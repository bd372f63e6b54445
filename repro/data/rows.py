"""Row readers and field checks shared by every loader.

Rows are numbered from 1 in error messages (the first record of a JSON list, the first line of
a JSONL file, the first data line after a CSV/TSV header, the first row of a parquet file), so
``<file>: row <n>: field '<f>': <problem>`` points at what an editor or ``sed -n`` shows.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from repro.errors import InputError

Row = dict[str, Any]
# The root of the dataset being loaded (Dataset.records sets it): every annotation file a reader
# opens must resolve inside it, as every image path must (repro/data/paths.py).
_ROOT: contextvars.ContextVar[Path | None] = contextvars.ContextVar("dataset_root", default=None)


@contextlib.contextmanager
def dataset_root(root: Path):
    """Readers inside this block refuse files that resolve (through a symlink) outside ``root``."""
    token = _ROOT.set(Path(root).resolve())
    try:
        yield
    finally:
        _ROOT.reset(token)


def _inside_root(path: Path) -> Path:
    root = _ROOT.get()
    if root is not None and not Path(path).resolve().is_relative_to(root):
        raise InputError(f"{path}: resolves outside the dataset root {root} (symlink?); refused")
    return path


def row_error(file: Path, n: int, field: str, problem: str) -> InputError:
    return InputError(f"{file}: row {n}: field '{field}': {problem}")


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def need(row: Row, key: str, kind: type | tuple, file: Path, n: int, *,
         optional: bool = False, nonempty: bool = False) -> Any:
    """``row[key]`` checked against ``kind``; bool never passes as int (JSON true is not 1)."""
    if key not in row or row[key] is None:
        if optional:
            return None
        raise row_error(file, n, key, "missing")
    value = row[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise row_error(file, n, key, f"expected {_names(kinds)}, got {_describe(value)}")
    if not isinstance(value, kinds):
        raise row_error(file, n, key, f"expected {_names(kinds)}, got {_describe(value)}")
    if nonempty and isinstance(value, (str, list, dict)) and not value:
        raise row_error(file, n, key, "empty")
    return value


def _names(kinds: tuple) -> str:
    return " or ".join({"str": "string", "int": "integer", "bool": "boolean", "list": "list",
                        "dict": "object", "bytes": "bytes"}.get(k.__name__, k.__name__) for k in kinds)


def as_int(row: Row, key: str, file: Path, n: int) -> int:
    """An integer field that may arrive as text (CSV/TSV cells)."""
    value = need(row, key, (int, str), file, n)
    if isinstance(value, int):
        return value
    try:
        return int(value.strip())
    except ValueError:
        raise row_error(file, n, key, f"expected an integer, got {value!r}") from None


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    return _inside_root(path)


def read_json_list(path: Path) -> Iterator[tuple[int, Row]]:
    data = _load_json(require_file(path))
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    for n, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise InputError(f"{path}: row {n}: expected an object, got {_describe(row)}")
        yield n, row


def read_json_object(path: Path) -> dict:
    """A JSON file holding one object (MM-SafetyBench's questions, SEED-Bench.json)."""
    data = _load_json(require_file(path))
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{path}: invalid JSON (nested too deeply)") from None


def read_jsonl(path: Path) -> Iterator[tuple[int, Row]]:
    # bytes in, one row decoded at a time: a row that is not UTF-8 is named (text mode would
    # fail somewhere inside a buffered read, with no row and a traceback)
    with require_file(path).open("rb") as handle:
        for n, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}: row {n}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: row {n}: invalid JSON ({exc.msg})") from None
            except RecursionError:
                raise InputError(f"{path}: row {n}: invalid JSON (nested too deeply)") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}: row {n}: expected an object, got {_describe(row)}")
            yield n, row


def read_table(path: Path, delimiter: str, columns: tuple[str, ...]) -> Iterator[tuple[int, Row]]:
    """CSV/TSV with a header; cells stay text (empty cell = ""), never NaN as pandas would make."""
    csv.field_size_limit(sys.maxsize)  # base64 image cells are far above the 128 KiB default
    with require_file(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: empty file, expected a header row")
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(f"{path}: header: missing column(s) {', '.join(missing)}; found {', '.join(header)}")
        for n, cells in enumerate(reader, 1):
            if len(cells) != len(header):
                raise InputError(f"{path}: row {n}: {len(cells)} cells, header has {len(header)}")
            yield n, dict(zip(header, cells))


def read_parquet(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, Row]]:
    """Parquet rows in batches (MME's largest shard is 695 MB); columns are checked up front."""
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(require_file(path))
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError variants for non-parquet files
        raise InputError(f"{path}: not a readable parquet file ({exc.__class__.__name__}: {exc})") from None
    names = handle.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputError(f"{path}: schema: missing column(s) {', '.join(missing)}; found {', '.join(names)}")
    n = 0
    for batch in handle.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            n += 1
            yield n, row


def glob_files(root: Path, pattern: str, what: str) -> list[Path]:
    files = sorted(root.glob(pattern))
    if not files:
        raise InputError(f"{root}: no {what} files matching {pattern!r}")
    return [_inside_root(f) for f in files]
