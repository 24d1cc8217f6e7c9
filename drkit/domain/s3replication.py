"""The documents `drkit s3 replicate` writes and compares: the replication role's trust and
permission policies, the replication rule, and the comparisons that make its plan.

Pure (no boto3): jobs/s3_replicate.py reads what exists, asks this module what should exist
and how the two differ, and applies the difference.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

RTC_MINUTES = 15


def rule_id(name: str) -> str:
    return f"drkit-{name}"


def trust_policy(*, batch: bool = False) -> dict[str, Any]:
    """S3 assumes the role to replicate (and S3 Batch Operations, to run a Batch Replication job)."""
    services: list[str] | str = (
        ["batchoperations.s3.amazonaws.com", "s3.amazonaws.com"] if batch else "s3.amazonaws.com"
    )
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": services}, "Action": "sts:AssumeRole"}]}


def role_policy(source: str, replica: str, src_region: str, dst_region: str, key_arn: str,
                source_keys: Iterable[str], *, batch: bool = False) -> dict[str, Any]:
    """The replication role's least-privilege policy (AWS's "granting permissions" page for replication
    with SSE-KMS): read versions of the source, replicate into the replica, decrypt with the source
    key(s) and encrypt with the replica key, each KMS use only through S3 in that key's region."""
    src_arn, dst_arn = f"arn:aws:s3:::{source}", f"arn:aws:s3:::{replica}"
    statements: list[dict[str, Any]] = [
        {"Sid": "ReadSourceBucket", "Effect": "Allow",
         "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"], "Resource": src_arn},
        {"Sid": "ReadSourceVersions", "Effect": "Allow",
         "Action": ["s3:GetObjectVersionAcl", "s3:GetObjectVersionForReplication", "s3:GetObjectVersionTagging"],
         "Resource": f"{src_arn}/*"},
        {"Sid": "ReplicateIntoReplica", "Effect": "Allow",
         "Action": ["s3:ReplicateDelete", "s3:ReplicateObject", "s3:ReplicateTags"], "Resource": f"{dst_arn}/*"},
    ]
    keys = sorted(set(source_keys))
    if keys:
        statements.append({"Sid": "DecryptSource", "Effect": "Allow", "Action": ["kms:Decrypt"],
                           "Resource": keys if len(keys) > 1 else keys[0],
                           "Condition": {"StringLike": {"kms:ViaService": f"s3.{src_region}.amazonaws.com"}}})
    statements.append({"Sid": "EncryptReplica", "Effect": "Allow", "Action": ["kms:Encrypt"], "Resource": key_arn,
                       "Condition": {"StringLike": {"kms:ViaService": f"s3.{dst_region}.amazonaws.com"}}})
    if batch:  # only when a Batch Replication job will run: it lists the source and starts replication
        statements += [
            {"Sid": "BatchInitiate", "Effect": "Allow", "Action": ["s3:InitiateReplication"],
             "Resource": f"{src_arn}/*"},
            {"Sid": "BatchManifest", "Effect": "Allow", "Action": ["s3:PutInventoryConfiguration"],
             "Resource": src_arn},
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def replication_config(role_arn: str, name: str, replica: str, key_arn: str, *, rtc: bool) -> dict[str, Any]:
    """The one rule drkit writes: the whole bucket, SSE-KMS objects and delete markers, into the DR key."""
    destination: dict[str, Any] = {
        "Bucket": f"arn:aws:s3:::{replica}",
        "EncryptionConfiguration": {"ReplicaKmsKeyID": key_arn},
    }
    if rtc:
        destination["ReplicationTime"] = {"Status": "Enabled", "Time": {"Minutes": RTC_MINUTES}}
        destination["Metrics"] = {"Status": "Enabled", "EventThreshold": {"Minutes": RTC_MINUTES}}
    rule = {
        "ID": rule_id(name),
        "Priority": 1,
        "Filter": {},
        "Status": "Enabled",
        "DeleteMarkerReplication": {"Status": "Enabled"},
        "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
        "Destination": destination,
    }
    return {"Role": role_arn, "Rules": [rule]}


def normalise_replication(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of a replication configuration drkit manages, in one form: AWS reports an empty
    filter as {"Prefix": ""} and may add defaults (e.g. ReplicaModifications Disabled) we do not set."""
    rules = []
    for rule in config.get("Rules", []):
        flt = rule.get("Filter", {}) or {}
        if flt in ({"Prefix": ""}, {"And": {}}):
            flt = {}
        criteria = dict(rule.get("SourceSelectionCriteria") or {})
        if (criteria.get("ReplicaModifications") or {}).get("Status") == "Disabled":
            criteria.pop("ReplicaModifications")
        dest = {k: v for k, v in (rule.get("Destination") or {}).items() if k in
                ("Bucket", "EncryptionConfiguration", "ReplicationTime", "Metrics", "StorageClass", "Account",
                 "AccessControlTranslation")}
        rules.append({"ID": rule.get("ID"), "Priority": rule.get("Priority"), "Filter": flt,
                      "Status": rule.get("Status"), "DeleteMarkerReplication": rule.get("DeleteMarkerReplication"),
                      "SourceSelectionCriteria": criteria or None, "Destination": dest})
    return {"Role": config.get("Role"), "Rules": rules}


def config_diff(current: Any, wanted: Any, path: str = "") -> list[str]:
    """Human-readable differences, `path: old -> new`, for the plan."""
    if isinstance(current, dict) and isinstance(wanted, dict):
        out: list[str] = []
        for k in sorted(set(current) | set(wanted)):
            out += config_diff(current.get(k), wanted.get(k), f"{path}.{k}" if path else k)
        return out
    if isinstance(current, list) and isinstance(wanted, list) and len(current) == len(wanted):
        pairs = enumerate(zip(current, wanted, strict=True))
        return [d for i, (a, b) in pairs for d in config_diff(a, b, f"{path}[{i}]")]
    if current != wanted:
        return [f"{path}: {'missing' if current is None else current} -> {wanted}"]
    return []


def canonical(doc: Any) -> Any:
    """A policy in a form where order does not matter (IAM may reorder lists; a one-item list equals its item)."""
    if isinstance(doc, dict):
        return {k: canonical(v) for k, v in doc.items()}
    if isinstance(doc, list):
        items = sorted((canonical(v) for v in doc), key=repr)
        return items[0] if len(items) == 1 else items
    return doc


def principals_of(trust: dict[str, Any]) -> str:
    found: list[str] = []
    for st in trust.get("Statement", []):
        svc = (st.get("Principal") or {}).get("Service", [])
        found += [svc] if isinstance(svc, str) else list(svc)
    return ", ".join(sorted(found))


def policy_summary(policy: dict[str, Any]) -> str:
    parts = []
    for st in policy.get("Statement", []):
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        res = st.get("Resource")
        res = ", ".join(res) if isinstance(res, list) else res
        parts.append(f"{' '.join(sorted(actions))} on {res}")
    return "; ".join(parts)
