"""Declared permissions: every AWS operation drkit calls, the IAM actions it needs, and who calls it.

Cloud Custodian's habit (ARCHITECTURE.md): permissions are data next to the code, not a wiki page.
`OPERATIONS` maps each botocore operation drkit calls to the IAM actions that call needs; `ROLES`
says which operations each drkit job performs; `drkit iam-policy --for ROLE` prints the union as
a least-privilege policy. Tests install `install_guard` on their clients, so an adapter that starts
calling an operation nobody declared fails its tests instead of failing in production with
AccessDenied at 3 a.m.

One operation can need several actions: the first is the action the API call itself is authorised
as (AWS's own name for it, e.g. ListObjectsV2 is `s3:ListBucket`); the rest are what AWS checks on
the side, e.g. CopyDBSnapshot with a KmsKeyId also needs `kms:CreateGrant` and `kms:DescribeKey`
on the destination key, and any RDS create/copy/restore that carries Tags needs
`rds:AddTagsToResource`.

The roles:
- scheduler: the nightly and weekly work (`drkit scheduler run`, `backup run`, `prune`, `plan`,
  `backup list`, `posture`): snapshots, cross-region copies, tags, prune; the PostgreSQL engine's
  backups in an S3 store with KMS data keys; SNS notifications; STS AssumeRole for `aws.role_arn`.
  `posture --with-aws` reads RDS settings and the buckets' versioning and replication.
  A scheduler that also runs drills (a drill with `schedule:`) needs the drill policy as well
  (`--for all`, or attach both).
- drill: `drkit drill run` and `drill cleanup`: find the recovery point, restore it into an
  isolated VPC that drkit builds and tears down (EC2 VPC, subnets, security group, DB subnet
  group), delete what it created; read PostgreSQL backups from S3 and unwrap their KMS data keys.
- runbooks: incident restores (`drkit restore rds|postgres`, `drkit verify`, the runbooks that
  call them): restore a snapshot or a point in time into a named target in the existing network.
  Deliberately no EC2 at all, no DeleteDBInstance and no subnet-group changes: during an incident
  drkit creates the new database and never removes anything; tearing down is a human decision.
- s3-setup: `drkit s3 replicate`, run once by an administrator per bucket: versioning, the replica
  bucket (create, Block Public Access, default SSE-KMS), the replication IAM role and its inline
  policy (IAM writes and iam:PassRole, which no other role has), the replication rule, and the
  backfill (S3 Batch Replication through s3control, or server-side copies). Narrow IAM to
  "arn:aws:iam::*:role/drkit-s3-replication-*" and PassRole with "iam:PassedToService":
  "s3.amazonaws.com" / "batchoperations.s3.amazonaws.com".

What a user may tighten (the printed policy uses Resource "*" so that it works for every
configuration; `drkit iam-policy` knows no bucket or account):
- RDS writes to drkit's own names, e.g. snapshots "arn:aws:rds:*:*:snapshot:drkit-*" and
  "arn:aws:rds:*:*:cluster-snapshot:drkit-*" for Create/Copy/Delete*Snapshot and AddTagsToResource;
  DeleteDBInstance to "arn:aws:rds:*:*:db:drkit-drill-*";
- KMS to the configured keys ("arn:aws:kms:us-west-2:123456789012:key/..."), with the condition
  "kms:GrantIsForAWSResource": "true" on CreateGrant so only RDS can use the grants;
- S3 to the store's bucket ("arn:aws:s3:::acme-backups" for ListBucket and
  ListBucketMultipartUploads, "arn:aws:s3:::acme-backups/drkit/*" for the object actions);
- SNS to the configured topic ARNs; STS AssumeRole to the configured `role_arn`;
- EC2 deletes to resources tagged by drkit ("aws:ResourceTag/managed-by": "drkit").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

Operation = tuple[str, str]  # (botocore service name, botocore operation name)

_COPY_KMS = ("kms:CreateGrant", "kms:DescribeKey")  # RDS uses the destination key through a grant
_TAGS = ("rds:AddTagsToResource",)  # create/copy/restore with Tags (or CopyTags)


def _same(service: str, ops: Iterable[str]) -> dict[Operation, tuple[str, ...]]:
    """Operations whose IAM action has the operation's own name and nothing on the side."""
    return {(service, op): (f"{service}:{op}",) for op in ops}


