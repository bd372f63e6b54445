"""Tensor-by-tensor reading and writing of safetensors checkpoints, without loading a model.

We parse the safetensors header ourselves (8-byte little-endian length + JSON) and read one
tensor's bytes with a seek, so a merge of two 7B checkpoints holds a few tensors in memory, not
two models and not even two shards (no mmap pages of whole shards stay resident). The writer
knows every shape and dtype up front (the inputs' headers), writes the header first and then
streams each tensor's bytes; the file appears under its final name only when complete.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from repro.errors import InputError

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit too
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")  # interpolated; everything else must match exactly


def torch_dtype(code: str):
    import torch

    return {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
            "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
            "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
            "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}[code]


@dataclass(frozen=True)
class Entry:
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute file offsets of the tensor's bytes
    end: int


class SafetensorsFile:
    """The header of one ``.safetensors`` file; reads single tensors on demand."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.metadata, self.entries = _read_header(self.path)

    def read_bytes(self, key: str, into: bytearray | None = None) -> memoryview:
        """The tensor's bytes, read into ``into`` (reused across calls: no page faults) or a new buffer."""
        entry = self.entries[key]
        size = entry.end - entry.start
        if into is None:
            into = bytearray(size)
        view = memoryview(into)[:size]
        with open(self.path, "rb", buffering=0) as f:
            f.seek(entry.start)
            got = 0
            while got < size:  # a raw read may return fewer bytes than asked
                n = f.readinto(view[got:])
                if not n:
                    raise InputError(f"{self.path}: {key}: file truncated")
                got += n
        return view

    def read_tensor(self, key: str):
        return bytes_to_tensor(self.read_bytes(key), self.entries[key])

    def map_tensor(self, key: str):
        """A read-only tensor over a pre-faulted mapping of just this tensor's pages: no read copy.

        The mapping lives as long as the tensor. Callers must not write to it (torch warns that
        the buffer is not writable; a write would fault rather than touch the file).
        """
        entry = self.entries[key]
        if entry.end == entry.start:
            return bytes_to_tensor(b"", entry)
        base = entry.start - entry.start % mmap.ALLOCATIONGRANULARITY
        with open(self.path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), entry.end - base, offset=base, prot=mmap.PROT_READ,
                               flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not writable.*")
            return bytes_to_tensor(memoryview(mapped)[entry.start - base:], entry)


def _read_header(path: Path) -> tuple[dict, dict[str, Entry]]:
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            size = os.fstat(f.fileno()).st_size
            if len(raw) != 8:
                raise InputError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", raw)
            if n > MAX_HEADER or 8 + n > size:
                raise InputError(f"{path}: header length {n} is invalid for a {size}-byte file")
            header = json.loads(f.read(n))
    except FileNotFoundError:
        raise InputError(f"{path}: missing (listed in the index but not present)") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: header is not valid JSON") from None
    metadata = header.pop("__metadata__", None) or {}
    entries = {}
    for key, info in header.items():
        try:
            begin, end = info["data_offsets"]
            entry = Entry(info["dtype"], tuple(info["shape"]), 8 + n + begin, 8 + n + end)
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: {key}: malformed header entry {info!r}") from None
        if entry.dtype not in DTYPE_BYTES or entry.end > size or nbytes(entry) != end - begin:
            raise InputError(f"{path}: {key}: dtype {entry.dtype} / shape {list(entry.shape)} "
                             f"does not match offsets {begin}..{end} in a {size}-byte file")
        entries[key] = entry
    return metadata, entries


def nbytes(entry: Entry) -> int:
    count = 1
    for dim in entry.shape:
        count *= dim
    return count * DTYPE_BYTES[entry.dtype]


def bytes_to_tensor(buf, entry: Entry):
    import torch

    dtype = torch_dtype(entry.dtype)
    if not buf:  # frombuffer refuses an empty buffer
        return torch.empty(entry.shape, dtype=dtype)
    return torch.frombuffer(buf, dtype=dtype).reshape(entry.shape)


def tensor_bytes(tensor) -> memoryview:
    """The tensor's raw little-endian bytes (a view, no copy when already contiguous)."""
    import torch

    flat = tensor.detach().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


