"""What a third-party verifier checks in the kit's in-toto records, with the official packages.

``check_statement`` parses a statement strictly with ``in-toto-attestation`` (protobuf
``ParseDict`` without ``ignore_unknown_fields``: an unknown field is an error), its SLSA
Provenance v1 or test-result predicate likewise, and runs the package's validators
(``Statement.validate``, ``ResourceDescriptor.validate``) on the statement and on every
ResourceDescriptor in it. The Python package checks less than the specification and the
package's own Go validators, so these are checked too, each from its source text:

- every ResourceDescriptor has a ``uri``, ``digest`` or ``content``
  (spec/v1/resource_descriptor.md: "MUST specify one of uri, digest or content");
- DigestSet values of the spec's named algorithms are lowercase hex of the algorithm's length
  (go/v1/resource_descriptor.go ``Validate``), and the kit uses no other algorithm;
- SLSA's required fields (go/predicates/provenance/v1/provenance.go) and ``builder.id`` /
  ``buildType`` / every ``uri`` being a URI (TypeURI / ResourceURI, spec/v1/field_types.md) of
  a known scheme;
  ``pkg:`` URIs parse with ``packageurl-python`` and are in its canonical form;
- timestamps RFC 3339 in UTC ("Z").
"""

from __future__ import annotations

import base64
import json
import re

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.predicates.test_result.v0 import test_result_pb2
from in_toto_attestation.v1 import resource_descriptor_pb2, statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from packageurl import PackageURL

SLSA = "https://slsa.dev/provenance/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
PREDICATES = {SLSA: provenance_pb2.Provenance, TEST_RESULT: test_result_pb2.TestResult}
# bytes per digest, from go/v1/resource_descriptor.go (HexLength / digestLengths)
DIGEST_BYTES = {"md5": (16,), "sha1": (20,), "sha224": (28,), "sha512_224": (28,), "sha256": (32,),
                "sha512_256": (32,), "sha384": (48,), "sha512": (64,), "sha3_224": (28,),
                "sha3_256": (32,), "sha3_384": (48,), "sha3_512": (64,), "gitBlob": (20, 32),
                "gitCommit": (20, 32), "gitTag": (20, 32), "gitTree": (20, 32), "dirHash": (32,)}
URI = re.compile(r"^([a-z][a-z0-9+.-]*):[^\s]+$")  # RFC 3986 scheme ':' rest; scheme lowercase (6.2.2.1)
# A docker ref like "repro-smoke:dev" parses as scheme "repro-smoke": only schemes with a meaning
# count. The spec's (https, pkg:, git+https: as SPDX download locations, file:) and the kit's
# documented ones: hf:// (Hugging Face repositories) and repro-stage: (an upstream stage by name).
SCHEMES = {"https", "http", "pkg", "git+https", "file", "hf", "repro-stage"}
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


class Invalid(AssertionError):
    pass


def _uri(value: str, where: str) -> None:
    match = URI.match(value or "")
    if not match or match.group(1) not in SCHEMES:
        raise Invalid(f"{where}: {value!r} is not a URI (or not of a known scheme)")
    if value.startswith("pkg:"):
        purl = PackageURL.from_string(value)  # raises ValueError on a malformed purl
        if purl.to_string() != value:
            raise Invalid(f"{where}: {value!r} is not canonical ({purl.to_string()!r})")


def check_descriptor(rd: dict, where: str) -> None:
    pb = json_format.ParseDict(rd, resource_descriptor_pb2.ResourceDescriptor())
    ResourceDescriptor.copy_from_pb(pb).validate()
    if not (rd.get("uri") or rd.get("digest") or rd.get("content")):
        raise Invalid(f"{where}: ResourceDescriptor {rd.get('name')!r} has none of uri, digest, content")
    for algo, value in (rd.get("digest") or {}).items():
        if algo not in DIGEST_BYTES:
            raise Invalid(f"{where}: digest algorithm {algo!r} is not one the spec names")
        if not re.fullmatch(r"[0-9a-f]+", value) or len(value) // 2 not in DIGEST_BYTES[algo] or len(value) % 2:
            raise Invalid(f"{where}: {algo} digest {value!r} is not lowercase hex of the right length")
    for key in ("uri", "downloadLocation"):
        if key in rd:
            _uri(rd[key], f"{where}.{key}")


def _provenance(pred: dict) -> list[tuple[str, dict]]:
    bd, rdet = pred.get("buildDefinition") or {}, pred.get("runDetails") or {}
    if not bd.get("buildType") or not bd.get("externalParameters"):
        raise Invalid("buildDefinition: buildType and externalParameters are required")
    _uri(bd["buildType"], "buildDefinition.buildType")
    builder = rdet.get("builder") or {}
    if not builder.get("id"):
        raise Invalid("runDetails.builder.id is required")
    _uri(builder["id"], "runDetails.builder.id")
    for key in ("startedOn", "finishedOn"):
        value = (rdet.get("metadata") or {}).get(key)
        if value is not None and not RFC3339_UTC.match(value):
            raise Invalid(f"runDetails.metadata.{key}: {value!r} is not RFC 3339 UTC")
    return ([(f"resolvedDependencies[{i}]", rd) for i, rd in enumerate(bd.get("resolvedDependencies", []))]
            + [(f"byproducts[{i}]", rd) for i, rd in enumerate(rdet.get("byproducts", []))]
            + [(f"builderDependencies[{i}]", rd) for i, rd in enumerate(builder.get("builderDependencies", []))])


def check_statement(obj: dict, known_predicate: bool = True) -> None:
    """Raise on any violation; ``known_predicate=False`` for another producer's predicate type
    (model-signing's), whose Statement layer alone is checked."""
    pb = json_format.ParseDict(obj, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    for i, rd in enumerate(obj["subject"]):
        check_descriptor(rd, f"subject[{i}]")
    _uri(obj["predicateType"], "predicateType")
    if not known_predicate:
        return
    ptype = obj["predicateType"]
    if ptype not in PREDICATES:
        raise Invalid(f"predicateType {ptype!r}: not one the kit writes")
    json_format.ParseDict(obj["predicate"], PREDICATES[ptype]())
    if ptype == SLSA:
        descriptors = _provenance(obj["predicate"])
    else:
        pred = obj["predicate"]
        if pred.get("result") not in ("PASSED", "WARNED", "FAILED") or not pred.get("configuration"):
            raise Invalid("test-result: result must be PASSED|WARNED|FAILED and configuration is required")
        descriptors = [(f"configuration[{i}]", rd) for i, rd in enumerate(pred["configuration"])]
    for where, rd in descriptors:
        check_descriptor(rd, where)


def envelope_statement(envelope: dict) -> dict:
    """The Statement inside a DSSE envelope (in-toto spec/v1/envelope.md payloadType rule)."""
    if envelope["payloadType"] != "application/vnd.in-toto+json":
        raise Invalid(f"payloadType {envelope['payloadType']!r} is not application/vnd.in-toto+json")
    return json.loads(base64.b64decode(envelope["payload"]))
