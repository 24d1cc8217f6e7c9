"""Backups in S3: drkit.store.BackupStore over one bucket and prefix, streamed with multipart upload.

    store: s3://acme-backups/drkit/app

The rules a backup store keeps (drkit/store.py) hold here too:
- all-or-nothing: `writer()` streams parts as they fill (memory stays at about one part) and
  completes the upload only when the block exits cleanly; on any exception, Ctrl-C included, it
  aborts the upload so no half object is visible and no parts stay billed. (A process killed
  with SIGKILL cannot abort: a bucket lifecycle rule with AbortIncompleteMultipartUpload, e.g.
  after 7 days, sweeps those.) Objects smaller than one part go up in a single PutObject.
- never replace a backup: an existing name is refused before any data is sent, and the
  commit itself is conditional (If-None-Match: *), so a writer racing another cannot overwrite.
- server-side encryption on every upload (AES256 by default, or aws:kms with a key). drkit's
  own envelope encryption is inside the object; SSE is defence in depth, and what a bucket
  policy that requires it expects to see.

Every failure is a StoreError (or a UsageError for credentials) with one line that says what
is wrong and what to do. The IAM actions used are declared in IAM_ACTIONS for `drkit iam-policy`.
"""

from __future__ import annotations

import builtins
import contextlib
import io
from collections.abc import Iterator
from typing import Any, BinaryIO, NoReturn

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from drkit.aws.session import SessionFactory
from drkit.errors import StoreError, UsageError

# Declared permissions (ARCHITECTURE.md). Multipart calls are authorised as s3:PutObject;
# HeadObject as s3:GetObject; ListObjectsV2 as s3:ListBucket.
IAM_ACTIONS = (
    "s3:PutObject",
    "s3:GetObject",
    "s3:ListBucket",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListBucketMultipartUploads",  # pending_uploads() only: cleanup of SIGKILLed writers
)
# Added when the store uses SSE-KMS: S3 asks KMS for a data key on write and to decrypt on read.
SSE_KMS_IAM_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")

MIN_PART_SIZE = 5 << 20  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 << 30
MAX_PARTS = 10_000
SSE_MODES = ("AES256", "aws:kms")

# Which IAM action a refused API call needed, to name it in the error line.
_ACTION_OF = {
    "ListObjectsV2": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
}
_EXISTS_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or _code(exc)