class Checkpoint:
    """A checkpoint directory: which shard holds each key (index or single file)."""

    def __init__(self, model_dir: Path):
        self.dir = Path(model_dir)
        index = self.dir / INDEX_FILE
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{index}: weight_map: missing or not valid JSON") from None
            if not isinstance(weight_map, dict) or not weight_map:
                raise InputError(f"{index}: weight_map: expected a non-empty key -> file mapping")
        elif (self.dir / SINGLE_FILE).is_file():
            weight_map = None
        else:
            raise InputError(f"{self.dir}: no {SINGLE_FILE} or {INDEX_FILE} (not a safetensors checkpoint)")
        self.sharded = weight_map is not None
        names = sorted(set(weight_map.values())) if weight_map else [SINGLE_FILE]
        self.files = {name: SafetensorsFile(self.dir / name) for name in names}
        self.shard_of: dict[str, str] = {}
        for name, sf in self.files.items():
            for key in sf.entries:
                if key in self.shard_of:
                    raise InputError(f"{sf.path}: {key}: also stored in {self.shard_of[key]}")
                self.shard_of[key] = name
        if weight_map is not None and set(weight_map) != set(self.shard_of):
            odd = sorted(set(weight_map) ^ set(self.shard_of))[0]
            raise InputError(f"{index}: weight_map: key {odd!r} is not where the index says")

    def entry(self, key: str) -> Entry:
        return self.files[self.shard_of[key]].entries[key]

    def read_bytes(self, key: str, into: bytearray | None = None) -> memoryview:
        return self.files[self.shard_of[key]].read_bytes(key, into)

    def read_tensor(self, key: str):
        return self.files[self.shard_of[key]].read_tensor(key)

    def map_tensor(self, key: str):
        return self.files[self.shard_of[key]].map_tensor(key)

    def keys_by_shard(self) -> dict[str, list[str]]:
        return {name: sorted(sf.entries) for name, sf in self.files.items()}


def check_same_layout(checkpoints: dict[str, Checkpoint]) -> None:
    """Every input must hold exactly the first input's keys, shapes and dtypes."""
    (first_role, first), *rest = checkpoints.items()
    for role, ck in rest:
        for key in sorted(set(first.shard_of) | set(ck.shard_of)):
            if key not in ck.shard_of:
                raise InputError(f"{ck.dir}: key {key!r} missing (present in {first_role} {first.dir})")
            if key not in first.shard_of:
                raise InputError(f"{ck.dir}: key {key!r} not in {first_role} {first.dir}")
            a, b = first.entry(key), ck.entry(key)
            if (a.dtype, a.shape) != (b.dtype, b.shape):
                raise InputError(f"{ck.dir / ck.shard_of[key]}: {key}: {b.dtype}{list(b.shape)} != "
                                 f"{a.dtype}{list(a.shape)} in {first_role}")


def write_safetensors(path: Path, layout: Iterable[tuple[str, Entry]],
                      produce: Callable[[str], object], metadata: dict | None = None) -> int:
    """Write ``path`` holding ``layout``'s keys (in order); ``produce(key)`` gives each tensor's bytes.

    Written to ``<path>.tmp`` and renamed, so a crash never leaves a plausible-looking shard.
    Returns the bytes written.
    """
    layout = list(layout)
    header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for key, entry in layout:
        size = nbytes(entry)
        header[key] = {"dtype": entry.dtype, "shape": list(entry.shape),
                       "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format pads the header to 8-byte alignment
    tmp = path.with_name(path.name + ".tmp")
    # one writer thread: tensor i is written while tensor i+1 is computed; at most one write is
    # in flight, so a producer alternating two output buffers never overwrites unwritten bytes
    try:
        with open(tmp, "wb") as f, ThreadPoolExecutor(max_workers=1) as writer:
            f.write(struct.pack("<Q", len(blob)) + blob)
            pending = None
            for key, entry in layout:
                data = memoryview(produce(key)).cast("B")
                if len(data) != nbytes(entry):
                    raise InputError(f"{path.name}: {key}: produced {len(data)} bytes, "
                                     f"expected {nbytes(entry)}")
                if pending is not None:
                    pending.result()
                pending = writer.submit(f.write, data)
            if pending is not None:
                pending.result()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return 8 + len(blob) + offset
