"""The thin adapter behind `drkit s3 replicate`: bucket settings, the replication role, backfill copies.

Every call goes through the SessionFactory (the one seam for AWS); clients are made per region
on first use and kept by this object only. Nothing here decides anything: drkit/jobs/s3_replicate.py
reads the current state through these methods, plans, and asks for the changes.

    api = ReplicationApi(factory)
    api.bucket_region("acme-assets-prod")            # "us-east-1", or None if it does not exist
    api.encryption("acme-assets-prod-dr", "us-west-2")
    for obj in api.list_current("acme-assets-prod", "us-east-1"): ...
    api.copy(obj, source=..., replica=..., region="us-west-2", key_arn=...)

What it guarantees:
- every read says "absent" (None) for the S3/IAM "not configured" answers and raises one line
  (DrkitError, naming the IAM action to grant on AccessDenied) for anything else;
- listings are paginated and yield in S3's order (UTF-8 binary order of keys), so two listings
  can be merged in one pass with flat memory;
- copies are server-side (CopyObject, or UploadPartCopy above `multipart_threshold`) and always
  carry SSE-KMS with the replica key; a failed multipart copy is aborted, never left billed.

Declared permissions: IAM_ACTIONS below, and each operation in drkit/aws/permissions.py.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from drkit.aws.session import SessionFactory
from drkit.errors import DrkitError

# Declared permissions (ARCHITECTURE.md): `drkit iam-policy --for s3-setup` includes these.
IAM_ACTIONS = (
    "s3:GetBucketLocation",
    "s3:GetBucketVersioning",
    "s3:PutBucketVersioning",
    "s3:GetEncryptionConfiguration",
    "s3:PutEncryptionConfiguration",
    "s3:GetBucketPublicAccessBlock",
    "s3:PutBucketPublicAccessBlock",
    "s3:CreateBucket",
    "s3:GetReplicationConfiguration",
    "s3:PutReplicationConfiguration",
    "s3:ListBucket",
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListJobs",
    "s3:CreateJob",
    "iam:GetRole",
    "iam:CreateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:PassRole",
    "kms:DescribeKey",
    "kms:GenerateDataKey",
    "kms:Decrypt",
)

FIVE_GB = 5 * 1024**3  # CopyObject's limit; above it only a multipart copy works
DEFAULT_PART_SIZE = 512 * 1024**2  # 512 MiB parts: a 5 TB object stays under 10,000 parts
MIN_PART_SIZE = 5 * 1024**2

# "Not configured" answers: the setting is absent, which is a state, not an error.
_ABSENT = frozenset(
    {
        "ServerSideEncryptionConfigurationNotFoundError",
        "NoSuchPublicAccessBlockConfiguration",
        "ReplicationConfigurationNotFoundError",
        "NoSuchEntity",
        "NoSuchBucket",
    }
)
# What an endpoint without S3 Batch Operations answers (moto: a bare 404; others: NotImplemented).
_UNAVAILABLE = frozenset({"404", "NotFound", "NotImplemented", "UnknownOperation", "UnknownOperationException",
                          "InvalidAction", "MethodNotAllowed", "501", "405"})
# The IAM action each refused call needed, to name it in the one-line error.
_ACTION_OF = {
    "GetBucketLocation": "s3:GetBucketLocation",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "PutBucketVersioning": "s3:PutBucketVersioning",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketReplication": "s3:GetReplicationConfiguration",
    "PutBucketReplication": "s3:PutReplicationConfiguration and iam:PassRole",
    "ListObjectsV2": "s3:ListBucket",
    "CopyObject": "s3:GetObject on the source, s3:PutObject on the replica and KMS use of both keys",
    "UploadPartCopy": "s3:GetObject on the source, s3:PutObject on the replica and KMS use of both keys",
}
BPA_KEYS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


@dataclass(frozen=True)
class Encryption:
    """A bucket's default encryption: `algorithm` AES256 or aws:kms (aws:kms:dsse), its key if any."""

    algorithm: str
    key: str | None
    bucket_key: bool


@dataclass(frozen=True)
class Role:
    arn: str
    trust: dict[str, Any]


@dataclass(frozen=True)
class ObjectInfo:
    """A current object as ListObjectsV2 reports it."""

    key: str
    size: int
    etag: str