_RDS_READ = (
    "DescribeDBInstances",
    "DescribeDBClusters",
    "DescribeDBSnapshots",
    "DescribeDBClusterSnapshots",
    "DescribeDBInstanceAutomatedBackups",
    "ListTagsForResource",
)
_EC2_ISOLATION = (
    "CreateVpc",
    "DeleteVpc",
    "CreateSubnet",
    "DeleteSubnet",
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    "DescribeVpcs",
    "DescribeSubnets",
    "DescribeSecurityGroups",
    "CreateTags",
    "DescribeAvailabilityZones",
    "AuthorizeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
)

_operations: dict[Operation, tuple[str, ...]] = {
    **_same("rds", _RDS_READ),
    **_same("rds", ("AddTagsToResource", "DeleteDBSnapshot", "DeleteDBClusterSnapshot")),
    **_same("rds", ("DeleteDBInstance", "DescribeDBSubnetGroups", "DeleteDBSubnetGroup", "ModifyDBInstance")),
    ("rds", "CreateDBSnapshot"): ("rds:CreateDBSnapshot", *_TAGS),
    ("rds", "CreateDBClusterSnapshot"): ("rds:CreateDBClusterSnapshot", *_TAGS),
    ("rds", "CopyDBSnapshot"): ("rds:CopyDBSnapshot", *_COPY_KMS, *_TAGS),
    ("rds", "CopyDBClusterSnapshot"): ("rds:CopyDBClusterSnapshot", *_COPY_KMS, *_TAGS),
    # Restoring an encrypted snapshot: RDS creates a grant on the snapshot's key.
    ("rds", "RestoreDBInstanceFromDBSnapshot"): ("rds:RestoreDBInstanceFromDBSnapshot", *_COPY_KMS, *_TAGS),
    ("rds", "RestoreDBInstanceToPointInTime"): ("rds:RestoreDBInstanceToPointInTime", *_COPY_KMS, *_TAGS),
    ("rds", "CreateDBSubnetGroup"): ("rds:CreateDBSubnetGroup", *_TAGS),
    **_same("kms", ("DescribeKey", "GenerateDataKey", "Decrypt", "CreateGrant")),
    ("sts", "AssumeRole"): ("sts:AssumeRole",),
    # AWS answers GetCallerIdentity for any valid credentials, whatever the policies say.
    ("sts", "GetCallerIdentity"): (),
    # S3 authorises several API calls under one IAM action (AWS's S3 action table).
    ("s3", "PutObject"): ("s3:PutObject",),
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    ("s3", "GetObject"): ("s3:GetObject",),
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "DeleteObject"): ("s3:DeleteObject",),
    ("s3", "AbortMultipartUpload"): ("s3:AbortMultipartUpload",),
    ("s3", "ListMultipartUploads"): ("s3:ListBucketMultipartUploads",),
    # S3 point-in-time restore (aws/s3versions.py). A call naming a VersionId is authorised as
    # s3:GetObjectVersion (HeadObject's own entry above says s3:GetObject: the restore gets
    # GetObjectVersion through CopyObject's); a copy keeps the source's tags (tagging actions)
    # and its SSE-KMS (S3 decrypts the source and asks KMS for the copy's data key). Delete
    # markers need s3:DeleteObject only; nothing here needs s3:DeleteObjectVersion.
    ("s3", "ListObjectVersions"): ("s3:ListBucketVersions",),
    ("s3", "GetBucketVersioning"): ("s3:GetBucketVersioning",),
    ("s3", "GetBucketLocation"): ("s3:GetBucketLocation",),
    ("s3", "GetBucketReplication"): ("s3:GetReplicationConfiguration",),
    ("s3", "CopyObject"): (
        "s3:PutObject", "s3:GetObjectVersion", "s3:GetObjectVersionTagging", "s3:PutObjectTagging",
        "kms:Decrypt", "kms:GenerateDataKey",
    ),
    ("s3", "UploadPartCopy"): ("s3:PutObject", "s3:GetObjectVersion", "kms:Decrypt", "kms:GenerateDataKey"),
    ("sns", "Publish"): ("sns:Publish",),
    **_same("ec2", _EC2_ISOLATION),
    # `drkit s3 replicate` (aws/s3repl.py). PutBucketReplication hands S3 the replication role
    # (iam:PassRole); S3 Batch Operations (s3control) are authorised as s3:* actions, and
    # CreateJob passes its role too. Encrypting with a KMS key by default needs no KMS action
    # of the caller; the copies do (CopyObject's entry above).
    ("s3", "CreateBucket"): ("s3:CreateBucket",),
    ("s3", "PutBucketVersioning"): ("s3:PutBucketVersioning",),
    ("s3", "GetBucketEncryption"): ("s3:GetEncryptionConfiguration",),
    ("s3", "PutBucketEncryption"): ("s3:PutEncryptionConfiguration",),
    ("s3", "GetPublicAccessBlock"): ("s3:GetBucketPublicAccessBlock",),
    ("s3", "PutPublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "PutBucketReplication"): ("s3:PutReplicationConfiguration", "iam:PassRole"),
    ("s3control", "ListJobs"): ("s3:ListJobs",),
    ("s3control", "CreateJob"): ("s3:CreateJob", "iam:PassRole"),
    **_same("iam", ("GetRole", "CreateRole", "UpdateAssumeRolePolicy", "GetRolePolicy", "PutRolePolicy")),
}

