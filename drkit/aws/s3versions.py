"""A versioned bucket's history, and the two writes a point-in-time restore makes.

    api = S3Versions.for_bucket(factory, "acme-assets-prod")   # in the bucket's own region
    api.versioning()                       # "Enabled" | "Suspended" | "Disabled"
    for key, history in api.histories("images/"):   # one paginated ListObjectVersions pass
        ...                                # history: newest first, versions and delete markers
    api.copy_version("images/a.png", "3sL4kqtJ...", size=1234)   # -> the new version id
    api.delete_marker("images/b.png")      # -> the marker's version id

Nothing here deletes a version: the writes are CopyObject (a version made current again by
copying it on top, history kept) and DeleteObject WITHOUT a VersionId (a delete marker).

Copies keep what CopyObject would otherwise lose: S3 encrypts a copy with the bucket's default
unless told otherwise, so the source version's SSE (and for SSE-KMS its key and Bucket Key
setting) is read with HeadObject and passed on, as is its storage class. Metadata and tags come
along with MetadataDirective/TaggingDirective COPY. Versions over `multipart_threshold` (5 GiB,
CopyObject's limit) are copied with UploadPartCopy in ranges; there metadata, content headers
and SSE are passed explicitly (from the HeadObject), tags are not copied (S3 does not copy tags
in a multipart copy). SSE-C versions cannot be copied without the customer's key, and archived
ones (GLACIER, DEEP_ARCHIVE) not before they are restored: both fail with a line saying so.

`bucket_facts()` is the S3 part of `drkit posture`: versioning, replication, RTC.
Every call made here is declared in drkit/aws/permissions.py.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from drkit.aws.session import SessionFactory
from drkit.domain.s3restore import Entry
from drkit.errors import DrkitError, UsageError

COPY_LIMIT = 5 << 30  # CopyObject copies at most 5 GiB; larger needs UploadPartCopy
DEFAULT_PART_SIZE = 512 << 20
MAX_PARTS = 10_000

# The IAM action a refused call needed, to name it in the error line.
_ACTION_OF = {
    "GetBucketLocation": "s3:GetBucketLocation",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "GetBucketReplication": "s3:GetReplicationConfiguration",
    "ListObjectVersions": "s3:ListBucketVersions",
    "HeadObject": "s3:GetObjectVersion",
    "CopyObject": "s3:GetObjectVersion and s3:PutObject (and kms:Decrypt, kms:GenerateDataKey for SSE-KMS)",
    "UploadPartCopy": "s3:GetObjectVersion and s3:PutObject (and kms:Decrypt, kms:GenerateDataKey for SSE-KMS)",
    "CreateMultipartUpload": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
}
# Headers a multipart copy must pass itself (a single CopyObject copies them with COPY).
_CONTENT_HEADERS = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage")
_ARCHIVED = frozenset({"GLACIER", "DEEP_ARCHIVE"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return " ".join(str(exc.response.get("Error", {}).get("Message", "")).split()) or _code(exc)


def failure(exc: Exception, operation: str, bucket: str, key: str | None = None) -> DrkitError:
    """The one-line error for a failed S3 call (UsageError where nothing can have changed)."""
    where = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
    if isinstance(exc, NoCredentialsError):
        return UsageError(f"no AWS credentials to reach {where}: set AWS_PROFILE or AWS credentials")
    if isinstance(exc, BotoCoreError):
        return DrkitError(f"cannot reach S3 for {where} ({exc}); check the network and AWS_ENDPOINT_URL")
    if not isinstance(exc, ClientError):
        return DrkitError(f"{operation} on {where} failed: {exc}")
    code = _code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "NoSuchBucket":
        return UsageError(f"bucket {bucket} does not exist (or these credentials cannot see it): check --bucket")
    if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
        action = _ACTION_OF.get(operation, f"s3:{operation}")
        return DrkitError(
            f"access denied: {operation} on {where}; grant {action} to drkit's role "
            "(`drkit iam-policy --for runbooks` prints all it needs)"
        )
    if code == "InvalidObjectState":
        return DrkitError(f"{where} is archived (GLACIER/DEEP_ARCHIVE): restore it from the archive first")
    if code.startswith("KMS."):
        return DrkitError(
            f"{operation} on {where}: S3 could not use the object's KMS key ({code}: {_message(exc)}); "
            "check the key is enabled and drkit may kms:Decrypt and kms:GenerateDataKey with it"
        )
    return DrkitError(f"{operation} on {where} failed: {code}: {_message(exc)}")


def bucket_region(factory: SessionFactory, bucket: str) -> str:
    """The bucket's region (GetBucketLocation: None means us-east-1, "EU" is eu-west-1)."""
    try:
        loc = factory.client("s3").get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except (ClientError, BotoCoreError) as exc:
        raise failure(exc, "GetBucketLocation", bucket) from None
    if not loc:
        return "us-east-1"
    return "eu-west-1" if loc == "EU" else str(loc)