class S3Store:
    """A BackupStore in `bucket` under `prefix` (names are relative to the prefix).

        store = S3Store(factory.client("s3"), "acme-backups", "drkit/app")
        with store.writer("app/2026-01-01.dump.enc") as sink:
            sink.write(data)
        store.list("app/")  # ["app/2026-01-01.dump.enc"]
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = 64 << 20,
        sse: str | None = "AES256",
        kms_key_id: str | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise UsageError(f"S3 bucket name {bucket!r} is not valid: write s3://BUCKET/PREFIX")
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between 5 MiB and 5 GiB (S3's limits), not {part_size}")
        if sse is not None and sse not in SSE_MODES:
            raise ValueError(f"sse must be one of {SSE_MODES} or None, not {sse!r}")
        if kms_key_id and sse != "aws:kms":
            raise ValueError("kms_key_id needs sse='aws:kms'")
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    @classmethod
    def from_environment(cls, bucket: str, prefix: str) -> S3Store:
        """A store whose client comes from the standard AWS environment (AWS_PROFILE, AWS_REGION,
        AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3), for `store: s3://bucket/prefix`."""
        return cls(SessionFactory().client("s3"), bucket, prefix)

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r}, sse={self.sse!r})"

    # -- names ------------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"bad object name {name!r}")
        return f"{self.prefix}/{name}" if self.prefix else name

    def _region(self) -> str:
        meta = getattr(self._client, "meta", None)
        return str(getattr(meta, "region_name", None) or "this region")

    # -- errors -----------------------------------------------------------------------------

    def _fail(self, exc: Exception, operation: str, name: str | None = None) -> NoReturn:
        """Raise the one-line StoreError (or UsageError) for a failed S3 call."""
        what = f"{self.uri}/{name}" if name else self.uri
        if isinstance(exc, NoCredentialsError):
            raise UsageError(
                f"no AWS credentials to reach {self.uri}: set AWS_PROFILE or AWS credentials"
            ) from None
        if isinstance(exc, BotoCoreError):
            raise StoreError(
                f"store {self.uri}: cannot reach S3 ({exc}); check the network and AWS_ENDPOINT_URL"
            )
        assert isinstance(exc, ClientError)
        code = _code(exc)
        if code == "NoSuchBucket":
            raise StoreError(
                f"bucket {self.bucket} does not exist in {self._region()}: create it or fix `store:`"
            )
        if code in ("NoSuchKey", "404", "NotFound"):
            raise StoreError(f"store {self.uri}: no object {name}")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            action = _ACTION_OF.get(operation, f"s3:{operation}")
            raise StoreError(
                f"access denied: {operation} on {what}; grant {action} on the bucket to drkit's role"
            )
        if code in _CREDENTIAL_CODES:
            raise UsageError(
                f"AWS refused the credentials for {self.uri} ({code}): refresh them or fix AWS_PROFILE"
            )
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "301"):
            raise StoreError(
                f"bucket {self.bucket} is not in {self._region()}: set AWS_REGION to the bucket's region"
            )
        if code.startswith("KMS."):
            raise StoreError(
                f"store {self.uri}: S3 could not use KMS key {self.kms_key_id or '(the default)'} for {name} "
                f"({code}: {_message(exc)}): check the key exists, is enabled and drkit may use it"
            )
        target = f" {name}" if name else ""
        raise StoreError(f"store {self.uri}: {operation}{target} failed: {code}: {_message(exc)}")

    def _probe(self, name: str) -> bool:
        """Whether `name` exists; StoreError if the bucket does not.

        One ListObjectsV2 (Prefix=key, MaxKeys=1) answers both questions: a key sorts before
        every longer key it prefixes, so it is the first result exactly when it exists. Unlike
        HeadObject it tells a missing bucket (NoSuchBucket) from a missing key (a bare 404), and
        it needs only s3:ListBucket, which listing needs anyway.
        """
        key = self._key(name)
        try:
            resp = self._client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "ListObjectsV2", name)
        return any(obj.get("Key") == key for obj in resp.get("Contents", []))

    def _refuse_overwrite(self, name: str) -> NoReturn:
        raise StoreError(f"store {self.uri}: {name} exists already; refusing to overwrite a backup")

    # -- BackupStore ------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        key = self._key(name)
        # Checked before any data is sent: a pg_dump must not run to the end only to be refused.
        if self._probe(name):
            self._refuse_overwrite(name)
        upload = _Upload(self, name, key)
        try:
            yield upload.sink  # type: ignore[misc]  # a RawIOBase; the Protocol says BinaryIO
            upload.commit()
        except BaseException:
            # Ctrl-C, SIGTERM (drkit.Interrupted), a failed part or a failed commit alike.
            upload.abort()
            raise

    def open(self, name: str) -> BinaryIO:
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=self._key(name))
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "GetObject", name)
        raw = _BodyReader(resp["Body"], self, name)
        return io.BufferedReader(raw, buffer_size=1 << 20)

    def list(self, prefix: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        names: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root + prefix):
                for obj in page.get("Contents", []):
                    key = str(obj["Key"])
                    if not key.endswith("/"):  # "folder" placeholders that consoles create
                        names.append(key[len(root) :])
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "ListObjectsV2")
        return sorted(names)

    def size(self, name: str) -> int:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                self._probe(name)  # HeadObject says 404 for a missing bucket too: name the right one
            self._fail(exc, "HeadObject", name)
        except BotoCoreError as exc:
            self._fail(exc, "HeadObject", name)
        return int(head["ContentLength"])

    def delete(self, name: str) -> None:
        """Remove an object; a missing one is no error (as in FileStore). In a versioned bucket
        this leaves a delete marker and the older versions, as S3 always does."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "DeleteObject", name)

    def pending_uploads(self) -> builtins.list[str]:
        """Names with multipart uploads that were never completed nor aborted (writers killed
        with SIGKILL); they are invisible as backups but billed until aborted."""
        root = f"{self.prefix}/" if self.prefix else ""
        names: builtins.list[str] = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root):
                names.extend(str(u["Key"])[len(root) :] for u in page.get("Uploads", []))
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "ListMultipartUploads")
        return sorted(names)

    def _sse_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args


