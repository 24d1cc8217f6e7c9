"""drkit.aws.kms.KmsKeyWrapper against moto's KMS: backups whose data keys KMS wraps.

moto stands in for KMS (TESTING.md): keys, aliases, data keys and encryption context work;
a disabled key still works in moto, so that refusal is injected with a botocore
`before-call` handler (it never reaches moto).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import enable_iam_authentication

from drkit.aws.kms import IAM_ACTIONS, KmsKeyWrapper
from drkit.crypto import DecryptReader, EncryptWriter, KeyWrapper, read_header
from drkit.errors import DrkitError, IntegrityError, UsageError

REGION = "us-east-1"
ALIAS = "alias/drkit-backups"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def kms() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("kms", region_name=REGION)


@pytest.fixture
def key_arn(kms: Any) -> str:
    meta = kms.create_key(Description="drkit backups")["KeyMetadata"]
    kms.create_alias(AliasName=ALIAS, TargetKeyId=meta["KeyId"])
    return str(meta["Arn"])


def encrypt(data: bytes, wrapper: KeyWrapper) -> bytes:
    out = io.BytesIO()
    with EncryptWriter(out, wrapper, chunk_size=64) as w:
        w.write(data)
    return out.getvalue()


def test_round_trip_and_header_names_the_key_arn(kms: Any, key_arn: str) -> None:
    wrapper = KmsKeyWrapper(kms, ALIAS)
    assert wrapper.kind == "kms" and wrapper.key_id == key_arn
    data = os.urandom(1000)
    blob = encrypt(data, wrapper)
    header = read_header(io.BytesIO(blob))
    assert (header.kind, header.key_id) == ("kms", key_arn)

    # The way a restore works: the header says which key; the caller builds a wrapper for it.
    seen: list[tuple[str, str]] = []

    def resolve(kind: str, key_id: str) -> KeyWrapper:
        seen.append((kind, key_id))
        return KmsKeyWrapper(kms, key_id)

    with DecryptReader(io.BytesIO(blob), resolve) as r:
        assert r.read() == data
    assert seen == [("kms", key_arn)]


@pytest.mark.parametrize("form", ["alias", "key id", "key arn", "alias arn"])
def test_key_id_is_the_arn_whatever_the_user_wrote(kms: Any, key_arn: str, form: str) -> None:
    key = {
        "alias": ALIAS,
        "key id": key_arn.rsplit("/", 1)[1],
        "key arn": key_arn,
        "alias arn": key_arn.split(":key/")[0] + ":" + ALIAS,
    }[form]
    assert KmsKeyWrapper(kms, key).key_id == key_arn


def test_data_keys_are_bound_to_the_drkit_context(kms: Any, key_arn: str) -> None:
    plaintext, wrapped = KmsKeyWrapper(kms, ALIAS).generate_data_key()
    assert len(plaintext) == 32 and wrapped != plaintext
    got = kms.decrypt(CiphertextBlob=wrapped, EncryptionContext={"drkit:purpose": "backup"})
    assert got["Plaintext"] == plaintext and got["KeyId"] == key_arn
    with pytest.raises(ClientError, match="InvalidCiphertext"):
        kms.decrypt(CiphertextBlob=wrapped)  # without the context, KMS refuses


def test_decrypt_with_a_different_key_fails_cleanly(kms: Any, key_arn: str) -> None:
    blob = encrypt(b"orders table", KmsKeyWrapper(kms, ALIAS))
    other = KmsKeyWrapper(kms, kms.create_key()["KeyMetadata"]["KeyId"])
    with pytest.raises(IntegrityError, match="wrong key") as err:
        DecryptReader(io.BytesIO(blob), other)
    assert key_arn in str(err.value) and other.key_id in str(err.value)
    # Asking KMS directly with the other key: one clear line, not a botocore traceback.
    # (AWS says IncorrectKeyException -> IntegrityError; moto says AccessDenied -> DrkitError.)
    with pytest.raises(DrkitError, match="wrong key") as err2:
        other.unwrap(read_header(io.BytesIO(blob)).wrapped_key)
    assert "\n" not in str(err2.value) and other.key_id in str(err2.value)


def test_damaged_wrapped_key_fails_as_integrity_error(kms: Any, key_arn: str) -> None:
    wrapper = KmsKeyWrapper(kms, ALIAS)
    blob = bytearray(encrypt(b"x" * 100, wrapper))
    header = read_header(io.BytesIO(bytes(blob)))
    blob[header.size - 1] ^= 0x01  # last byte of the wrapped data key
    with pytest.raises(IntegrityError, match="wrong key, or the backup header is damaged"):
        DecryptReader(io.BytesIO(bytes(blob)), wrapper)


def _refuse(client: Any, operation: str, code: str) -> None:
    """Make every `operation` call fail with `code` before it is sent (as AWS would answer)."""

    def handler(**_: Any) -> tuple[Any, dict[str, Any]]:
        return SimpleNamespace(status_code=400), {
            "Error": {"Code": code, "Message": f"{code} injected"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    client.meta.events.register(f"before-call.kms.{operation}", handler)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("DisabledException", r"disabled; enable it \(aws kms enable-key"),
        ("AccessDeniedException", "access denied.*grant kms:Decrypt"),
        ("KMSInvalidStateException", "cancel-key-deletion"),
        ("InvalidCiphertextException", "wrong key"),
    ],
)
def test_kms_refusals_on_decrypt_are_one_clear_line(kms: Any, key_arn: str, code: str, expected: str) -> None:
    wrapper = KmsKeyWrapper(kms, ALIAS)
    blob = encrypt(b"rows", wrapper)
    _refuse(kms, "Decrypt", code)
    with pytest.raises(DrkitError, match=expected) as err:
        DecryptReader(io.BytesIO(blob), wrapper)
    assert "\n" not in str(err.value) and key_arn in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_disabled_key_on_backup(kms: Any, key_arn: str) -> None:
    wrapper = KmsKeyWrapper(kms, ALIAS)
    _refuse(kms, "GenerateDataKey", "DisabledException")
    sink = io.BytesIO()
    with pytest.raises(DrkitError, match="disabled"):
        EncryptWriter(sink, wrapper)
    assert sink.getvalue() == b""  # nothing written for a backup that could not start


def test_unknown_key_is_a_usage_error(kms: Any, key_arn: str) -> None:
    with pytest.raises(UsageError, match=f"alias/nope not found in {REGION}"):
        KmsKeyWrapper(kms, "alias/nope")


def test_declared_iam_actions_cover_every_call(kms: Any, key_arn: str) -> None:
    """Declared permissions: a call the wrapper makes but IAM_ACTIONS omits fails here."""
    called: set[str] = set()
    kms.meta.events.register(
        "before-call.kms.*", lambda model, **_: called.add(f"kms:{model.name}")
    )
    wrapper = KmsKeyWrapper(kms, ALIAS)
    with DecryptReader(io.BytesIO(encrypt(b"abc", wrapper)), wrapper) as r:
        assert r.read() == b"abc"
    assert called == set(IAM_ACTIONS)


def test_docs_kms_recipe(kms: Any, key_arn: str, tmp_path: Path) -> None:
    """docs/backup-format.md for kind=kms: extract the wrapped key, KMS Decrypt, run the recipe.

    `aws kms decrypt` can't reach the in-process mock, so boto3 makes the same call.
    """
    doc = (REPO / "docs" / "backup-format.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    (tmp_path / "decrypt-backup.py").write_text(next(b for b in blocks if "decrypt-backup.py" in b))
    (tmp_path / "wrapped-key.py").write_text(next(b for b in blocks if "wrapped-key.py" in b))
    data = os.urandom(5000)
    backup = tmp_path / "app.dump.zst.enc"
    backup.write_bytes(encrypt(data, KmsKeyWrapper(kms, ALIAS)))

    proc = subprocess.run(
        [sys.executable, "wrapped-key.py", str(backup)], cwd=tmp_path, capture_output=True, check=True
    )
    assert proc.stderr.decode().strip() == key_arn
    data_key = kms.decrypt(
        KeyId=key_arn, CiphertextBlob=proc.stdout, EncryptionContext={"drkit:purpose": "backup"}
    )["Plaintext"]
    (tmp_path / "data.key").write_bytes(data_key)
    subprocess.run(
        [sys.executable, "decrypt-backup.py", "data.key", str(backup), "out"], cwd=tmp_path, check=True
    )
    assert (tmp_path / "out").read_bytes() == data


def _client_for_user_allowed(actions: list[str]) -> Any:
    """A KMS client for a fresh IAM user whose only policy allows `actions` (moto enforces it)."""
    iam = boto3.client("iam", region_name=REGION)
    name = f"drkit-{len(actions)}-{os.urandom(3).hex()}"
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="drkit", PolicyDocument=json.dumps(policy))
    creds = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.client(
        "kms", region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
    )


def test_least_privilege_user_can_back_up_and_restore(kms: Any, key_arn: str) -> None:
    """With IAM enforced, IAM_ACTIONS alone are enough; without kms:Decrypt, restore says what to grant."""
    allowed = _client_for_user_allowed(list(IAM_ACTIONS))
    no_decrypt = _client_for_user_allowed([a for a in IAM_ACTIONS if a != "kms:Decrypt"])
    with enable_iam_authentication():  # moto checks IAM policies on every call in here
        wrapper = KmsKeyWrapper(allowed, ALIAS)
        blob = encrypt(b"rows", wrapper)
        with DecryptReader(io.BytesIO(blob), wrapper) as r:
            assert r.read() == b"rows"
        with pytest.raises(DrkitError, match="grant kms:Decrypt"):
            DecryptReader(io.BytesIO(blob), KmsKeyWrapper(no_decrypt, ALIAS))