# Never mutated: a test that wants an undeclared operation must not be able to add it at runtime.
OPERATIONS: Mapping[Operation, tuple[str, ...]] = MappingProxyType(_operations)


def _ops(service: str, names: Iterable[str]) -> frozenset[Operation]:
    return frozenset((service, name) for name in names)


_S3_STORE_WRITE = _ops(
    "s3",
    (
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "DeleteObject",
        "ListMultipartUploads",
    ),
)
_S3_STORE_READ = _ops("s3", ("GetObject", "HeadObject", "ListObjectsV2"))
_STS = _ops("sts", ("AssumeRole", "GetCallerIdentity"))
# `drkit s3 restore` (incident restores): copies of old versions on top, delete markers.
_S3_RESTORE = _ops(
    "s3",
    (
        "GetBucketLocation",
        "GetBucketVersioning",
        "GetBucketReplication",
        "ListObjectVersions",
        "HeadObject",
        "CopyObject",
        "DeleteObject",
        "CreateMultipartUpload",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    ),
)
_RESTORE = _ops(
    "rds",
    ("RestoreDBInstanceFromDBSnapshot", "RestoreDBInstanceToPointInTime", "ModifyDBInstance", "AddTagsToResource"),
)

ROLES: Mapping[str, frozenset[Operation]] = MappingProxyType(
    {
        "scheduler": _ops("rds", _RDS_READ)
        | _ops(
            "rds",
            (
                "CreateDBSnapshot",
                "CreateDBClusterSnapshot",
                "CopyDBSnapshot",
                "CopyDBClusterSnapshot",
                "DeleteDBSnapshot",
                "DeleteDBClusterSnapshot",
                "AddTagsToResource",
            ),
        )
        | _ops("kms", ("DescribeKey", "CreateGrant", "GenerateDataKey", "Decrypt"))
        | _S3_STORE_WRITE
        | _S3_STORE_READ
        | _ops("sns", ("Publish",))
        | _ops("s3", ("GetBucketVersioning", "GetBucketReplication"))  # posture's facts
        | _STS,
        "drill": _ops("rds", _RDS_READ)
        | _RESTORE
        | _ops("rds", ("DeleteDBInstance", "DescribeDBSubnetGroups", "CreateDBSubnetGroup", "DeleteDBSubnetGroup"))
        | _ops("ec2", _EC2_ISOLATION)
        | _ops("kms", ("DescribeKey", "CreateGrant", "Decrypt"))
        | _S3_STORE_READ
        | _STS,
        "runbooks": _ops("rds", _RDS_READ)
        | _RESTORE
        | _ops("rds", ("DescribeDBSubnetGroups",))
        | _ops("kms", ("DescribeKey", "CreateGrant", "Decrypt"))
        | _S3_STORE_READ
        | _S3_RESTORE
        | _STS,
        # `drkit s3 replicate`: an administrator's one-off set-up, not a job the scheduler or an
        # incident runbook does, so it has its own role: it creates buckets and an IAM role and
        # hands that role to S3, which no other drkit role may do.
        "s3-setup": _ops(
            "s3",
            (
                "GetBucketLocation", "GetBucketVersioning", "PutBucketVersioning", "CreateBucket",
                "GetBucketEncryption", "PutBucketEncryption", "GetPublicAccessBlock", "PutPublicAccessBlock",
                "GetBucketReplication", "PutBucketReplication", "ListObjectsV2", "HeadObject", "CopyObject",
                "CreateMultipartUpload", "UploadPartCopy", "CompleteMultipartUpload", "AbortMultipartUpload",
            ),
        )
        | _ops("s3control", ("ListJobs", "CreateJob"))
        | _ops("iam", ("GetRole", "CreateRole", "UpdateAssumeRolePolicy", "GetRolePolicy", "PutRolePolicy"))
        | _ops("kms", ("DescribeKey",))
        | _STS,
    }
)
ROLE_NAMES = (*ROLES, "all")