def code_of(exc: ClientError) -> str:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ("AccessDenied", "AccessDeniedException", "403") or status == 403:
        return "AccessDenied"
    return code


def _message(exc: ClientError) -> str:
    text = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
    return (text[:200] + "...") if len(text) > 200 else (text or code_of(exc))


def failure(exc: ClientError | BotoCoreError, doing: str) -> DrkitError:
    """One line: what failed, and what to do (for AccessDenied: the IAM action to grant)."""
    if isinstance(exc, BotoCoreError):
        return DrkitError(f"cannot {doing}: {exc}")
    code = code_of(exc)
    if code == "AccessDenied":
        action = _ACTION_OF.get(exc.operation_name) or (
            f"iam:{exc.operation_name}" if exc.operation_name else "the action"
        )
        return DrkitError(
            f"access denied: cannot {doing}; grant {action} to drkit's role "
            "(`drkit iam-policy --for s3-setup` prints all it needs)"
        )
    return DrkitError(f"cannot {doing}: {code}: {_message(exc)}")


def _policy_dict(document: Any) -> dict[str, Any]:
    """IAM returns policy documents URL-encoded on the wire; boto3 usually decodes them already."""
    if isinstance(document, dict):
        return document
    return dict(json.loads(unquote(str(document))))


class ReplicationApi:
    """S3, IAM, KMS and S3 Control calls for one replication set-up. Nothing is cached but clients."""

    def __init__(self, factory: SessionFactory) -> None:
        self.factory = factory
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str | None = None) -> Any:
        """One client per (service, region), made on first use (boto3 clients are thread-safe)."""
        with self._lock:
            if (service, region) not in self._clients:
                self._clients[(service, region)] = self.factory.client(service, region=region)
            return self._clients[(service, region)]

    def _call(self, service: str, region: str | None, op: str, doing: str, **kwargs: Any) -> Any:
        """The call's response, None for a "not configured" answer, or a one-line DrkitError."""
        try:
            return getattr(self.client(service, region), op)(**kwargs)
        except ClientError as exc:
            if code_of(exc) in _ABSENT:
                return None
            raise failure(exc, doing) from None
        except BotoCoreError as exc:
            raise failure(exc, doing) from None

    # -- buckets ---------------------------------------------------------------------------------

    def bucket_region(self, bucket: str, via_region: str | None = None) -> str | None:
        """The bucket's region, or None if it does not exist (an empty LocationConstraint is us-east-1)."""
        got = self._call("s3", via_region, "get_bucket_location", f"look up bucket {bucket}", Bucket=bucket)
        if got is None:
            return None
        return str(got.get("LocationConstraint") or "us-east-1")

    def versioning(self, bucket: str, region: str) -> str | None:
        """Enabled | Suspended | None (never enabled)."""
        got = self._call("s3", region, "get_bucket_versioning", f"read versioning of {bucket}", Bucket=bucket)
        status = (got or {}).get("Status")
        return str(status) if status else None

    def encryption(self, bucket: str, region: str) -> Encryption | None:
        got = self._call("s3", region, "get_bucket_encryption", f"read default encryption of {bucket}",
                         Bucket=bucket)
        rules = ((got or {}).get("ServerSideEncryptionConfiguration") or {}).get("Rules") or []
        for rule in rules:
            default = rule.get("ApplyServerSideEncryptionByDefault") or {}
            if default.get("SSEAlgorithm"):
                return Encryption(
                    algorithm=str(default["SSEAlgorithm"]),
                    key=str(default["KMSMasterKeyID"]) if default.get("KMSMasterKeyID") else None,
                    bucket_key=bool(rule.get("BucketKeyEnabled", False)),
                )
        return None

    def public_access_block(self, bucket: str, region: str) -> dict[str, bool] | None:
        got = self._call("s3", region, "get_public_access_block", f"read Block Public Access of {bucket}",
                         Bucket=bucket)
        if got is None:
            return None
        conf = got.get("PublicAccessBlockConfiguration") or {}
        return {k: bool(conf.get(k, False)) for k in BPA_KEYS}

    def replication(self, bucket: str, region: str) -> dict[str, Any] | None:
        got = self._call("s3", region, "get_bucket_replication", f"read the replication rules of {bucket}",
                         Bucket=bucket)
        return None if got is None else dict(got.get("ReplicationConfiguration") or {})

    def create_bucket(self, bucket: str, region: str) -> None:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":  # us-east-1 refuses its own name as a LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client("s3", region).create_bucket(**kwargs)
        except ClientError as exc:
            # Our own bucket from an interrupted run: fine. Someone else's name: not.
            if code_of(exc) != "BucketAlreadyOwnedByYou":
                raise failure(exc, f"create bucket {bucket} in {region}") from None
        except BotoCoreError as exc:
            raise failure(exc, f"create bucket {bucket} in {region}") from None

    def enable_versioning(self, bucket: str, region: str) -> None:
        self._call("s3", region, "put_bucket_versioning", f"enable versioning on {bucket}", Bucket=bucket,
                   VersioningConfiguration={"Status": "Enabled"})

    def put_encryption(self, bucket: str, region: str, key_arn: str) -> None:
        rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                "BucketKeyEnabled": True}
        self._call("s3", region, "put_bucket_encryption", f"set default encryption of {bucket}", Bucket=bucket,
                   ServerSideEncryptionConfiguration={"Rules": [rule]})

    def block_public_access(self, bucket: str, region: str) -> None:
        self._call("s3", region, "put_public_access_block", f"block public access to {bucket}", Bucket=bucket,
                   PublicAccessBlockConfiguration=dict.fromkeys(BPA_KEYS, True))

    def put_replication(self, bucket: str, region: str, config: dict[str, Any]) -> None:
        self._call("s3", region, "put_bucket_replication", f"set the replication rule of {bucket}", Bucket=bucket,
                   ReplicationConfiguration=config)

    # -- IAM and KMS -------------------------------------------------------------------------------

    def role(self, name: str) -> Role | None:
        got = self._call("iam", None, "get_role", f"look up IAM role {name}", RoleName=name)
        if got is None:
            return None
        return Role(arn=str(got["Role"]["Arn"]), trust=_policy_dict(got["Role"].get("AssumeRolePolicyDocument")))

    def create_role(self, name: str, trust: dict[str, Any], description: str) -> str:
        try:
            got = self.client("iam").create_role(
                RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), Description=description,
                Tags=[{"Key": "managed-by", "Value": "drkit"}],
            )
            return str(got["Role"]["Arn"])
        except ClientError as exc:
            if code_of(exc) == "EntityAlreadyExists":  # an interrupted run made it: ours, by name
                found = self.role(name)
                if found is not None:
                    return found.arn
            raise failure(exc, f"create IAM role {name}") from None
        except BotoCoreError as exc:
            raise failure(exc, f"create IAM role {name}") from None

    def update_trust(self, name: str, trust: dict[str, Any]) -> None:
        self._call("iam", None, "update_assume_role_policy", f"update the trust policy of IAM role {name}",
                   RoleName=name, PolicyDocument=json.dumps(trust))

    def role_policy(self, role: str, policy: str) -> dict[str, Any] | None:
        got = self._call("iam", None, "get_role_policy", f"read policy {policy} of IAM role {role}",
                         RoleName=role, PolicyName=policy)
        return None if got is None else _policy_dict(got["PolicyDocument"])

    def put_role_policy(self, role: str, policy: str, document: dict[str, Any]) -> None:
        self._call("iam", None, "put_role_policy", f"write policy {policy} of IAM role {role}", RoleName=role,
                   PolicyName=policy, PolicyDocument=json.dumps(document))

    def key_arn(self, key: str, region: str) -> str | None:
        """The ARN of a key id, alias or ARN in `region`; None if there is no such key."""
        try:
            got = self.client("kms", region).describe_key(KeyId=key)
        except ClientError as exc:
            if code_of(exc) in ("NotFoundException", "NotFound"):
                return None
            raise failure(exc, f"look up KMS key {key} in {region}") from None
        except BotoCoreError as exc:
            raise failure(exc, f"look up KMS key {key} in {region}") from None
        return str(got["KeyMetadata"]["Arn"])

    # -- S3 Batch Replication ---------------------------------------------------------------------

    def account_id(self) -> str:
        got = self._call("sts", None, "get_caller_identity", "find the AWS account id")
        return str(got["Account"])

    def batch_available(self, account: str, region: str) -> bool:
        """Whether the endpoint offers S3 Batch Operations (moto and most S3-compatibles do not)."""
        client = self.client("s3control", region)
        host = urlsplit(str(client.meta.endpoint_url)).hostname or ""
        if not host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
            # Only AWS has Batch Operations. And with an endpoint override (AWS_ENDPOINT_URL)
            # botocore would prefix the host with the account id ("1234....127.0.0.1"), a name
            # that takes seconds to fail to resolve: do not even ask.
            return False
        try:
            client.list_jobs(AccountId=account, MaxResults=1)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code_of(exc) in _UNAVAILABLE or status in (404, 405, 501):
                return False
            raise failure(exc, f"list S3 Batch Operations jobs in {region}") from None
        except BotoCoreError:
            return False
        return True

    def create_batch_job(self, account: str, region: str, request: dict[str, Any]) -> str | None:
        """Start a Batch Replication job; its JobId, or None if the endpoint turns out not to offer it."""
        try:
            got = self.client("s3control", region).create_job(AccountId=account, **request)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code_of(exc) in _UNAVAILABLE or status in (404, 405, 501):
                return None
            raise failure(exc, f"start an S3 Batch Replication job in {region}") from None
        return str(got["JobId"])

    # -- backfill -----------------------------------------------------------------------------------

    def list_current(self, bucket: str, region: str) -> Iterator[ObjectInfo]:
        """Every current object of `bucket`, in S3's key order, one page (1,000 keys) at a time."""
        pages = self.client("s3", region).get_paginator("list_objects_v2").paginate(Bucket=bucket)
        try:
            for page in pages:
                for item in page.get("Contents", []) or []:
                    yield ObjectInfo(key=str(item["Key"]), size=int(item["Size"]), etag=str(item.get("ETag", "")))
        except ClientError as exc:
            raise failure(exc, f"list the objects of {bucket}") from None
        except BotoCoreError as exc:
            raise failure(exc, f"list the objects of {bucket}") from None

    def copy(
        self,
        obj: ObjectInfo,
        *,
        source: str,
        replica: str,
        region: str,
        key_arn: str,
        multipart_threshold: int = FIVE_GB,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        """Copy the current version of `obj` from `source` into `replica`, server-side, under SSE-KMS."""
        doing = f"copy {obj.key!r} from {source} into {replica}"
        try:
            if obj.size > multipart_threshold:
                self._multipart_copy(obj, source, replica, region, key_arn, part_size)
                return
            self.client("s3", region).copy_object(
                Bucket=replica, Key=obj.key, CopySource={"Bucket": source, "Key": obj.key},
                MetadataDirective="COPY", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn,
                BucketKeyEnabled=True,
            )
        except ClientError as exc:
            raise failure(exc, doing) from None
        except BotoCoreError as exc:
            raise failure(exc, doing) from None

    def _multipart_copy(
        self, obj: ObjectInfo, source: str, replica: str, region: str, key_arn: str, part_size: int
    ) -> None:
        s3 = self.client("s3", region)
        part_size = max(part_size, MIN_PART_SIZE, -(-obj.size // 10_000))  # S3: at most 10,000 parts
        # A multipart upload cannot copy metadata by directive: carry it over by hand.
        head = s3.head_object(Bucket=source, Key=obj.key)
        extra = {k: head[k] for k in ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage",
                                      "CacheControl", "Metadata") if head.get(k)}
        upload = s3.create_multipart_upload(Bucket=replica, Key=obj.key, ServerSideEncryption="aws:kms",
                                            SSEKMSKeyId=key_arn, BucketKeyEnabled=True, **extra)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, obj.size, part_size), start=1):
                end = min(start + part_size, obj.size) - 1
                got = s3.upload_part_copy(
                    Bucket=replica, Key=obj.key, UploadId=upload, PartNumber=number,
                    CopySource={"Bucket": source, "Key": obj.key}, CopySourceRange=f"bytes={start}-{end}",
                    CopySourceIfMatch=obj.etag,  # the object changed mid-copy: fail, never mix versions
                )
                parts.append({"PartNumber": number, "ETag": got["CopyPartResult"]["ETag"]})
            s3.complete_multipart_upload(Bucket=replica, Key=obj.key, UploadId=upload,
                                         MultipartUpload={"Parts": parts})
        except BaseException:
            # The original error is the one to report; a lifecycle rule sweeps what abort leaves.
            with contextlib.suppress(ClientError, BotoCoreError):
                s3.abort_multipart_upload(Bucket=replica, Key=obj.key, UploadId=upload)
            raise
