"""Getting pinned models and datasets onto disk: local mirrors, Hub downloads, digests, pickles.

- ``repro.fetch.hub``: a ``manifest.lock`` entry -> a local directory (mirror or
  ``huggingface_hub.snapshot_download`` at the pinned revision), sha256 checks of pinned files,
  one-line errors for gated/offline/unpinned cases, hard-linking into a stage output.
- ``repro.fetch.convert``: the one allowed use of pickle weights (``pytorch_model*.bin`` with a
  pinned digest, ``weights_only`` loading), converted once to safetensors.
- ``repro.fetch.resolve``: ``repro lock --resolve`` (revisions and LFS sha256 from the Hub).

Stage code lives in ``repro.data.fetch`` and ``repro.models.fetch``; see docs/fetch.md.
Import-light: huggingface_hub and torch are imported only when used.
"""
