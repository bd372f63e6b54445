"""Signatures with one offline key pair: DSSE envelopes over statements and manifests, OpenSSF
model signing over model checkpoints.

Library choice (no primitive is written here): ``securesystemslib`` is in-toto's own crypto layer
and implements DSSE (envelope, pre-authentication encoding, threshold verification) over
pyca/``cryptography`` signers; ``model-signing`` is OpenSSF's format for model directories. Its
key-based signer accepts elliptic-curve keys only (model_signing/_signing/sign_ec_key.py), so the
pair is ECDSA P-256 (securesystemslib's ``ecdsa-sha2-nistp256``) and serves both.

Files, beside what they sign and never inside a stage's ``out/`` (outputs stay byte-identical
whoever signs them):

    store/<key>/statement.dsse.json        envelope over statement.json (application/vnd.in-toto+json)
    store/<key>/model.sig                  model-signing bundle over out/, for a model checkpoint
    <experiment>/manifest.dsse.json        envelope over manifest.json
    <experiment>/verification.dsse.json    envelope over verification.json (`repro verify --signing-key`)

Only the private key's path (``--signing-key`` or ``$REPRO_SIGNING_KEY``) and an optional
passphrase (``$REPRO_SIGNING_KEY_PASSWORD``) are read; neither the key nor the passphrase is
written anywhere. Envelopes name the public key by its securesystemslib key id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from repro.errors import InputError
from repro.provenance.record import read_json, subject_files, write_json_atomic

KEY_ENV = "REPRO_SIGNING_KEY"
PASSWORD_ENV = "REPRO_SIGNING_KEY_PASSWORD"
IN_TOTO = "application/vnd.in-toto+json"  # in-toto spec/v1/envelope.md: a Statement payload
MANIFEST_TYPE = "application/vnd.repro.manifest+json"  # the manifest is not a Statement
MODEL_CARD = "repro_model.json"  # what makes a stage output a model checkpoint (repro/models/card.py)
MODEL_SIG = "model.sig"  # model-signing's default signature name
KEY_NAME = "repro-signing"


def envelope_path(path: Path) -> Path:
    """statement.json -> statement.dsse.json."""
    return path.with_name(f"{path.stem}.dsse.json")


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"signing needs the `sign` extra (pip install -e '.[sign]'): {module} "
                         "is not installed") from None


def _password() -> bytes | None:
    value = os.environ.get(PASSWORD_ENV)
    return value.encode() if value else None


def generate_keys(out_dir: Path) -> tuple[Path, Path]:
    """Write a new ECDSA P-256 pair: ``repro-signing.key`` (PKCS#8 PEM, mode 0600, encrypted with
    ``$REPRO_SIGNING_KEY_PASSWORD`` if set) and ``repro-signing.pub``. Never overwrites."""
    _need("securesystemslib.signer")
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec

    out_dir.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out_dir / f"{KEY_NAME}.key", out_dir / f"{KEY_NAME}.pub"
    for path in (key_path, pub_path):
        if path.exists():
            raise InputError(f"{path}: exists; a key pair is never overwritten")
    key = ec.generate_private_key(ec.SECP256R1())
    password = _password()
    crypt = ser.BestAvailableEncryption(password) if password else ser.NoEncryption()
    private = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, crypt)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    pub_path.write_bytes(key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path


def load_public_key(path: Path):
    """A securesystemslib key from a PEM public key file (its key id computed the standard way)."""
    _need("securesystemslib.signer")
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey

    try:
        return SSlibKey.from_crypto(load_pem_public_key(Path(path).read_bytes()))
    except OSError as exc:
        raise InputError(f"{path}: cannot read public key ({exc.strerror})") from None
    except ValueError:
        raise InputError(f"{path}: not a PEM public key (ECDSA P-256, from `repro keys generate`)") from None


def public_key_hint(pub_pem: bytes) -> str:
    """How a model-signing bundle names its key: sha256 of the public key's PEM."""
    return hashlib.sha256(pub_pem).hexdigest()


