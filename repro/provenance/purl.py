"""Container images as Package URLs, the form the in-toto spec recommends for a ResourceURI
(spec/v1/field_types.md) and the purl spec defines for images (types/docker-definition.json of
package-url/purl-spec): ``pkg:docker/<namespace>/<name>@<version>?repository_url=<registry>``,
the version being the image ID (``sha256:...``; "a sha256 image id is preferred") or, when no
digest is known, the tag.

Hand-formatted here rather than with ``packageurl-python`` so that writing a record needs no
package beyond the images' locks; the test suite parses every URL this writes with that library.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

# Image files of the SLURM runtimes (Apptainer .sif, Enroot .sqsh): identified by their digest,
# not by a registry name.
IMAGE_FILE_SUFFIXES = (".sif", ".sqsh", ".img", ".squashfs")
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


def is_image_file(ref: str) -> bool:
    return ref.endswith(IMAGE_FILE_SUFFIXES) or ref.startswith(("/", "./", "../", "~"))


def split_image_ref(ref: str) -> tuple[str | None, str, str | None, str | None]:
    """(registry, repository path, tag, digest) of a Docker reference, an Apptainer
    ``docker://`` URI or an Enroot/pyxis ``[docker://][USER@]REGISTRY#IMAGE`` URI."""
    ref = ref.removeprefix("docker://")
    registry = None
    if "#" in ref:  # enroot: the registry is spelled before '#', optionally after credentials
        registry, ref = ref.split("#", 1)
        registry = registry.rsplit("@", 1)[-1] or None
    else:
        first, sep, rest = ref.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            registry, ref = first, rest
    name, _, digest = ref.partition("@")
    tag = None
    head, sep, last = name.rpartition("/")
    if ":" in last:
        last, tag = last.split(":", 1)
        name = f"{head}{sep}{last}"
    return registry, name, tag, digest or None


def docker_purl(ref: str, image_id: str | None = None) -> str:
    """``pkg:docker/...`` for ``ref``, versioned by ``image_id``, else the ref's digest, else its tag."""
    registry, name, tag, digest = split_image_ref(ref)
    segments = [quote(s, safe="") for s in name.lower().split("/") if s]
    purl = "pkg:docker/" + "/".join(segments)
    version = image_id or digest or tag
    if version:
        purl += "@" + quote(version, safe=":")
    if registry and registry not in DOCKER_HUB:
        purl += "?repository_url=" + quote(registry.lower(), safe=":")
    return purl


def image_uri(ref: str | None, image_id: str | None) -> str | None:
    """A ResourceURI for the image a stage ran in: a purl for a registry or daemon image; for an
    image file, a ``file:`` URI only when its digest is unknown (a digest names it better)."""
    if not ref:
        return None
    if is_image_file(ref):
        return None if image_id else Path(ref).expanduser().resolve().as_uri()
    return docker_purl(ref, image_id)
