"""Safe YAML with the YAML 1.2 core schema, bounded: what experiment files and ``--set`` are read with.

Why 1.2: PyYAML implements YAML 1.1, where ``1e-3`` is a string, ``yes``/``no`` are booleans and
``010`` is octal; the 1.2 core schema (the current spec, and what JSON users expect) reads ``1e-3``
as a float, only ``true``/``false`` as booleans and ``010`` as ten. Dates stay strings.

Why bounded: YAML aliases let a few hundred bytes expand to gigabytes (an "alias bomb") and an
alias inside its own anchor makes a recursive structure. A document is composed to nodes first;
its size with every alias expanded is counted (without expanding it) and must stay under a limit,
and a recursive alias is refused, before any Python object is built.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from repro.errors import InputError

MAX_FILE_BYTES = 1 << 20  # an experiment file is a few KB
MAX_NODES = 50_000  # nodes of one document with every alias expanded
MAX_SET_CHARS = 4096
MAX_SET_NODES = 1_000


class Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the YAML 1.2 core schema's implicit types."""

    yaml_implicit_resolvers: dict = {}


_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
for _tag, _regexp, _first in (
        ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
        ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
        ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
        ("tag:yaml.org,2002:float", _FLOAT, "-+0123456789."),
        ("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), "<")):
    Loader.add_implicit_resolver(_tag, _regexp, list(_first))


def _int(loader: Loader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text)  # decimal, leading zeros included ("010" is ten in YAML 1.2)


def _float(loader: Loader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    return float("nan") if text == ".nan" else float(text)


Loader.add_constructor("tag:yaml.org,2002:int", _int)
Loader.add_constructor("tag:yaml.org,2002:float", _float)


def expanded_size(node: yaml.Node, where: str, limit: int) -> int:
    """Nodes of ``node`` with every alias expanded, counted on the shared graph (so a bomb is
    measured, never built); a recursive alias or more than ``limit`` nodes is an error."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(current))
            if sizes[key] > limit:
                raise InputError(f"{where}: YAML expands to more than {limit} nodes (aliases?); refused")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise InputError(f"{where}: recursive YAML alias (an anchor used inside itself)")
        on_path.add(key)
        stack.append((current, True))
        stack.extend((c, False) for c in _children(current) if id(c) not in sizes)
    return sizes[id(node)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_text(text: str, where: str, limit: int = MAX_NODES,
              loader_class: type = Loader) -> tuple[Any, yaml.Node | None]:
    """(the value, its node); errors are one line naming ``where``."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        expanded_size(node, where, limit)
        return loader.construct_document(node), node
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        raise InputError(f"{where}:{at} malformed YAML ({getattr(exc, 'problem', None) or exc})") from None
    except RecursionError:
        raise InputError(f"{where}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def read_yaml(path: Path, loader_class: type = Loader) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (an experiment or an include; ``manifest.lock``
    is read with ``loader_class=yaml.SafeLoader``, PyYAML's own 1.1 types)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a YAML file") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(f"{path}: larger than {MAX_FILE_BYTES} bytes; refused")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    data, _ = load_text(text, str(path), loader_class=loader_class)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_set_value(item: str, raw: str) -> Any:
    """A ``--set`` value: one YAML 1.2 value (``1e-3`` is a float, ``null`` unsets), never empty,
    never with a trailing comment, on one line."""
    if raw.strip() == "":
        raise InputError(f"--set {item!r}: empty value; write KEY=null to unset, KEY='' for an empty string")
    if len(raw) > MAX_SET_CHARS or any(ch in raw for ch in "\n\r\0"):
        raise InputError(f"--set {item!r}: a value is one line of at most {MAX_SET_CHARS} characters")
    value, node = load_text(raw, f"--set {item!r}", MAX_SET_NODES)
    rest = raw[node.end_mark.index:].strip() if node is not None else raw.strip()
    if rest:
        raise InputError(f"--set {item!r}: {rest!r} after the value (' #' starts a YAML comment); "
                         "quote the value to keep it")
    return value
