"""Every stage kind the pipeline knows: its descriptor (``repro.stages.kind.Kind``) and, lazily,
the function that runs it.

A kind is ``<pipeline step>/<name>``, declared in ``repro/stages/<step>.py`` with its params,
image, GPU needs, disk size, cost model and report embedding. ``STAGE_KINDS`` maps each kind to
its ``"module:function"`` target, imported only when a stage of that kind runs, so ``repro
list``/``status``/``plan`` never import torch. ``describe(kind)`` returns the descriptor.
"""

from __future__ import annotations

from repro.registry import Registry
from repro.stages.kind import Kind

STAGE_KINDS = Registry("stage kind")
KINDS: dict[str, Kind] = {}


def declare(*kinds: Kind) -> None:
    for kind in kinds:
        if kind.name in KINDS and KINDS[kind.name] != kind:
            raise ValueError(f"stage kind {kind.name!r} declared twice")
        STAGE_KINDS.register(kind.name, kind.target)
        KINDS[kind.name] = kind


def describe(name: str) -> Kind:
    """The kind's descriptor. A kind registered bare (``STAGE_KINDS.register``, as tests do) has
    undeclared params (``params=None``: only checked for finite numbers) and default facts."""
    if name in KINDS:
        return KINDS[name]
    STAGE_KINDS.origin(name)  # raises with close-match suggestions for an unknown kind
    return Kind(name, STAGE_KINDS.origin(name), None)


def _declare_all() -> None:
    from repro.stages import analyse, data, evaluate, merge, models, report, train

    for module in (data, models, train, merge, analyse, evaluate, report):
        declare(*module.KINDS)


_declare_all()