class _Upload:
    """One object being written: a buffer of at most one part, and the multipart upload once
    the object outgrows a single part."""

    def __init__(self, store: S3Store, name: str, key: str) -> None:
        self.store = store
        self.name = name
        self.key = key
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        client = store._client
        # Mirror s3transfer: with botocore's default checksum policy, every part carries a CRC32
        # and the completion lists them, so S3 verifies each part end to end.
        config = getattr(getattr(client, "meta", None), "config", None)
        self.checksum = getattr(config, "request_checksum_calculation", None) == "when_supported"
        self.sink = _PartSink(self)

    def _args(self) -> dict[str, Any]:
        return {"Bucket": self.store.bucket, "Key": self.key}

    def upload_part(self, data: bytearray) -> None:
        store, client = self.store, self.store._client
        if len(self.parts) >= MAX_PARTS:
            raise StoreError(
                f"store {store.uri}: {self.name} is larger than {MAX_PARTS} parts of "
                f"{store.part_size} bytes: raise the store's part size"
            )
        extra: dict[str, Any] = {"ChecksumAlgorithm": "CRC32"} if self.checksum else {}
        try:
            if self.upload_id is None:
                resp = client.create_multipart_upload(**self._args(), **store._sse_args(), **extra)
                self.upload_id = str(resp["UploadId"])
            number = len(self.parts) + 1
            resp = client.upload_part(
                **self._args(), UploadId=self.upload_id, PartNumber=number, Body=data, **extra
            )
        except (ClientError, BotoCoreError) as exc:
            store._fail(exc, "UploadPart" if self.upload_id else "CreateMultipartUpload", self.name)
        part = {"PartNumber": number, "ETag": resp["ETag"]}
        if self.checksum and "ChecksumCRC32" in resp:
            part["ChecksumCRC32"] = resp["ChecksumCRC32"]
        self.parts.append(part)

    def commit(self) -> None:
        store, client = self.store, self.store._client
        tail = self.sink.take()
        operation = "PutObject"
        try:
            if self.upload_id is None:
                # If-None-Match makes the write itself refuse an object that appeared meanwhile.
                client.put_object(**self._args(), Body=tail, IfNoneMatch="*", **store._sse_args())
                return
            if tail:
                self.upload_part(tail)
            operation = "CompleteMultipartUpload"
            client.complete_multipart_upload(
                **self._args(),
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if _code(exc) in _EXISTS_CODES:
                store._refuse_overwrite(self.name)
            store._fail(exc, operation, self.name)
        except BotoCoreError as exc:
            store._fail(exc, operation, self.name)

    def abort(self) -> None:
        """Drop the buffer and abort the multipart upload (S3 then frees the stored parts)."""
        self.sink.take()
        if self.upload_id is None:
            return
        # The original error is what the user needs; if the abort fails too, the bucket's
        # AbortIncompleteMultipartUpload lifecycle rule (or `pending_uploads()`) is the safety net.
        with contextlib.suppress(Exception):
            self.store._client.abort_multipart_upload(**self._args(), UploadId=self.upload_id)


class _PartSink(io.RawIOBase):
    """The binary sink a writer yields: copies what it is given into the part buffer and
    uploads each part as soon as it is full, so memory stays at one part whatever the size."""

    def __init__(self, upload: _Upload) -> None:
        super().__init__()
        self._upload = upload
        self._size = upload.store.part_size
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        if self.closed:
            raise ValueError("write to a closed S3 writer")
        view = memoryview(b).cast("B")
        pos, total = 0, len(view)
        while pos < total:
            take = view[pos : pos + self._size - len(self._buf)]
            self._buf += take  # a copy: callers reuse their buffers
            pos += len(take)
            if len(self._buf) >= self._size:
                self._upload.upload_part(self.take())
        return total

    def take(self) -> bytearray:
        """Hand over the buffered bytes and start an empty buffer."""
        data, self._buf = self._buf, bytearray()
        return data


class _BodyReader(io.RawIOBase):
    """A botocore StreamingBody as a raw stream: readinto works (so io.BufferedReader gives
    read(n)), the length S3 announced is checked at the end, and close() closes the connection."""

    def __init__(self, body: Any, store: S3Store, name: str) -> None:
        super().__init__()
        self._body = body
        self._store = store
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            return int(self._body.readinto(b))
        except BotoCoreError as exc:
            # IncompleteReadError (a truncated body), read timeouts, dropped connections.
            raise StoreError(
                f"store {self._store.uri}: reading {self._name} failed ({exc}); try again"
            ) from None

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()