class Signer:
    """Signs with the private key at ``key_path``; fails on a key it cannot use, naming the path."""

    def __init__(self, key_path: Path):
        _need("securesystemslib.signer")
        _need("model_signing")
        from cryptography.hazmat.primitives import serialization as ser
        from cryptography.hazmat.primitives.asymmetric import ec
        from securesystemslib.signer import CryptoSigner

        self.key_path = Path(key_path)
        try:
            data = self.key_path.read_bytes()
        except OSError as exc:
            raise InputError(f"{key_path}: cannot read signing key ({exc.strerror})") from None
        try:
            key = ser.load_pem_private_key(data, _password())
        except (ValueError, TypeError):
            raise InputError(f"{key_path}: not a usable private key (PEM PKCS#8; an encrypted key "
                             f"needs ${PASSWORD_ENV})") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise InputError(f"{key_path}: not an ECDSA P-256 key (model signing needs one; "
                             "`repro keys generate` makes one)")
        self._signer = CryptoSigner(key)
        self.public = self._signer.public_key
        self.keyid = self.public.keyid
        self._hint = public_key_hint(key.public_key().public_bytes(
            ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo))

    # ------------------------------------------------------------------ DSSE

    def sign_file(self, path: Path, payload_type: str) -> Path:
        """Write ``<stem>.dsse.json`` over the file's exact bytes (kept if this key already did)."""
        from securesystemslib.dsse import Envelope

        data = path.read_bytes()
        out = envelope_path(path)
        if envelope_problem(out, data, payload_type, [self.public]) is None:
            return out
        envelope = Envelope(data, payload_type, {})
        envelope.sign(self._signer)
        write_json_atomic(out, envelope.to_dict())
        return out

    # ------------------------------------------------------------------ model signing

    def sign_model(self, entry: Path, statement: dict) -> Path:
        """``entry/model.sig`` over ``entry/out`` with model-signing's own signer."""
        from model_signing import signing

        sig = entry / MODEL_SIG
        if self._model_signed(sig, statement):
            return sig
        tmp = entry / f".{MODEL_SIG}.{os.getpid()}.tmp"
        try:
            signing.Config().use_elliptic_key_signer(private_key=self.key_path, password=_password()) \
                .sign(entry / "out", tmp)
            os.replace(tmp, sig)
        finally:
            tmp.unlink(missing_ok=True)
        return sig

    def _model_signed(self, sig: Path, statement: dict) -> bool:
        """Already signed by this key over exactly the files the statement lists? Read from the
        bundle without re-hashing the model (a rerun stays fast; `repro verify` re-hashes)."""
        try:
            bundle = json.loads(sig.read_text())
            payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
            signed = {r["name"]: r["digest"] for r in payload["predicate"]["resources"]}
            hint = bundle["verificationMaterial"]["publicKey"]["hint"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return hint == self._hint and signed == subject_files(statement)

    # ------------------------------------------------------------------ a run

    def sign_run(self, manifest_path: Path) -> list[Path]:
        """Sign every stage statement a manifest vouches for, each model checkpoint among their
        outputs, then the manifest. Returns the signature files."""
        runs = manifest_path.parent.parent
        manifest = read_json(manifest_path)
        written = []
        for entry in manifest.get("stages", {}).values():
            st_path = runs / entry["statement"]
            written.append(self.sign_file(st_path, IN_TOTO))
            if (runs / entry["output"] / MODEL_CARD).is_file():
                written.append(self.sign_model(st_path.parent, read_json(st_path)))
        written.append(self.sign_file(manifest_path, MANIFEST_TYPE))
        return written


def envelope_problem(path: Path, data: bytes, payload_type: str, keys: list) -> str | None:
    """Why the envelope at ``path`` does not vouch for ``data`` with one of ``keys``; None if it does."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    if not path.exists():
        return "unsigned (no DSSE envelope)"
    try:
        envelope = Envelope.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"envelope {path.name} unreadable ({exc.__class__.__name__})"
    if envelope.payload_type != payload_type:
        return f"envelope {path.name}: payloadType {envelope.payload_type!r}, expected {payload_type!r}"
    try:
        envelope.verify(keys, 1)
    except VerificationError:
        found = ", ".join(k[:16] for k in envelope.signatures) or "none"
        return f"no valid signature by a trusted key (signature key ids: {found})"
    if envelope.payload != data:
        return "re-written after signing (the signed payload differs from the file)"
    return None


# ---------------------------------------------------------------------- `repro verify --trusted-key`


def check_signatures(v, manifest_path: Path, manifest: dict, trusted: list[Path]) -> str:
    """The signature step of `repro verify`: with trusted public keys, every stage statement, model
    checkpoint and the manifest must carry a valid signature by one of them (one check per file,
    each failure naming its file); without, a run is reported as unsigned or as signed but not
    checked, and the verdict is unchanged. Returns a one-line summary."""
    runs = manifest_path.parent.parent
    files = [(runs / e["statement"], IN_TOTO) for e in manifest.get("stages", {}).values()]
    files.append((manifest_path, MANIFEST_TYPE))
    if not trusted:
        signed = sum(envelope_path(path).exists() for path, _ in files)
        summary = ("signatures: unsigned (no DSSE envelopes)" if not signed else
                   f"signatures: {signed} of {len(files)} files signed, not checked (no --trusted-key)")
        v.ok(summary)
        return summary
    keys = [load_public_key(p) for p in trusted]
    bad = 0
    for path, payload_type in files:
        if not path.is_file():
            continue  # a missing statement has failed verification already
        problem = envelope_problem(envelope_path(path), path.read_bytes(), payload_type, keys)
        named = path
        if problem is None and payload_type == IN_TOTO:
            problem, named = _model_problem(path, trusted), path.parent / MODEL_SIG
        if problem:
            bad += 1
            v.fail(f"file {named}", f"signature: {problem}")
        else:
            v.ok(f"signature {path.relative_to(runs)}")
    summary = (f"signatures: {len(files) - bad} of {len(files)} files signed by a trusted key "
               f"({', '.join(k.keyid[:16] for k in keys)})")
    if not bad:
        v.ok(summary)
    return summary


def _model_problem(statement_path: Path, trusted: list[Path]) -> str | None:
    """For a stage whose signed statement lists a model card: its model.sig, checked by
    model-signing's own verifier (re-hashing every file) against each trusted key."""
    from cryptography.exceptions import InvalidSignature
    from model_signing import verifying

    entry = statement_path.parent
    if MODEL_CARD not in subject_files(read_json(statement_path)):
        return None
    sig = entry / MODEL_SIG
    if not sig.is_file():
        return f"model checkpoint {entry / 'out'} unsigned (no {MODEL_SIG})"
    errors = []
    for pub in trusted:
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(entry / "out", sig)
            return None
        except (ValueError, KeyError, InvalidSignature) as exc:
            errors.append(f"{exc.__class__.__name__}: {str(exc)[:200]}")
    return f"{sig} does not verify with model-signing ({'; '.join(errors)})"
