"""Ed25519 signatures on drill reports, so an auditor can trust what a report says.

A drill report claims "we restored production in 13m32s and every check passed". The
signature makes that claim tamper-evident: change any field after signing (an RTO, a check's
`passed`) and verification fails with a one-line reason.

The signing key is a PEM (PKCS8) Ed25519 private key, by default
`<user state dir>/drkit/signing-key.pem`, created on first use with mode 0600. The report
writer publishes the public key as `<report_dir>/signing-key.pub.pem`, so anyone can verify
a report with that file alone (here with `verify_report`, or with any Ed25519 tool: the
signed bytes are `drkit.domain.report.signing_payload(report)`).

Signature block: `{"alg": "ed25519", "key_id": "ed25519:<16 hex of sha256(raw public key)>",
"value": <standard base64 of the 64-byte signature>}`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drkit.domain.report import signing_payload
from drkit.errors import UsageError

__all__ = [
    "ALG",
    "ReportSigner",
    "default_signing_key_path",
    "key_id_of",
    "load_public_key",
    "verify_report",
]

ALG = "ed25519"
log = logging.getLogger(__name__)


def default_signing_key_path() -> Path:
    """Where drkit keeps its report-signing key unless told otherwise."""
    return Path(platformdirs.user_state_dir("drkit")) / "signing-key.pem"


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """`ed25519:` + the first 16 hex digits of sha256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{ALG}:{hashlib.sha256(raw).hexdigest()[:16]}"


def _public_pem(public_key: Ed25519PublicKey) -> bytes:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return public_key.public_bytes(serialization.Encoding.PEM, spki)


def _create_key_file(path: Path) -> None:
    """Write a new private key to `path` atomically and without ever clobbering one.

    The key goes to a 0600 temp file in the same directory, then is hard-linked into place:
    link() fails if another process created the key first, and then we simply use theirs.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".signing-key.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
            log.warning("created report signing key %s (keep it private; publish its .pub.pem)", path)
    finally:
        os.unlink(tmp)


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"{path}: cannot read the report signing key: {e.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise UsageError(
            f"{path}: not an unencrypted PEM private key ({e}); move it away to create a new one"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path}: the report signing key must be Ed25519, found {type(key).__name__}")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        # Not fatal (a mounted secret may be 0644), but anyone who can read it can forge reports.
        log.warning("report signing key %s is readable by others (mode %o): chmod 600 it", path, mode)
    return key


class ReportSigner:
    """Signs report dicts with the Ed25519 key at `key_path`, creating the key on first use."""

    def __init__(self, key_path: Path) -> None:
        self.key_path = Path(key_path)
        if not self.key_path.exists():
            _create_key_file(self.key_path)
        self._key = _load_private_key(self.key_path)
        self.key_id: str = key_id_of(self._key.public_key())

    def sign(self, report_dict: Mapping[str, Any]) -> dict[str, Any]:
        """Return a copy of `report_dict` with a `signature` block over everything else."""
        value = self._key.sign(signing_payload(report_dict))
        signed = {k: v for k, v in report_dict.items() if k != "signature"}
        signed["signature"] = {"alg": ALG, "key_id": self.key_id, "value": base64.b64encode(value).decode()}
        return signed

    def public_key_pem(self) -> bytes:
        """The public half, as a SubjectPublicKeyInfo PEM, to publish beside the reports."""
        return _public_pem(self._key.public_key())


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Read an Ed25519 public key from PEM; a private key PEM is accepted too (its public half).

    Raises ValueError with a readable message for anything else.
    """
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise ValueError("not a PEM Ed25519 public or private key") from None
        public = private.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError(f"not an Ed25519 key (found {type(public).__name__})")
    return public


def verify_report(
    report_dict: Mapping[str, Any],
    *,
    public_key_pem: bytes | None = None,
    key_path: Path | None = None,
) -> tuple[bool, str]:
    """Check a report's signature. Returns (ok, one-line reason) and never raises on bad input.

    Give the key either as PEM bytes or as a path (`signing-key.pub.pem` beside the reports,
    or the private signing key itself).
    """
    if (public_key_pem is None) == (key_path is None):
        raise TypeError("verify_report needs exactly one of public_key_pem= or key_path=")
    if key_path is not None:
        try:
            public_key_pem = Path(key_path).read_bytes()
        except OSError as e:
            return False, f"cannot read public key {key_path}: {e.strerror}"
    assert public_key_pem is not None
    try:
        public = load_public_key(public_key_pem)
    except ValueError as e:
        return False, f"bad public key{f' {key_path}' if key_path else ''}: {e}"

    sig = report_dict.get("signature")
    if sig is None:
        return False, "the report is not signed"
    fields = ("alg", "key_id", "value")
    if not isinstance(sig, Mapping) or not all(isinstance(sig.get(k), str) for k in fields):
        return False, "the report's signature block is malformed (needs alg, key_id and value strings)"
    if sig["alg"] != ALG:
        return False, f"unsupported signature algorithm {sig['alg']!r} (drkit signs with {ALG})"
    expected_id = key_id_of(public)
    if sig["key_id"] != expected_id:
        return False, f"signed with key {sig['key_id']}, but the public key given is {expected_id}"
    try:
        value = base64.b64decode(sig["value"], validate=True)
    except (binascii.Error, ValueError):
        return False, "the signature value is not valid base64"
    try:
        payload = signing_payload(report_dict)
    except ValueError as e:  # NaN or similar smuggled into the document
        return False, f"the report cannot be canonicalised for checking: {e}"
    try:
        public.verify(value, payload)
    except InvalidSignature:
        return False, "signature does not match: the report was changed after signing"
    return True, f"signature ok: signed by {expected_id}"
