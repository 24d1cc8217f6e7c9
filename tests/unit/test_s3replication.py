"""The documents of `drkit s3 replicate` and the comparisons its plan is made of (pure, no AWS)."""

from __future__ import annotations

from drkit.domain.s3replication import (
    canonical,
    config_diff,
    normalise_replication,
    replication_config,
    role_policy,
)

KEY = "arn:aws:kms:us-west-2:123456789012:key/dr"


def test_what_aws_reads_back_equals_what_drkit_wrote_once_normalised() -> None:
    wrote = replication_config("arn:aws:iam::123456789012:role/r", "assets", "dst", KEY, rtc=True)
    read_back = {
        "Role": wrote["Role"],
        "Rules": [
            {
                **wrote["Rules"][0],
                "Filter": {"Prefix": ""},  # how S3 reports "the whole bucket"
                "SourceSelectionCriteria": {
                    "SseKmsEncryptedObjects": {"Status": "Enabled"},
                    "ReplicaModifications": {"Status": "Disabled"},  # a default drkit never set
                },
            }
        ],
    }
    assert normalise_replication(read_back) == normalise_replication(wrote)
    assert config_diff(normalise_replication(read_back), normalise_replication(wrote)) == []


def test_a_changed_key_shows_in_the_plan_as_old_to_new() -> None:
    old = normalise_replication(replication_config("role", "assets", "dst", "old-key", rtc=False))
    new = normalise_replication(replication_config("role", "assets", "dst", KEY, rtc=False))
    assert config_diff(old, new) == [
        f"Rules[0].Destination.EncryptionConfiguration.ReplicaKmsKeyID: old-key -> {KEY}"
    ]


def test_iam_reordering_a_policy_is_not_a_change() -> None:
    policy = role_policy("src", "dst", "us-east-1", "us-west-2", KEY, ["k2", "k1"])
    shuffled = {**policy, "Statement": list(reversed(policy["Statement"]))}
    assert canonical(shuffled) == canonical(policy)
    other = role_policy("src", "dst", "us-east-1", "us-west-2", KEY, ["k1"])
    assert canonical(other) != canonical(policy)
