"""drkit.aws.session.SessionFactory: the one seam for AWS, against moto's STS/S3/IAM.

What a user relies on: clients retry the way botocore's standard mode does, honour
AWS_ENDPOINT_URL (so drkit works against any S3/RDS-compatible endpoint or a moto server),
assume the configured role (and only then call STS), and say in one line what to set when
credentials or the profile are missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ClientError
from moto.core import enable_iam_authentication

from drkit.aws.session import IAM_ACTIONS, SessionFactory
from drkit.errors import DrkitError, UsageError

ROLE = "arn:aws:iam::123456789012:role/drkit"


def _count_calls(client: Any, event: str) -> list[str]:
    seen: list[str] = []
    client.meta.events.register(event, lambda model, **_: seen.append(model.name))
    return seen


def test_clients_use_standard_retries_with_the_configured_attempts() -> None:
    client = SessionFactory(region="us-east-1").client("s3")
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 10}
    adaptive = SessionFactory(region="us-east-1", retry_mode="adaptive", max_attempts=4).client("rds")
    assert adaptive.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 4}


def test_a_failing_call_is_attempted_exactly_max_attempts_times(factory: SessionFactory) -> None:
    """max_attempts counts attempts, not retries: 2 means one try and one retry."""
    client = SessionFactory(region="us-east-1", max_attempts=2).client("s3")
    attempts = []

    class Body:
        def stream(self) -> list[bytes]:
            return [b"<Error><Code>InternalError</Code><Message>boom</Message></Error>"]

    def server_error(**_: Any) -> AWSResponse:
        attempts.append(1)
        return AWSResponse("https://s3.amazonaws.com", 500, {}, Body())

    client.meta.events.register("before-send.s3.ListBuckets", server_error)
    with pytest.raises(ClientError):
        client.list_buckets()
    assert len(attempts) == 2


def test_unknown_retry_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="retry mode 'fast': use one of legacy, standard, adaptive"):
        SessionFactory(retry_mode="fast")


def test_aws_endpoint_url_is_honoured_per_service_and_argument_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
    factory = SessionFactory()
    assert factory.client("rds").meta.endpoint_url == "http://127.0.0.1:5000"
    assert factory.client("s3").meta.endpoint_url == "http://127.0.0.1:9000"
    forced = SessionFactory(endpoint_url="http://localhost:4566")
    assert forced.client("s3").meta.endpoint_url == "http://localhost:4566"


def test_without_endpoint_override_clients_talk_to_aws() -> None:
    client = SessionFactory(region="eu-west-1").client("rds")
    assert client.meta.endpoint_url == "https://rds.eu-west-1.amazonaws.com"


def test_region_argument_then_aws_region_then_aws_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert SessionFactory().client("s3").meta.region_name == "eu-central-1"
    assert SessionFactory(region="us-west-2").client("s3").meta.region_name == "us-west-2"
    assert SessionFactory(region="us-west-2").client("s3", region="eu-west-3").meta.region_name == "eu-west-3"
    monkeypatch.delenv("AWS_REGION")
    assert SessionFactory().client("s3").meta.region_name == "ap-south-1"


def test_no_region_anywhere_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(UsageError, match="no AWS region for rds: set AWS_REGION"):
        SessionFactory().client("rds")


def test_without_role_there_is_no_sts_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hidden STS calls: with STS pointed at a closed port (and no moto), building the
    session and its clients still works; with a role, the same setup fails at AssumeRole."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    factory = SessionFactory(region="us-east-1", max_attempts=1)
    creds = factory.session().get_credentials().get_frozen_credentials()
    assert (creds.access_key, creds.token) == ("testing", "testing")
    assert factory.client("s3").meta.region_name == "us-east-1"
    with pytest.raises(DrkitError, match=f"cannot assume role {ROLE}: Could not connect"):
        SessionFactory(region="us-east-1", role_arn=ROLE, max_attempts=1).session()


def test_role_arn_is_assumed_and_clients_use_the_role(moto_aws: None) -> None:
    factory = SessionFactory(region="us-east-1", role_arn=ROLE, session_name="drkit-test")
    creds = factory.session().get_credentials()
    # Refreshable: botocore renews them before they expire (long drills, the scheduler).
    assert isinstance(creds, RefreshableCredentials)
    assert not creds.refresh_needed()
    frozen = creds.get_frozen_credentials()
    assert frozen.access_key != "testing" and frozen.access_key.startswith("ASIA")
    assert frozen.token and frozen.token != "testing"
    identity = factory.client("sts").get_caller_identity()
    assert identity["Arn"] == "arn:aws:sts::123456789012:assumed-role/drkit/drkit-test"
    # Other services too, and one AssumeRole serves every client of the factory.
    s3 = factory.client("s3", region="us-west-2")
    assert s3._request_signer._credentials is creds
    assert factory.session() is factory.session()


def _act_as_user_allowed(actions: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the environment's credentials those of a new IAM user allowed only `actions`."""
    iam = boto3.client("iam", region_name="us-east-1")
    name = f"drkit-{len(actions)}"
    iam.create_user(UserName=name)
    statement = {"Effect": "Allow", "Action": actions, "Resource": "*"}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")