def operations_for(role: str) -> frozenset[Operation]:
    """The operations `role` performs; "all" is every role's together."""
    if role == "all":
        return frozenset().union(*ROLES.values())
    try:
        return ROLES[role]
    except KeyError:
        raise ValueError(f"unknown drkit role {role!r}: use one of {', '.join(ROLE_NAMES)}") from None


def actions_for(role: str) -> list[str]:
    """The IAM actions `role` needs, sorted and without duplicates."""
    return sorted({action for op in operations_for(role) for action in OPERATIONS[op]})


_SERVICE_SIDS = {"ec2": "Ec2", "kms": "Kms", "rds": "Rds", "s3": "S3", "sns": "Sns", "sts": "Sts", "iam": "Iam"}


def policy_document(role: str) -> dict[str, Any]:
    """The least-privilege IAM policy for `role`: one Allow statement per service, Resource "*".

        {"Version": "2012-10-17", "Statement": [
          {"Sid": "DrkitKms", "Effect": "Allow", "Action": ["kms:CreateGrant", ...], "Resource": "*"}, ...]}

    See the module docstring for the resources a user may narrow it to.
    """
    by_service: dict[str, list[str]] = {}
    for action in actions_for(role):
        by_service.setdefault(action.split(":", 1)[0], []).append(action)
    statements = [
        {
            "Sid": f"Drkit{_SERVICE_SIDS.get(service, service.title().replace('-', ''))}",
            "Effect": "Allow",
            "Action": actions,
            "Resource": "*",
        }
        for service, actions in sorted(by_service.items())
    ]
    return {"Version": "2012-10-17", "Statement": statements}


class UndeclaredCall(AssertionError):
    """A client made an AWS call that OPERATIONS (or the role) does not declare: a bug in drkit."""


_GUARD_ID = "drkit.aws.permissions.guard"


def install_guard(client: Any, role: str | None = None, *, record: list[str] | None = None) -> None:
    """Make `client` refuse, before anything is sent, every call that is not declared.

    Registers a botocore `before-call` handler (on this client only: botocore gives every
    client its own copy of the event hooks). With `role`, the operation must also be in
    ROLES[role]. The error names the operation and what to do; `record`, if given, collects
    the same messages, so a caller can fail a test even when the code under test swallows
    the exception. Installing twice on one client keeps the first guard.
    """
    allowed = OPERATIONS.keys() if role is None else operations_for(role)

    def check(model: Any, **_: Any) -> None:
        op = (model.service_model.service_name, model.name)
        if op in allowed:
            return
        name = f"{op[0]}.{op[1]}"
        if op not in OPERATIONS:
            message = f"{name} is not declared in drkit.aws.permissions.OPERATIONS: declare the IAM actions it needs"
        else:
            message = (
                f"{name} is not in drkit.aws.permissions.ROLES[{role!r}]: add it to the role "
                f"(and so to `drkit iam-policy --for {role}`) or make the call from another role"
            )
        if record is not None:
            record.append(message)
        raise UndeclaredCall(message)

    client.meta.events.register("before-call", check, unique_id=_GUARD_ID)

