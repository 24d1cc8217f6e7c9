"""Fixtures for the AWS adapter tests: moto in-process (TESTING.md), never a real account.

Every test here runs with fake credentials, region us-east-1, no profile, no endpoint override
and no instance-metadata lookups, whatever the developer's shell or ~/.aws holds, so a test can
neither reach a real account nor pass or fail because of the machine it runs on.

    def test_something(factory: SessionFactory) -> None:   # moto is active, us-east-1
        s3 = factory.client("s3")
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from drkit.aws.session import SessionFactory

REGION = "us-east-1"

_CLEARED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_ENDPOINT_URL_RDS",
    "AWS_ENDPOINT_URL_EC2",
    "AWS_ENDPOINT_URL_IAM",
)


def fake_aws_environment(mp: pytest.MonkeyPatch, home: Path) -> None:
    """Fake credentials and region in the environment; the user's AWS config is hidden.

    Also for module-scoped fixtures (with `pytest.MonkeyPatch.context()`), which run before
    the autouse fixture below.
    """
    for var in _CLEARED:
        mp.delenv(var, raising=False)
    mp.setenv("AWS_CONFIG_FILE", str(home / "config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_SESSION_TOKEN", "testing")
    mp.setenv("AWS_REGION", REGION)
    mp.setenv("AWS_DEFAULT_REGION", REGION)
    # Without this, a test with no credentials would wait for the EC2 metadata service.
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test here: fake credentials, region us-east-1, no profile or endpoint override."""
    fake_aws_environment(monkeypatch, tmp_path_factory.mktemp("aws-home"))


@pytest.fixture
def moto_aws() -> Iterator[None]:
    """moto's in-process AWS for the duration of the test (state is reset for each test)."""
    with mock_aws():
        yield


@pytest.fixture
def factory(moto_aws: None) -> SessionFactory:
    """drkit's session factory, talking to moto in us-east-1."""
    return SessionFactory(region=REGION)


# `guarded(role)`: a SessionFactory whose clients refuse AWS calls not declared in
# drkit.aws.permissions (see tests/aws/declared.py).
from tests.aws.declared import guarded  # noqa: E402, F401
