"""drkit.aws.s3store.S3Store against moto's S3: the BackupStore rules, kept in a bucket.

What a user relies on: a backup read back is byte-for-byte what was written, at any size; a
backup that failed half way leaves nothing visible and nothing billed (no pending multipart
upload); an existing backup is never replaced; listing sees every backup however many there
are; and a missing bucket or permission is one line that says what to fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID, enable_iam_authentication
from moto.s3.models import s3_backends

from drkit.aws.s3store import IAM_ACTIONS, MIN_PART_SIZE, S3Store
from drkit.aws.session import SessionFactory
from drkit.crypto import DecryptReader, EncryptWriter, LocalKeyFile
from drkit.errors import StoreError, UsageError
from drkit.store import BackupStore
from tests.aws.conftest import REGION, fake_aws_environment

BUCKET = "drkit-backups"
PREFIX = "prod/app"
MiB = 1 << 20


@pytest.fixture(scope="module")
def s3_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One S3 client for the module (making one costs ~0.3 s); moto's state is still reset for
    every test by `moto_aws`, and `hooks` removes the event handlers a test adds."""
    with pytest.MonkeyPatch.context() as mp:
        fake_aws_environment(mp, tmp_path_factory.mktemp("aws-home"))
        client = SessionFactory(region=REGION).client("s3")
    yield client


@pytest.fixture
def s3(moto_aws: None, s3_client: Any) -> Any:
    s3_client.create_bucket(Bucket=BUCKET)
    return s3_client


@pytest.fixture
def store(s3: Any) -> S3Store:
    return S3Store(s3, BUCKET, PREFIX, part_size=MIN_PART_SIZE)


Calls = list[tuple[str, dict[str, Any]]]


class Hooks:
    """botocore event handlers on the shared client, removed when the test ends."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.added: list[tuple[str, str]] = []

    def _register(self, event: str, handler: Callable[..., Any]) -> None:
        uid = f"drkit-test-{len(self.added)}"
        self.client.meta.events.register(event, handler, unique_id=uid)
        self.added.append((event, uid))

    def record(self, operation: str = "*") -> Calls:
        """The calls the client makes from now on: (operation name, parameters)."""
        calls: Calls = []

        def handler(model: Any, params: dict[str, Any], **_: Any) -> None:
            calls.append((model.name, dict(params)))

        self._register(f"provide-client-params.s3.{operation}", handler)
        return calls

    def fail_nth(self, operation: str, n: int, code: str) -> None:
        """Make the Nth call of `operation` fail with `code` (it never reaches moto)."""
        seen = [0]

        def handler(**_: Any) -> tuple[Any, dict[str, Any]] | None:
            seen[0] += 1
            if seen[0] != n:
                return None
            error = {
                "Error": {"Code": code, "Message": "injected"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            return AWSResponse("https://s3", 400, {}, None), error

        self._register(f"before-call.s3.{operation}", handler)

    def remove(self) -> None:
        for event, uid in self.added:
            self.client.meta.events.unregister(event, unique_id=uid)


@pytest.fixture
def hooks(s3_client: Any) -> Iterator[Hooks]:
    h = Hooks(s3_client)
    yield h
    h.remove()


def names(calls: Calls) -> list[str]:
    return [name for name, _ in calls]


def pending_uploads(s3: Any) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def keys(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def write_in_pieces(store: S3Store, name: str, data: bytes, piece: int) -> None:
    """Write through one reused buffer, as drkit's pipeline does (the store must copy)."""
    buf = bytearray(piece)
    view = memoryview(buf)
    with store.writer(name) as sink:
        for start in range(0, len(data), piece):
            chunk = data[start : start + piece]
            view[: len(chunk)] = chunk
            assert sink.write(view[: len(chunk)]) == len(chunk)
            view[: len(chunk)] = b"\xff" * len(chunk)  # scribble: a store that kept a reference breaks


def test_is_a_backup_store(store: S3Store) -> None:
    sink: BackupStore = store
    assert sink.uri == "s3://drkit-backups/prod/app"
    assert S3Store(object(), BUCKET).uri == "s3://drkit-backups"