def test_role_that_cannot_be_assumed_says_what_to_fix(
    moto_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _act_as_user_allowed(["s3:*"], monkeypatch)
    denied = f"cannot assume role {ROLE}: access denied"
    with enable_iam_authentication(), pytest.raises(UsageError, match=denied):
        SessionFactory(region="us-east-1", role_arn=ROLE).session()


def test_declared_actions_cover_assume_role(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user allowed only IAM_ACTIONS can assume the role (moto enforces the policy)."""
    _act_as_user_allowed(list(IAM_ACTIONS), monkeypatch)
    with enable_iam_authentication():
        creds = SessionFactory(region="us-east-1", role_arn=ROLE).session().get_credentials()
    assert creds.get_frozen_credentials().access_key.startswith("ASIA")


def test_missing_credentials_say_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var)
    with pytest.raises(UsageError, match="no AWS credentials found: set AWS_PROFILE"):
        SessionFactory(region="us-east-1").client("s3")


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_unknown_profile_says_what_to_fix(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "environment":
        monkeypatch.setenv("AWS_PROFILE", "nope")
        factory = SessionFactory()
    else:
        factory = SessionFactory(profile="nope")
    with pytest.raises(UsageError, match=r"AWS profile 'nope' not found .*: fix AWS_PROFILE"):
        factory.client("s3")


def test_profile_from_the_config_files_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Path(os.environ["AWS_CONFIG_FILE"])
    config.write_text("[profile backup]\nregion = eu-north-1\naws_access_key_id = AKIDBACKUP\n"
                      "aws_secret_access_key = secret\n")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var)
    factory = SessionFactory(profile="backup")
    assert factory.session().get_credentials().access_key == "AKIDBACKUP"
    assert factory.client("s3").meta.region_name == "eu-north-1"


def test_from_schedule_reads_the_aws_section() -> None:
    from drkit.config.schedule import AwsConfig

    aws = AwsConfig(region="us-west-2", profile="prod-backup", role_arn=ROLE)
    factory = SessionFactory.from_schedule(SimpleNamespace(aws=aws))
    assert (factory.region, factory.profile, factory.role_arn) == ("us-west-2", "prod-backup", ROLE)
    plain = SessionFactory.from_schedule(SimpleNamespace(aws=None))
    assert (plain.region, plain.profile, plain.role_arn) == (None, None, None)
    assert plain.client("s3").meta.region_name == "us-east-1"  # from the environment


def test_retries_reach_moto_through_the_factory(factory: SessionFactory) -> None:
    """The factory's clients are ordinary clients: moto answers them (tests hand adapters this)."""
    s3 = factory.client("s3")
    calls = _count_calls(s3, "before-call.s3.*")
    s3.create_bucket(Bucket="drkit-seam")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["drkit-seam"]
    assert calls == ["CreateBucket", "ListBuckets"]
