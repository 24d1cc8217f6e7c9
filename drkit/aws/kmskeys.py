"""Resolve a configured KMS key (id, ARN, alias) to a usable key in one region, or refuse.

Cross-region snapshot copies must be encrypted with a key in the destination region
(`copies.kms_key`); a copy started with a key that is disabled, pending deletion, in the
wrong region or missing fails late in AWS, after the source work is done. drkit checks the
key before it starts anything:

    key = resolve_key(factory, "us-west-2", "alias/drkit-dr")
    key.arn   # arn:aws:kms:us-west-2:123456789012:key/...  (pass this to copy_snapshot)

DescribeKey resolves aliases (alias/x and alias ARNs) as well as key ids and ARNs.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from drkit.aws.session import SessionFactory
from drkit.errors import DrkitError, UsageError

# Declared permissions (ARCHITECTURE.md): `drkit iam-policy` unions these.
IAM_ACTIONS = ("kms:DescribeKey",)


@dataclass(frozen=True)
class KeyInfo:
    """A KMS key as DescribeKey reports it."""

    arn: str
    key_id: str
    region: str
    enabled: bool
    key_state: str  # Enabled | Disabled | PendingDeletion | PendingImport | Unavailable | ...


def arn_region(arn: str) -> str | None:
    """The region of an ARN (key or alias ARN), or None for key ids and alias names."""
    parts = arn.split(":")
    return (parts[3] or None) if len(parts) >= 6 and parts[0] == "arn" else None


def _code(exc: ClientError) -> str:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ("AccessDenied", "AccessDeniedException", "403") or status == 403:
        return "AccessDeniedException"
    return code


def resolve_key(factory: SessionFactory, region: str, key: str, *, purpose: str | None = None) -> KeyInfo:
    """The enabled symmetric encryption key `key` in `region`, or a UsageError saying what to fix.

    `purpose` starts the refusal line (default: "copies to REGION"), e.g.
    "copies to us-west-2 need a usable KMS key there: alias/drkit-dr is PendingDeletion".
    """
    need = f"{purpose or f'copies to {region}'} need a usable KMS key there"
    key = (key or "").strip()
    if not key:
        raise UsageError(f"{need}: no key is configured; set copies.kms_key (an alias or key ARN in {region})")
    named_region = arn_region(key)
    if named_region and named_region != region:
        raise UsageError(f"{need}: {key} is in {named_region}, not {region}; use a key in {region}")
    try:
        meta = factory.client("kms", region=region).describe_key(KeyId=key)["KeyMetadata"]
    except ClientError as exc:
        code = _code(exc)
        if code == "NotFoundException":
            raise UsageError(f"no KMS key {key} in {region}: create it or fix copies.kms_key") from None
        if code == "AccessDeniedException":
            raise DrkitError(
                f"access denied describing KMS key {key} in {region}: grant kms:DescribeKey on it to drkit's role"
            ) from None
        message = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
        raise DrkitError(f"cannot look up KMS key {key} in {region}: {code}: {message}") from None
    except BotoCoreError as exc:
        raise DrkitError(f"cannot reach KMS in {region} to look up key {key}: {exc}") from None
    info = KeyInfo(
        arn=str(meta["Arn"]),
        key_id=str(meta["KeyId"]),
        region=arn_region(str(meta["Arn"])) or region,
        enabled=bool(meta.get("Enabled", False)),
        key_state=str(meta.get("KeyState", "")),
    )
    if info.region != region:
        raise UsageError(f"{need}: {key} resolves to {info.arn}, which is in {info.region}, not {region}")
    if not info.enabled or info.key_state != "Enabled":
        raise UsageError(f"{need}: {key} is {info.key_state or 'not enabled'}")
    # RDS encrypts only with symmetric encryption keys; an asymmetric or HMAC key fails the copy.
    spec = meta.get("KeySpec") or meta.get("CustomerMasterKeySpec")
    usage = meta.get("KeyUsage")
    if (spec and spec != "SYMMETRIC_DEFAULT") or (usage and usage != "ENCRYPT_DECRYPT"):
        raise UsageError(f"{need}: {key} is a {spec or usage} key; RDS needs a symmetric encryption key")
    return info