@pytest.mark.parametrize(
    ("size", "parts"),
    [(0, 0), (1, 0), (MIN_PART_SIZE - 1, 0), (MIN_PART_SIZE, 1), (12 * MiB + 3, 3)],
    ids=["empty", "1-byte", "just-under-a-part", "exactly-a-part", "12MiB-multipart"],
)
def test_round_trip_any_size(s3: Any, store: S3Store, size: int, parts: int, hooks: Hooks) -> None:
    data = os.urandom(size)
    calls = hooks.record()
    write_in_pieces(store, "app/backup.enc", data, piece=MiB + 7)

    if parts:
        assert names(calls).count("UploadPart") == parts
        assert "PutObject" not in names(calls)
        etag = s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}/app/backup.enc")["ETag"]
        assert etag.strip('"').endswith(f"-{parts}")  # S3's mark of a multipart object
    else:
        assert names(calls).count("PutObject") == 1
        assert "CreateMultipartUpload" not in names(calls)

    assert store.list() == ["app/backup.enc"]
    assert store.size("app/backup.enc") == size
    with store.open("app/backup.enc") as fh:
        head = fh.read(10)
        rest = bytearray(size)
        n = fh.readinto(rest)
        tail = fh.read()
    assert head + bytes(rest[:n]) + tail == data
    assert pending_uploads(s3) == []


def test_parts_go_up_while_writing_and_never_exceed_the_part_size(
    s3: Any, store: S3Store, hooks: Hooks
) -> None:
    """Streaming, not buffering: memory stays at one part however big one write() is."""
    uploads = hooks.record("UploadPart")
    data = os.urandom(11 * MiB)
    with store.writer("big") as sink:
        sink.write(data)  # one write of more than two parts
        assert len(uploads) == 2, "full parts are uploaded before the writer closes"
        assert pending_uploads(s3) == [f"{PREFIX}/big"]
        assert keys(s3) == [], "nothing is visible before the block exits"
    sizes = [len(params["Body"]) for _, params in uploads]
    assert sizes == [MIN_PART_SIZE, MIN_PART_SIZE, 1 * MiB]
    with store.open("big") as fh:
        assert fh.read() == data


def test_drkit_encrypted_stream_round_trips_through_s3(store: S3Store, tmp_path: Path) -> None:
    """The pipeline's use: EncryptWriter into the writer's sink, DecryptReader over open()."""
    key = LocalKeyFile(tmp_path / "backup.key", create=True)
    data = os.urandom(6 * MiB + 11)
    with store.writer("app/x.dump.enc") as sink:
        enc = EncryptWriter(sink, key, chunk_size=MiB)
        for start in range(0, len(data), 300_000):
            enc.write(data[start : start + 300_000])
        enc.close()
    with store.open("app/x.dump.enc") as raw, DecryptReader(raw, key) as plain:
        assert plain.read() == data


