"""KMS as a key wrapper for drkit.crypto: each backup's data key comes from GenerateDataKey.

The wrapped data key (KMS's CiphertextBlob) sits in the backup header; decrypting the
backup asks KMS to Decrypt it. Both calls carry the encryption context
{"drkit:purpose": "backup"}, so a blob from drkit can't be decrypted as anything else
(and CloudTrail shows what each Decrypt was for).

The caller makes the boto3 KMS client (aws/session.py); nothing here creates sessions
or clients.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from drkit.errors import DrkitError, IntegrityError, UsageError

# Declared permissions (ARCHITECTURE.md): `drkit iam-policy` unions these.
IAM_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey")

ENCRYPTION_CONTEXT = {"drkit:purpose": "backup"}
DATA_KEY_SIZE = 32

# KMS says the blob isn't for this key (or isn't a blob at all): the user has the wrong key.
_WRONG_KEY_CODES = {"InvalidCiphertextException", "IncorrectKeyException"}


def _code(exc: ClientError) -> str:
    """The error code, with every form of "access denied" as AccessDeniedException.

    KMS says AccessDeniedException; some endpoints (and moto with IAM enforced) answer a
    bare 403 whose body botocore can't parse, leaving the code "403".
    """
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ("AccessDenied", "AccessDeniedException", "403") or status == 403:
        return "AccessDeniedException"
    return code


def _message(exc: ClientError) -> str:
    """KMS's message squeezed onto one line (errors are one line: CONTRACT.md)."""
    text = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
    return (text[:200] + "...") if len(text) > 200 else (text or _code(exc))


class KmsKeyWrapper:
    """A drkit.crypto.KeyWrapper over one KMS key (kind "kms", key_id = the key's ARN).

    `key` is a key id, ARN, alias name (alias/drkit-backups) or alias ARN; it is resolved
    once, with DescribeKey, to the key ARN that goes into every backup header.

        wrapper = KmsKeyWrapper(session.client("kms"), "alias/drkit-backups")
        with EncryptWriter(sink, wrapper) as w: ...
    """

    kind = "kms"

    def __init__(self, client: Any, key: str) -> None:
        self._client = client
        try:
            metadata = client.describe_key(KeyId=key)["KeyMetadata"]
        except ClientError as exc:
            code = _code(exc)
            if code == "NotFoundException":
                raise UsageError(
                    f"KMS key {key} not found in {self._region()}; check the key id or alias and the region"
                ) from None
            if code == "AccessDeniedException":
                raise DrkitError(
                    f"access denied describing KMS key {key}: grant kms:DescribeKey on it"
                ) from None
            raise DrkitError(f"cannot look up KMS key {key}: {_message(exc)}") from None
        except BotoCoreError as exc:
            raise DrkitError(f"cannot reach KMS to look up key {key}: {exc}") from None
        self.key_id: str = metadata["Arn"]

    def _region(self) -> str:
        meta = getattr(self._client, "meta", None)
        return str(getattr(meta, "region_name", None) or "this region")

    def generate_data_key(self) -> tuple[bytes, bytes]:
        try:
            resp = self._client.generate_data_key(
                KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=ENCRYPTION_CONTEXT
            )
        except ClientError as exc:
            raise self._failure("generate a data key with", "kms:GenerateDataKey", exc) from None
        except BotoCoreError as exc:
            raise DrkitError(f"cannot reach KMS to generate a data key with {self.key_id}: {exc}") from None
        plaintext, blob = bytes(resp["Plaintext"]), bytes(resp["CiphertextBlob"])
        if len(plaintext) != DATA_KEY_SIZE:
            raise DrkitError(f"KMS returned a {len(plaintext)}-byte data key for {self.key_id}, expected 32")
        return plaintext, blob

    def unwrap(self, wrapped: bytes) -> bytes:
        try:
            # KeyId pins the key: KMS refuses a blob made under any other key.
            resp = self._client.decrypt(
                CiphertextBlob=wrapped, KeyId=self.key_id, EncryptionContext=ENCRYPTION_CONTEXT
            )
        except ClientError as exc:
            if _code(exc) in _WRONG_KEY_CODES:
                raise IntegrityError(
                    f"KMS cannot decrypt the backup's data key with {self.key_id}: wrong key, "
                    "or the backup header is damaged"
                ) from None
            raise self._failure("decrypt a backup's data key with", "kms:Decrypt", exc) from None
        except BotoCoreError as exc:
            raise DrkitError(f"cannot reach KMS to decrypt with {self.key_id}: {exc}") from None
        plaintext = bytes(resp["Plaintext"])
        if len(plaintext) != DATA_KEY_SIZE:
            raise IntegrityError(
                f"wrong key: KMS returned a {len(plaintext)}-byte data key for {self.key_id}"
            )
        return plaintext

    def _failure(self, doing: str, action: str, exc: ClientError) -> DrkitError:
        """One line for a KMS refusal that is not a wrong key: say what to fix."""
        code = _code(exc)
        if code == "AccessDeniedException":
            # KMS also answers AccessDenied for a blob made under a key this caller can't use.
            hint = ", or it is the wrong key for this backup" if action == "kms:Decrypt" else ""
            return DrkitError(
                f"access denied: cannot {doing} KMS key {self.key_id}; grant {action} on it{hint}"
            )
        if code == "DisabledException":
            return DrkitError(
                f"cannot {doing} KMS key {self.key_id}: the key is disabled; "
                f"enable it (aws kms enable-key --key-id {self.key_id})"
            )
        if code == "KMSInvalidStateException":
            return DrkitError(
                f"cannot {doing} KMS key {self.key_id}: the key is not usable ({_message(exc)}); "
                "if it is pending deletion, cancel it (aws kms cancel-key-deletion) and enable it"
            )
        if code == "NotFoundException":
            return DrkitError(f"cannot {doing} KMS key {self.key_id}: the key no longer exists")
        return DrkitError(f"cannot {doing} KMS key {self.key_id}: {code}: {_message(exc)}")

    def __repr__(self) -> str:
        return f"KmsKeyWrapper(key_id={self.key_id!r})"