class S3Versions:
    """Reads a bucket's version history and makes restore writes, with one client in its region."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket
        self.region = str(getattr(getattr(client, "meta", None), "region_name", None) or "")

    @classmethod
    def for_bucket(cls, factory: SessionFactory, bucket: str) -> S3Versions:
        """An S3Versions whose client talks to the bucket's own region (unknown bucket: UsageError)."""
        return cls(factory.client("s3", region=bucket_region(factory, bucket)), bucket)

    def _fail(self, exc: Exception, operation: str, key: str | None = None) -> NoReturn:
        raise failure(exc, operation, self.bucket, key) from None

    def versioning(self) -> str:
        """"Enabled", "Suspended", or "Disabled" (never enabled: S3 then answers no Status)."""
        try:
            status = self._s3.get_bucket_versioning(Bucket=self.bucket).get("Status")
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "GetBucketVersioning")
        return str(status) if status else "Disabled"

    def replication_rules(self) -> list[dict[str, Any]]:
        """The bucket's replication rules as S3 returns them; [] when none is configured."""
        try:
            config = self._s3.get_bucket_replication(Bucket=self.bucket).get("ReplicationConfiguration", {})
        except ClientError as exc:
            if _code(exc) == "ReplicationConfigurationNotFoundError":
                return []
            self._fail(exc, "GetBucketReplication")
        except BotoCoreError as exc:
            self._fail(exc, "GetBucketReplication")
        return list(config.get("Rules", []))

    def histories(self, prefix: str = "") -> Iterator[tuple[str, list[Entry]]]:
        """(key, its history newest first) for every key under `prefix`, in key order.

        One paginated ListObjectVersions pass; memory holds one page and one key. S3 returns a
        page's versions and delete markers as two lists, each ordered by key then newest first;
        a key's entries may continue on the next page, and only the page's last key can.
        """
        paginator = self._s3.get_paginator("list_object_versions")
        pending: dict[str, list[Entry]] = {}
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for raw in page.get("Versions", []):
                    pending.setdefault(raw["Key"], []).append(_entry(raw, delete_marker=False))
                for raw in page.get("DeleteMarkers", []):
                    pending.setdefault(raw["Key"], []).append(_entry(raw, delete_marker=True))
                if not pending:
                    continue
                # Python orders str by code point, which is S3's UTF-8 byte order.
                last = max(pending) if page.get("IsTruncated") else None
                for key in sorted(pending):
                    if key != last:
                        yield key, _newest_first(pending.pop(key))
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "ListObjectVersions")
        for key in sorted(pending):
            yield key, _newest_first(pending.pop(key))

    def copy_version(
        self,
        key: str,
        version_id: str,
        size: int,
        *,
        multipart_threshold: int = COPY_LIMIT,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> str:
        """Copy `version_id` of `key` on top of `key` (it becomes current); the new version id."""
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and _code(exc) in ("400", "BadRequest"):
                # HeadObject answers a bare 400, most often for an SSE-C version read without its key.
                raise DrkitError(
                    f"s3://{self.bucket}/{key} version {version_id} cannot be read (400 Bad Request); "
                    "if it is SSE-C encrypted it needs the customer's key: restore it by hand"
                ) from None
            self._fail(exc, "HeadObject", key)
        if head.get("StorageClass") in _ARCHIVED:
            raise DrkitError(
                f"s3://{self.bucket}/{key} version {version_id} is in {head['StorageClass']}: "
                "restore it from the archive first, then run again"
            )
        source = {"Bucket": self.bucket, "Key": key, "VersionId": version_id}
        extra = _keep_encryption(head)
        if head.get("StorageClass"):
            extra["StorageClass"] = head["StorageClass"]
        if size > multipart_threshold:
            return self._multipart_copy(key, source, size, head, extra, part_size)
        try:
            done = self._s3.copy_object(
                Bucket=self.bucket, Key=key, CopySource=source, MetadataDirective="COPY",
                TaggingDirective="COPY", **extra,
            )
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "CopyObject", key)
        return str(done.get("VersionId") or "null")

    def _multipart_copy(
        self, key: str, source: dict[str, str], size: int, head: dict[str, Any], extra: dict[str, Any],
        part_size: int,
    ) -> str:
        # Parts of at most `part_size`, but never more than S3's 10,000 parts.
        part = max(part_size, math.ceil(size / MAX_PARTS))
        args = dict(extra, Metadata=head.get("Metadata") or {})
        args.update({h: head[h] for h in _CONTENT_HEADERS if head.get(h)})
        try:
            upload_id = self._s3.create_multipart_upload(Bucket=self.bucket, Key=key, **args)["UploadId"]
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "CreateMultipartUpload", key)
        operation = "UploadPartCopy"
        try:
            parts = []
            for number, start in enumerate(range(0, size, part), start=1):
                end = min(size, start + part) - 1
                got = self._s3.upload_part_copy(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"PartNumber": number, "ETag": got["CopyPartResult"]["ETag"]})
            operation = "CompleteMultipartUpload"
            done = self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException as exc:
            # Nothing half-made stays billed: the upload is aborted on any failure, Ctrl-C included.
            # The failure that matters is the one below; a lifecycle rule sweeps any leftover.
            with contextlib.suppress(ClientError, BotoCoreError):
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            if isinstance(exc, ClientError | BotoCoreError):
                self._fail(exc, operation, key)
            raise
        return str(done.get("VersionId") or "null")

    def delete_marker(self, key: str) -> str:
        """Hide `key` behind a delete marker (DeleteObject without VersionId); the marker's id."""
        try:
            done = self._s3.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "DeleteObject", key)
        return str(done.get("VersionId") or "null")