@pytest.mark.parametrize("size", [10, 7 * MiB], ids=["small", "multipart"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_error_inside_the_writer_leaves_nothing_behind(
    s3: Any, store: S3Store, size: int, error: type[BaseException], hooks: Hooks
) -> None:
    calls = hooks.record()
    with pytest.raises(error), store.writer("app/broken") as sink:
        sink.write(os.urandom(size))
        raise error("pg_dump died")
    assert keys(s3) == []
    assert pending_uploads(s3) == []
    assert store.list() == []
    if size > MIN_PART_SIZE:
        assert "AbortMultipartUpload" in names(calls)


@pytest.mark.parametrize("operation", ["UploadPart", "CompleteMultipartUpload"])
def test_a_failed_part_or_commit_aborts_the_upload(
    s3: Any, store: S3Store, operation: str, hooks: Hooks
) -> None:
    hooks.fail_nth(operation, 1 if operation != "UploadPart" else 2, "InternalError")
    line = f"store s3://drkit-backups/prod/app: {operation} big failed: InternalError"
    with pytest.raises(StoreError, match=line), store.writer("big") as sink:
        sink.write(os.urandom(12 * MiB))
    assert pending_uploads(s3) == []
    assert keys(s3) == []


@pytest.mark.parametrize("size", [3, 6 * MiB], ids=["small", "multipart"])
def test_an_existing_backup_is_never_replaced(s3: Any, store: S3Store, size: int, hooks: Hooks) -> None:
    with store.writer("app/b1") as sink:
        sink.write(b"original")
    calls = hooks.record()
    refused = "app/b1 exists already; refusing to overwrite a backup"
    with pytest.raises(StoreError, match=refused), store.writer("app/b1") as sink:
        sink.write(os.urandom(size))
    assert "PutObject" not in names(calls) and "UploadPart" not in names(calls), "refused before any data"
    with store.open("app/b1") as fh:
        assert fh.read() == b"original"


@pytest.mark.parametrize("size", [3, 6 * MiB], ids=["small", "multipart"])
def test_a_backup_that_appears_while_writing_is_not_replaced(s3: Any, store: S3Store, size: int) -> None:
    """Two writers racing for one name: the commit is conditional, so the first one wins."""
    refused = "app/race exists already; refusing to overwrite"
    with pytest.raises(StoreError, match=refused), store.writer("app/race") as sink:
        sink.write(os.urandom(size))
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/app/race", Body=b"the other writer")
    with store.open("app/race") as fh:
        assert fh.read() == b"the other writer"
    assert pending_uploads(s3) == []


def test_list_pages_through_more_than_1000_objects(s3: Any, store: S3Store, hooks: Hooks) -> None:
    expected = [f"app/{i:05d}.manifest.json" for i in range(1003)]
    # Straight into moto's backend: 1003 PutObject calls through HTTP would take ~10 s.
    backend = s3_backends[DEFAULT_ACCOUNT_ID][s3.meta.partition]
    for name in reversed(expected):
        backend.put_object(BUCKET, f"{PREFIX}/{name}", b"")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/other/x", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="prod/application/not-ours", Body=b"")  # shares the text prefix
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/app/", Body=b"")  # a console "folder"
    calls = hooks.record("ListObjectsV2")
    assert store.list("app/") == expected
    assert len(calls) == 2, "S3 returns at most 1000 keys a page"
    assert store.list() == [*expected, "other/x"]


def test_missing_bucket_says_what_to_do(factory: SessionFactory) -> None:
    store = S3Store(factory.client("s3"), "no-such-drkit-bucket", PREFIX)
    line = "bucket no-such-drkit-bucket does not exist in us-east-1: create it or fix `store:`"
    with pytest.raises(StoreError, match=line), store.writer("x") as sink:
        sink.write(b"never sent")
    for call in (lambda: store.list(), lambda: store.open("x"), lambda: store.size("x")):
        with pytest.raises(StoreError, match=line):
            call()


def test_missing_object(store: S3Store) -> None:
    for call in (lambda: store.open("app/nope"), lambda: store.size("app/nope")):
        with pytest.raises(StoreError, match="store s3://drkit-backups/prod/app: no object app/nope"):
            call()


def test_delete(store: S3Store) -> None:
    for name in ("app/1", "app/2"):
        with store.writer(name) as sink:
            sink.write(name.encode())
    store.delete("app/1")
    store.delete("app/never-existed")  # as FileStore: deleting what is gone is fine
    assert store.list() == ["app/2"]


def test_bad_names_are_refused(store: S3Store) -> None:
    for name in ("", "/abs", "app/../../escape"):
        with pytest.raises(ValueError, match="bad object name"):
            store.open(name)


def test_every_upload_carries_server_side_encryption(s3: Any) -> None:
    default = S3Store(s3, BUCKET, "aes", part_size=MIN_PART_SIZE)
    write_in_pieces(default, "small", b"x", piece=1)
    write_in_pieces(default, "big", os.urandom(6 * MiB), piece=4 * MiB)
    for key in ("aes/small", "aes/big"):
        assert s3.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"

    kms = boto3.client("kms", region_name="us-east-1")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    with_kms = S3Store(s3, BUCKET, "kms", part_size=MIN_PART_SIZE, sse="aws:kms", kms_key_id=key_id)
    write_in_pieces(with_kms, "small", b"x", piece=1)
    write_in_pieces(with_kms, "big", os.urandom(6 * MiB), piece=4 * MiB)
    for key in ("kms/small", "kms/big"):
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"].endswith(key_id)
    with with_kms.open("small") as fh:
        assert fh.read() == b"x"


def test_sse_none_sends_no_header(s3: Any, hooks: Hooks) -> None:
    calls = hooks.record("PutObject")
    write_in_pieces(S3Store(s3, BUCKET, "plain", sse=None), "o", b"x", piece=1)
    assert "ServerSideEncryption" not in calls[0][1]


def test_invalid_settings_are_refused(s3: Any) -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3Store(s3, BUCKET, part_size=MiB)
    with pytest.raises(ValueError, match="sse"):
        S3Store(s3, BUCKET, sse="aws:kms:dsse")
    with pytest.raises(ValueError, match="kms_key_id needs sse='aws:kms'"):
        S3Store(s3, BUCKET, kms_key_id="alias/x")
    with pytest.raises(UsageError, match="S3 bucket name"):
        S3Store(s3, "bucket/with/prefix")


def test_from_environment_uses_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
    store = S3Store.from_environment("acme-backups", "drkit/app/")
    assert store.uri == "s3://acme-backups/drkit/app"
    assert store._client.meta.region_name == "eu-west-1"
    assert store._client.meta.endpoint_url == "http://127.0.0.1:9000"
    assert store.sse == "AES256"


# -- declared permissions ----------------------------------------------------------------------

# What each S3 API call is authorised as (AWS's "Actions, resources and condition keys for S3").
_AWS_AUTHORISES = {
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


def _exercise(store: S3Store) -> None:
    """Every operation of the store, including an aborted multipart write."""
    with store.writer("app/small") as sink:
        sink.write(b"small")
    write_in_pieces(store, "app/big", os.urandom(6 * MiB), piece=2 * MiB)
    with pytest.raises(RuntimeError), store.writer("app/aborted") as sink:
        sink.write(os.urandom(6 * MiB))
        raise RuntimeError("interrupted")
    assert store.list("app/") == ["app/big", "app/small"]
    assert store.pending_uploads() == []
    assert store.size("app/small") == 5
    with store.open("app/small") as fh:
        assert fh.read() == b"small"
    store.delete("app/small")


def test_declared_iam_actions_cover_every_call(s3: Any, store: S3Store, hooks: Hooks) -> None:
    calls = hooks.record()
    _exercise(store)
    assert {_AWS_AUTHORISES[name] for name in names(calls)} == set(IAM_ACTIONS)


def _client_for_user_allowed(actions: list[str]) -> Any:
    iam = boto3.client("iam", region_name="us-east-1")
    name = f"drkit-{os.urandom(3).hex()}"
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="drkit", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.client(
        "s3", region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
    )


def test_least_privilege_user_can_do_everything(s3: Any) -> None:
    client = _client_for_user_allowed(list(IAM_ACTIONS))
    with enable_iam_authentication():
        _exercise(S3Store(client, BUCKET, PREFIX, part_size=MIN_PART_SIZE))
    assert pending_uploads(s3) == []


def _write(store: S3Store) -> None:
    with store.writer("app/x") as sink:
        sink.write(b"x")


@pytest.mark.parametrize(
    ("missing", "call"),
    [
        ("s3:PutObject", _write),
        ("s3:GetObject", lambda st: st.open("app/seed")),
        ("s3:ListBucket", lambda st: st.list()),
        ("s3:DeleteObject", lambda st: st.delete("app/seed")),
    ],
)
def test_access_denied_names_the_action_to_grant(
    s3: Any, store: S3Store, missing: str, call: Callable[[S3Store], Any]
) -> None:
    with store.writer("app/seed") as sink:
        sink.write(b"seed")
    client = _client_for_user_allowed([a for a in IAM_ACTIONS if a != missing])
    with enable_iam_authentication(), pytest.raises(StoreError, match=f"access denied: .*grant {missing} "):
        call(S3Store(client, BUCKET, PREFIX))
    assert store.list() == ["app/seed"]


def test_injected_client_errors_do_not_escape_as_tracebacks(s3: Any, store: S3Store, hooks: Hooks) -> None:
    """Whatever S3 answers, the caller sees a StoreError line, never a botocore ClientError."""
    hooks.fail_nth("ListObjectsV2", 1, "SlowDown")
    line = "store s3://drkit-backups/prod/app: ListObjectsV2 failed: SlowDown"
    with pytest.raises(StoreError, match=line) as info:
        store.list()
    assert not isinstance(info.value, ClientError)
