"""drkit.aws.kmskeys.resolve_key against moto's KMS: a copy's destination key is checked before any copy.

What a user relies on: an alias (or key id, key ARN, alias ARN) resolves to the key ARN in the
asked region; a key that is disabled, pending deletion, missing, in another region or not a
symmetric encryption key is refused with one line that names the key, the region and the fix.
moto reports KeyState faithfully (disabled keys still encrypt in moto, which does not matter
here: only DescribeKey is called). AccessDenied is injected with a `before-call` handler.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from drkit.aws.kmskeys import IAM_ACTIONS, KeyInfo, resolve_key
from drkit.aws.session import SessionFactory
from drkit.errors import DrkitError, UsageError

DR = "us-west-2"
ALIAS = "alias/drkit-dr"


@pytest.fixture
def kms(factory: SessionFactory) -> Any:
    return factory.client("kms", region=DR)


@pytest.fixture
def key(kms: Any) -> dict[str, Any]:
    meta: dict[str, Any] = kms.create_key(Description="drkit DR copies")["KeyMetadata"]
    kms.create_alias(AliasName=ALIAS, TargetKeyId=meta["KeyId"])
    return meta


def calls_to_kms(factory: SessionFactory) -> list[str]:
    """Every KMS operation made by clients the factory creates from now on."""
    seen: list[str] = []
    factory.session().events.register("before-call.kms.*", lambda model, **_: seen.append(f"kms:{model.name}"))
    return seen


def test_an_alias_resolves_to_the_key_arn_in_the_region(factory: SessionFactory, key: dict[str, Any]) -> None:
    calls = calls_to_kms(factory)
    info = resolve_key(factory, DR, ALIAS)
    assert info == KeyInfo(arn=key["Arn"], key_id=key["KeyId"], region=DR, enabled=True, key_state="Enabled")
    assert calls == ["kms:DescribeKey"] and set(calls) <= set(IAM_ACTIONS)  # declared permissions
    alias_arn = key["Arn"].split(":key/")[0] + ":" + ALIAS
    for name in (key["Arn"], key["KeyId"], alias_arn):
        assert resolve_key(factory, DR, name).arn == key["Arn"]


def test_a_disabled_key_is_refused(factory: SessionFactory, kms: Any, key: dict[str, Any]) -> None:
    kms.disable_key(KeyId=key["KeyId"])
    with pytest.raises(UsageError) as err:
        resolve_key(factory, DR, ALIAS)
    assert str(err.value) == f"copies to {DR} need a usable KMS key there: {ALIAS} is Disabled"


def test_a_key_pending_deletion_is_refused(factory: SessionFactory, kms: Any, key: dict[str, Any]) -> None:
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    with pytest.raises(UsageError) as err:
        resolve_key(factory, DR, ALIAS)
    assert str(err.value) == f"copies to {DR} need a usable KMS key there: {ALIAS} is PendingDeletion"
    with pytest.raises(
        UsageError, match=r"^S3 replicas to us-west-2 need a usable KMS key there: .* is PendingDeletion$"
    ):
        resolve_key(factory, DR, key["Arn"], purpose="S3 replicas to us-west-2")


def test_a_missing_key_says_create_it_or_fix_the_config(factory: SessionFactory, key: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as err:
        resolve_key(factory, DR, "alias/x")
    assert str(err.value) == f"no KMS key alias/x in {DR}: create it or fix copies.kms_key"
    # The alias exists, but in the source region only: the DR region has no such key.
    with pytest.raises(UsageError, match=f"no KMS key {ALIAS} in us-east-1"):
        resolve_key(factory, "us-east-1", ALIAS)


def test_a_key_of_another_region_is_refused_without_asking_kms(factory: SessionFactory, key: dict[str, Any]) -> None:
    calls = calls_to_kms(factory)
    with pytest.raises(UsageError) as err:
        resolve_key(factory, "eu-west-1", key["Arn"])
    assert str(err.value) == (
        f"copies to eu-west-1 need a usable KMS key there: {key['Arn']} is in {DR}, not eu-west-1; "
        "use a key in eu-west-1"
    )
    assert calls == []


def test_an_asymmetric_key_is_refused(factory: SessionFactory, kms: Any) -> None:
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    with pytest.raises(UsageError, match="is a RSA_2048 key; RDS needs a symmetric encryption key"):
        resolve_key(factory, DR, rsa["Arn"])


def test_no_key_configured(factory: SessionFactory) -> None:
    with pytest.raises(UsageError, match=r"no key is configured; set copies\.kms_key"):
        resolve_key(factory, DR, "  ")


def test_access_denied_names_the_action(factory: SessionFactory, key: dict[str, Any]) -> None:
    def refuse(**_: Any) -> tuple[Any, dict[str, Any]]:
        return SimpleNamespace(status_code=400), {
            "Error": {"Code": "AccessDeniedException", "Message": "not allowed"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    factory.session().events.register("before-call.kms.DescribeKey", refuse)
    with pytest.raises(
        DrkitError, match=f"access denied describing KMS key {ALIAS} in {DR}: grant kms:DescribeKey"
    ) as err:
        resolve_key(factory, DR, ALIAS)
    assert "\n" not in str(err.value) and not isinstance(err.value, UsageError)