def _entry(raw: dict[str, Any], *, delete_marker: bool) -> Entry:
    modified = raw["LastModified"]
    if isinstance(modified, datetime):
        modified = modified.astimezone(UTC)
    return Entry(
        version_id=str(raw.get("VersionId") or "null"),
        last_modified=modified,
        is_latest=bool(raw.get("IsLatest")),
        delete_marker=delete_marker,
        etag=str(raw.get("ETag") or ""),
        size=int(raw.get("Size") or 0),
    )


def _newest_first(entries: list[Entry]) -> list[Entry]:
    """Merge one key's versions and delete markers, newest first, the latest always first.

    `sorted` is stable: entries with the same stamp keep the order S3 listed them in.
    """
    return sorted(entries, key=lambda e: (not e.is_latest, -e.last_modified.timestamp()))


def _keep_encryption(head: dict[str, Any]) -> dict[str, Any]:
    """The SSE arguments that make a copy encrypted as its source was."""
    sse = head.get("ServerSideEncryption")
    if sse == "aws:kms" or sse == "aws:kms:dsse":
        args: dict[str, Any] = {"ServerSideEncryption": sse}
        if head.get("SSEKMSKeyId"):
            args["SSEKMSKeyId"] = head["SSEKMSKeyId"]
        if head.get("BucketKeyEnabled"):
            args["BucketKeyEnabled"] = True
        return args
    if sse == "AES256":
        return {"ServerSideEncryption": "AES256"}
    return {}


def bucket_facts(factory: SessionFactory, bucket: str) -> dict[str, Any]:
    """The S3 facts `drkit posture` needs about `bucket`, read from the bucket itself.

        {"bucket": "acme-assets-prod", "region": "us-east-1", "versioning": "Enabled",
         "replication": True, "rtc": True, "replica_buckets": ["arn:aws:s3:::acme-assets-prod-dr"]}

    `replication`: at least one Enabled rule; `rtc`: every enabled rule has Replication Time
    Control on (a rule without it gives no 15-minute promise, so the weakest rule decides).
    """
    api = S3Versions.for_bucket(factory, bucket)
    versioning = api.versioning()
    rules = [r for r in api.replication_rules() if r.get("Status") == "Enabled"]
    return {
        "bucket": bucket,
        "region": api.region,
        "versioning": versioning,
        "replication": bool(rules),
        "rtc": bool(rules) and all(
            (r.get("Destination", {}).get("ReplicationTime") or {}).get("Status") == "Enabled" for r in rules
        ),
        "replica_buckets": sorted({str(r.get("Destination", {}).get("Bucket", "")) for r in rules} - {""}),
    }
