"""The one seam between drkit and AWS: every adapter gets its clients from a SessionFactory.

Cloud Custodian's `session_factory` habit (ARCHITECTURE.md): adapters never build sessions or
clients themselves, so tests hand them a factory whose calls land in moto, and production hands
them one that assumes the configured role. Nothing is cached at module level; a factory keeps
its own session (so one AssumeRole serves every client it makes) and that is all.

    aws:
      region: us-east-1
      profile: prod-backup                              # optional
      role_arn: arn:aws:iam::123456789012:role/drkit     # optional, assumed for every call

    factory = SessionFactory.from_schedule(schedule)
    rds = factory.client("rds", region="us-west-2")

Where things come from, in the order AWS's own tools use:
- credentials: the standard chain (AWS_PROFILE / `profile`, environment, SSO, instance role);
  with `role_arn`, those are only the source for STS AssumeRole, refreshed before they expire;
- region: the argument, else AWS_REGION, else AWS_DEFAULT_REGION or the profile's region;
- endpoint: the argument, else botocore's own AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>
  (and `endpoint_url` in the profile), which botocore >= 1.31 honours natively.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    Credentials,
    RefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, ProfileNotFound

from drkit.errors import DrkitError, UsageError

# Declared permissions (ARCHITECTURE.md): only used when a role is configured.
IAM_ACTIONS = ("sts:AssumeRole",)

_RETRY_MODES = ("legacy", "standard", "adaptive")


class _AssumedRole(CredentialProvider):
    """Hands botocore credentials that were obtained (and are refreshed) through AssumeRole."""

    METHOD = "drkit-assume-role"
    CANONICAL_NAME = "drkit-assume-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


class SessionFactory:
    """Builds boto3 sessions and clients with drkit's retry policy and, if set, an assumed role.

    No network call happens here unless `role_arn` is set (one STS AssumeRole per factory,
    then refreshes shortly before expiry). Safe to share between threads: the session is
    built once under a lock and clients are created under the same lock, because a boto3
    Session is not thread-safe while it makes clients.
    """

    def __init__(
        self,
        *,
        profile: str | None = None,
        region: str | None = None,
        role_arn: str | None = None,
        endpoint_url: str | None = None,
        retry_mode: str = "standard",
        max_attempts: int = 10,
        session_name: str = "drkit",
    ) -> None:
        if retry_mode not in _RETRY_MODES:
            raise UsageError(f"retry mode {retry_mode!r}: use one of {', '.join(_RETRY_MODES)}")
        if max_attempts < 1:
            raise UsageError(f"max_attempts must be at least 1, not {max_attempts}")
        self.profile = profile
        self.region = region
        self.role_arn = role_arn
        self.endpoint_url = endpoint_url
        self.retry_mode = retry_mode
        self.max_attempts = max_attempts
        self.session_name = session_name
        self._lock = threading.Lock()
        self._session: boto3.Session | None = None

    @classmethod
    def from_schedule(cls, schedule: Any) -> SessionFactory:
        """The factory for a schedule's `aws:` section (which may be absent: then the environment)."""
        aws = getattr(schedule, "aws", None)
        if aws is None:
            return cls()
        return cls(
            profile=getattr(aws, "profile", None),
            region=getattr(aws, "region", None),
            role_arn=getattr(aws, "role_arn", None),
        )

    def __repr__(self) -> str:
        return (
            f"SessionFactory(profile={self.profile!r}, region={self.region!r}, role_arn={self.role_arn!r}, "
            f"endpoint_url={self.endpoint_url!r})"
        )

    @property
    def retry_config(self) -> Config:
        """botocore's own retry machinery (standard mode: exponential backoff with jitter).

        `max_attempts` counts every attempt, the first included, as AWS_MAX_ATTEMPTS does;
        botocore's `max_attempts` key would count retries only, hence `total_max_attempts`.
        """
        return Config(retries={"mode": self.retry_mode, "total_max_attempts": self.max_attempts})

    def session(self) -> boto3.Session:
        """This factory's session: the source credentials, or the assumed role's if `role_arn` is set."""
        with self._lock:
            if self._session is None:
                self._session = self._build_session()
            return self._session

    def client(self, service: str, region: str | None = None) -> Any:
        """A client for `service` in `region` (default: the factory's), with retries and endpoint."""
        session = self.session()
        kwargs: dict[str, Any] = {"config": self.retry_config}
        if region:
            kwargs["region_name"] = region
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        try:
            with self._lock:
                return session.client(service, **kwargs)
        except NoRegionError:
            raise UsageError(
                f"no AWS region for {service}: set AWS_REGION (or `aws.region` in the schedule)"
            ) from None

    def _region(self) -> str | None:
        # AWS_REGION is what the AWS CLI v2 and the SDKs for other languages read; botocore
        # itself only reads AWS_DEFAULT_REGION, which it still honours below when this is None.
        return self.region or os.environ.get("AWS_REGION") or None

    def _build_session(self) -> boto3.Session:
        try:
            base = boto3.Session(profile_name=self.profile, region_name=self._region())
        except ProfileNotFound:
            raise UsageError(
                f"AWS profile {self.profile or os.environ.get('AWS_PROFILE')!r} not found in ~/.aws/config "
                "or ~/.aws/credentials: fix AWS_PROFILE (or `aws.profile`), or add the profile"
            ) from None
        source = self._source_credentials(base)
        if not self.role_arn:
            return base
        return self._assume_role(base, source)

    def _source_credentials(self, base: boto3.Session) -> Credentials:
        try:
            creds = base.get_credentials()
        except (NoCredentialsError, ProfileNotFound) as exc:
            raise UsageError(
                f"cannot load AWS credentials ({exc}): set AWS_PROFILE or AWS credentials"
            ) from None
        except BotoCoreError as exc:
            raise UsageError(f"cannot load AWS credentials: {exc}") from None
        if creds is None:
            raise UsageError(
                "no AWS credentials found: set AWS_PROFILE (or `aws.profile`), or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or run where an instance/task role is available"
            )
        return creds

    def _assume_role(self, base: boto3.Session, source: Credentials) -> boto3.Session:
        region = base.region_name
        # STS lives wherever the other services do when an endpoint is forced (moto, LocalStack);
        # otherwise botocore picks the regional STS endpoint (or AWS_ENDPOINT_URL_STS).
        sts_kwargs: dict[str, Any] = {"region_name": region or "us-east-1", "config": self.retry_config}
        if self.endpoint_url:
            sts_kwargs["endpoint_url"] = self.endpoint_url
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=functools.partial(base.client, **sts_kwargs),
            source_credentials=source,
            role_arn=self.role_arn,
            extra_args={"RoleSessionName": self.session_name},
        )
        try:
            # Fetch once now, so a role that cannot be assumed fails here with a clear line
            # instead of inside whichever adapter happens to make the first call.
            metadata = fetcher.fetch_credentials()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", "")
            if code in ("AccessDenied", "AccessDeniedException"):
                raise UsageError(
                    f"cannot assume role {self.role_arn}: access denied ({message}); allow sts:AssumeRole "
                    "for the source credentials in the role's trust policy, or fix `aws.role_arn`"
                ) from None
            raise DrkitError(f"cannot assume role {self.role_arn}: {code}: {message}") from None
        except BotoCoreError as exc:
            raise DrkitError(f"cannot assume role {self.role_arn}: {exc}") from None
        credentials = RefreshableCredentials.create_from_metadata(
            metadata=metadata, refresh_using=fetcher.fetch_credentials, method=_AssumedRole.METHOD
        )
        core = botocore.session.Session(profile=self.profile)
        core.register_component("credential_provider", CredentialResolver([_AssumedRole(credentials)]))
        return boto3.Session(botocore_session=core, region_name=region)
