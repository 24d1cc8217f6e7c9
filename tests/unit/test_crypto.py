"""drkit.crypto: streaming envelope encryption of backups, and local key files.

What a user relies on: what goes in comes out; any change to a stored backup (a flipped
byte, a cut, a reordering, appended bytes) or the wrong key is refused with IntegrityError
instead of restoring damaged data; key files are created safely and never replaced.
"""

from __future__ import annotations

import array
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drkit.crypto import (
    DEFAULT_CHUNK_SIZE,
    TAG_SIZE,
    DecryptReader,
    EncryptWriter,
    KeyWrapper,
    LocalKeyFile,
    read_header,
)
from drkit.errors import IntegrityError, UsageError

REPO = Path(__file__).resolve().parents[2]
SMALL = 16  # a small chunk size makes multi-chunk cases cheap


@pytest.fixture
def key(tmp_path: Path) -> LocalKeyFile:
    return LocalKeyFile(tmp_path / "keys" / "backup.key", create=True)


def encrypt(data: bytes, wrapper: KeyWrapper, chunk_size: int = SMALL) -> bytes:
    out = io.BytesIO()
    with EncryptWriter(out, wrapper, chunk_size=chunk_size) as w:
        w.write(data)
    return out.getvalue()


def decrypt(blob: bytes, wrapper: KeyWrapper) -> bytes:
    with DecryptReader(io.BytesIO(blob), wrapper) as r:
        return r.read()


def chunk_offsets(blob: bytes, chunk_size: int = SMALL) -> list[int]:
    """Start offsets of each sealed chunk in `blob`."""
    start = read_header(io.BytesIO(blob)).size
    return list(range(start, len(blob), chunk_size + TAG_SIZE))


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1, 5 * SMALL, 5 * SMALL + 3])
def test_round_trip_small_chunks(key: LocalKeyFile, size: int) -> None:
    data = os.urandom(size)
    blob = encrypt(data, key)
    assert decrypt(blob, key) == data
    # Every chunk but the last is full, the last is shorter (maybe empty): len//C + 1 chunks.
    header = read_header(io.BytesIO(blob))
    assert len(blob) == header.size + size + (size // SMALL + 1) * TAG_SIZE
    assert data not in blob or size < 4


@pytest.mark.parametrize("size", [0, 1, DEFAULT_CHUNK_SIZE - 1, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE + 1])
def test_round_trip_default_chunk_size(key: LocalKeyFile, size: int) -> None:
    data = os.urandom(size)
    out = io.BytesIO()
    with EncryptWriter(out, key) as w:
        w.write(data)
    assert read_header(io.BytesIO(out.getvalue())).chunk_size == DEFAULT_CHUNK_SIZE
    assert decrypt(out.getvalue(), key) == data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(max_size=600),
    chunk_size=st.integers(min_value=1, max_value=70),
    write_sizes=st.lists(st.integers(min_value=0, max_value=200), max_size=30),
    read_sizes=st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=10),
)
def test_round_trip_any_write_and_read_sizes(
    key: LocalKeyFile, data: bytes, chunk_size: int, write_sizes: list[int], read_sizes: list[int]
) -> None:
    out = io.BytesIO()
    with EncryptWriter(out, key, chunk_size=chunk_size) as w:
        pos = 0
        for n in write_sizes:
            assert w.write(data[pos : pos + n]) == len(data[pos : pos + n])
            pos += n
        w.write(data[pos:])
    got = bytearray()
    with DecryptReader(io.BytesIO(out.getvalue()), key) as r:
        i = 0
        while True:
            n = read_sizes[i % len(read_sizes)]
            i += 1
            if i % 2:
                piece = r.read(n)
            else:
                buf = bytearray(n)
                piece = bytes(buf[: r.readinto(buf)])
            if not piece:
                break
            assert len(piece) <= n
            got += piece
    assert bytes(got) == data


def test_accepts_any_buffer_and_counts_bytes(key: LocalKeyFile) -> None:
    words = array.array("I", range(100))
    out = io.BytesIO()
    with EncryptWriter(out, key, chunk_size=SMALL) as w:
        assert w.write(words) == len(words.tobytes())
        assert w.write(memoryview(b"tail")) == 4
        assert w.write(bytearray(b"")) == 0
    assert decrypt(out.getvalue(), key) == words.tobytes() + b"tail"
    assert w.bytes_in == len(words.tobytes()) + 4
    assert w.bytes_out == len(out.getvalue())


class Trickle(io.RawIOBase):
    """A raw stream that reads or writes at most a few bytes per call, like a socket."""

    def __init__(self, data: bytes = b"", step: int = 5) -> None:
        self.inner = io.BytesIO(data)
        self.step = step

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def,override]
        data = self.inner.read(min(len(b), self.step))
        b[: len(data)] = data
        return len(data)

    def write(self, b) -> int:  # type: ignore[no-untyped-def,override]
        return self.inner.write(bytes(b)[: self.step])


def test_short_reads_and_short_writes(key: LocalKeyFile) -> None:
    data = os.urandom(10 * SMALL + 5)
    sink = Trickle(step=5)
    with EncryptWriter(sink, key, chunk_size=SMALL) as w:  # type: ignore[arg-type]
        w.write(data)
    blob = sink.inner.getvalue()
    assert decrypt(blob, key) == data
    with DecryptReader(Trickle(blob, step=7), key) as r:  # type: ignore[arg-type]
        assert r.read() == data


def test_layers_with_zstd_and_standard_io(key: LocalKeyFile, tmp_path: Path) -> None:
    """drkit's pipeline: dump -> zstd -> encrypt -> store, and back through BufferedReader."""
    dump = b"PGDMP" + b"row of data\n" * 50_000
    path = tmp_path / "app.dump.zst.enc"
    with (
        open(path, "wb") as f,
        EncryptWriter(f, key, chunk_size=4096) as enc,
        zstandard.ZstdCompressor().stream_writer(enc, closefd=False) as z,
    ):
        z.write(dump)
    assert path.stat().st_size < len(dump) // 10  # compressed before encryption
    with open(path, "rb") as f, io.BufferedReader(DecryptReader(f, key)) as dec:
        assert zstandard.ZstdDecompressor().stream_reader(dec).read() == dump


def test_owns_sink_closes_it_and_close_is_idempotent(key: LocalKeyFile) -> None:
    sink = io.BytesIO()
    w = EncryptWriter(sink, key, owns_sink=True)
    w.write(b"x")
    w.close()
    w.close()
    assert sink.closed
    with pytest.raises(ValueError):
        w.write(b"y")


# --- tampering, truncation, reordering, extension -----------------------------------------


def test_flipping_any_byte_fails(key: LocalKeyFile) -> None:
    data = os.urandom(2 * SMALL + 8)
    blob = encrypt(data, key)
    for i in range(len(blob)):
        for mask in (0x01, 0x80):
            bad = bytearray(blob)
            bad[i] ^= mask
            with pytest.raises(IntegrityError):
                decrypt(bytes(bad), key)


def test_every_truncation_fails(key: LocalKeyFile) -> None:
    """Cuts inside the header, at each chunk boundary and inside each chunk."""
    blob = encrypt(os.urandom(3 * SMALL), key)  # 3 full chunks + an empty final chunk
    boundaries = chunk_offsets(blob)
    assert len(boundaries) == 4 and len(blob) - boundaries[-1] == TAG_SIZE
    for cut in range(len(blob)):
        with pytest.raises(IntegrityError) as err:
            decrypt(blob[:cut], key)
        if cut in boundaries:
            assert "without the final chunk" in str(err.value)


def test_truncation_is_caught_before_the_missing_part_is_needed(key: LocalKeyFile) -> None:
    """A reader gets the verified chunks, then the error, never a silent short EOF."""
    data = os.urandom(3 * SMALL)
    blob = encrypt(data, key)
    with DecryptReader(io.BytesIO(blob[: chunk_offsets(blob)[2]]), key) as r:
        assert r.read(2 * SMALL) == data[:SMALL]  # one chunk at a time
        assert r.read(SMALL) == data[SMALL : 2 * SMALL]
        with pytest.raises(IntegrityError, match="without the final chunk"):
            r.read(SMALL)


def test_swapping_chunks_fails(key: LocalKeyFile) -> None:
    blob = encrypt(os.urandom(3 * SMALL + 4), key)
    offs = chunk_offsets(blob)
    size = SMALL + TAG_SIZE
    c0, c1 = blob[offs[0] : offs[0] + size], blob[offs[1] : offs[1] + size]
    swapped = blob[: offs[0]] + c1 + c0 + blob[offs[2] :]
    assert len(swapped) == len(blob) and swapped != blob
    with pytest.raises(IntegrityError, match="chunk 0"):
        decrypt(swapped, key)
    # Moving the short final chunk forward also fails.
    moved = blob[: offs[0]] + blob[offs[3] :] + blob[offs[0] : offs[3]]
    with pytest.raises(IntegrityError):
        decrypt(moved, key)


@pytest.mark.parametrize("extra", [b"\x00", b"x" * (SMALL + TAG_SIZE), "copy"])
def test_appending_data_fails(key: LocalKeyFile, extra: bytes | str) -> None:
    blob = encrypt(os.urandom(2 * SMALL + 1), key)
    tail = blob if extra == "copy" else extra
    assert isinstance(tail, bytes)
    with pytest.raises(IntegrityError):
        decrypt(blob + tail, key)
    # Also when the original ends on a chunk boundary (an empty final chunk).
    exact = encrypt(os.urandom(2 * SMALL), key)
    with pytest.raises(IntegrityError, match="chunk 2"):
        decrypt(exact + tail, key)


def test_header_of_another_backup_fails(key: LocalKeyFile) -> None:
    """Same key, same sizes: the header (its wrapped data key) is bound to its own chunks."""
    a, b = encrypt(b"a" * 40, key), encrypt(b"b" * 40, key)
    size = read_header(io.BytesIO(a)).size
    assert a[:size] != b[:size]
    with pytest.raises(IntegrityError):
        decrypt(b[:size] + a[size:], key)


def test_header_fields_are_authenticated_by_the_chunks(key: LocalKeyFile) -> None:
    """Even with a wrapper that accepts whatever key_id the header names, a changed key_id fails."""
    blob = encrypt(b"rows" * 10, key)
    i = blob.index(key.key_id.encode()) + len(key.key_id) - 1
    bad = bytearray(blob)
    bad[i] = ord("0") if bad[i] != ord("0") else ord("1")
    claimed = read_header(io.BytesIO(bytes(bad))).key_id

    class Permissive:
        kind = "file"
        key_id = claimed
        generate_data_key = key.generate_data_key
        unwrap = key.unwrap

    with pytest.raises(IntegrityError, match="chunk 0"):
        decrypt(bytes(bad), Permissive())


def test_not_a_backup(key: LocalKeyFile) -> None:
    with pytest.raises(IntegrityError, match="not a drkit encrypted backup"):
        decrypt(zstandard.ZstdCompressor().compress(b"plain"), key)


def test_unsealed_stream_never_looks_complete(key: LocalKeyFile) -> None:
    """A backup that fails half-way (exception, or never closed) must not decrypt as complete."""
    out = io.BytesIO()
    with pytest.raises(RuntimeError), EncryptWriter(out, key, chunk_size=SMALL) as w:
        w.write(os.urandom(3 * SMALL))
        raise RuntimeError("pg_dump died")
    with pytest.raises(IntegrityError, match="without the final chunk"):
        decrypt(out.getvalue(), key)

    out2 = io.BytesIO()
    w2 = EncryptWriter(out2, key, chunk_size=SMALL)
    w2.write(os.urandom(SMALL + 3))
    del w2  # garbage-collected without close()
    with pytest.raises(IntegrityError, match="without the final chunk"):
        decrypt(out2.getvalue(), key)


class FailsAfter(io.BytesIO):
    """A sink that fails (disk full) once it holds `limit` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, b) -> int:  # type: ignore[no-untyped-def,override]
        if self.tell() + len(b) > self.limit:
            raise OSError(28, "No space left on device")
        return super().write(b)


def test_a_failed_sink_write_is_never_sealed_over(key: LocalKeyFile) -> None:
    """After the sink refused a chunk, close() must not seal a stream with a hole in it."""
    sink = FailsAfter(limit=200)
    w = EncryptWriter(sink, key, chunk_size=SMALL)
    with pytest.raises(OSError):
        w.write(os.urandom(10 * SMALL))
    with pytest.raises(ValueError, match="earlier write"):
        w.write(b"more")
    sink.limit = 10**6  # the disk has room again
    w.close()
    with pytest.raises(IntegrityError, match="without the final chunk"):
        decrypt(sink.getvalue(), key)


# --- keys ----------------------------------------------------------------------------------


def test_wrong_key_file(key: LocalKeyFile, tmp_path: Path) -> None:
    blob = encrypt(b"secret rows", key)
    other = LocalKeyFile(tmp_path / "other.key", create=True)
    with pytest.raises(IntegrityError, match="wrong key"):
        decrypt(blob, other)
    # The unwrap itself also refuses, whatever the header claims.
    with pytest.raises(IntegrityError, match="wrong key"):
        other.unwrap(read_header(io.BytesIO(blob)).wrapped_key)


def test_resolver_gets_kind_and_key_id_from_the_header(key: LocalKeyFile) -> None:
    blob = encrypt(b"rows", key)
    asked: list[tuple[str, str]] = []

    def resolve(kind: str, key_id: str) -> KeyWrapper:
        asked.append((kind, key_id))
        return key

    with DecryptReader(io.BytesIO(blob), resolve) as r:
        assert r.read() == b"rows"
    assert asked == [("file", key.key_id)]


def test_read_header_reads_only_the_header(key: LocalKeyFile) -> None:
    blob = encrypt(os.urandom(100), key, chunk_size=32)
    src = io.BytesIO(blob)
    header = read_header(src)
    assert (header.version, header.kind, header.key_id, header.chunk_size) == (1, "file", key.key_id, 32)
    assert src.tell() == header.size == len(header.to_bytes())
    assert blob.startswith(b"DRKITENC\x01")


def test_key_file_created_0600_once_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "backup.key"
    created: list[Path] = []
    first = LocalKeyFile(path, create=True, on_created=created.append)
    assert created == [path]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert len(raw) == 32
    assert first.key_id == "file:sha256:" + hashlib.sha256(raw).hexdigest()[:16]

    again = LocalKeyFile(path, create=True, on_created=created.append)
    assert created == [path]  # not called for an existing file
    assert path.read_bytes() == raw and again.key_id == first.key_id
    assert sorted(p.name for p in path.parent.iterdir()) == ["backup.key"]  # no temp files left
    assert decrypt(encrypt(b"x", first), again) == b"x"


def test_key_file_creation_never_replaces_a_file_that_appears_meanwhile(tmp_path: Path) -> None:
    """The race: another process creates the key between our exists() check and our write."""
    from drkit import crypto

    path = tmp_path / "backup.key"
    path.write_bytes(b"k" * 32)
    assert crypto._create_key_file(path) is False
    assert path.read_bytes() == b"k" * 32
    assert [p.name for p in tmp_path.iterdir()] == ["backup.key"]


def test_missing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(UsageError, match=re.escape(str(path))):
        LocalKeyFile(path)
    assert not path.exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_key_file_accessible_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "backup.key"
    LocalKeyFile(path, create=True)
    path.chmod(mode)
    with pytest.raises(UsageError, match="chmod 600"):
        LocalKeyFile(path, create=True)
    path.chmod(0o600)
    LocalKeyFile(path)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_key_file_of_wrong_size_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "backup.key"
    path.write_bytes(b"k" * size)
    path.chmod(0o600)
    with pytest.raises(UsageError, match=f"holds {size} bytes"):
        LocalKeyFile(path, create=True)
    assert path.read_bytes() == b"k" * size


# --- memory --------------------------------------------------------------------------------


def test_memory_stays_flat(key: LocalKeyFile, tmp_path: Path) -> None:
    """32 MiB through 1 MiB chunks with odd write/read sizes: peak allocation ~ a few chunks."""
    chunk = DEFAULT_CHUNK_SIZE
    piece = os.urandom(3 * chunk + 12345)  # allocated before tracing starts
    path = tmp_path / "big.enc"
    digest_in = hashlib.sha256()
    tracemalloc.start()
    try:
        with open(path, "wb") as f, EncryptWriter(f, key) as w:
            for i in range(10):
                view = memoryview(piece)[i * 1000 :]
                w.write(view)
                digest_in.update(view)
        _, peak_write = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest_out = hashlib.sha256()
        with open(path, "rb") as f, DecryptReader(f, key) as r:
            while data := r.read(100_000):
                digest_out.update(data)
        _, peak_read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest_out.digest() == digest_in.digest()
    assert path.stat().st_size > 30 * chunk
    assert peak_write < 3.5 * chunk, peak_write
    assert peak_read < 3.5 * chunk, peak_read


# --- the documented format -----------------------------------------------------------------


def test_docs_recipe_decrypts_without_drkit(key: LocalKeyFile, tmp_path: Path) -> None:
    """docs/backup-format.md's recipe, run as a separate program, reads what drkit wrote."""
    doc = (REPO / "docs" / "backup-format.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    recipe = next(b for b in blocks if "decrypt-backup.py" in b)
    assert not re.search(r"^\s*(import|from)\s+drkit", recipe, flags=re.M)  # needs no drkit
    script = tmp_path / "decrypt-backup.py"
    script.write_text(recipe)
    data = os.urandom(5 * 1000 + 17)
    backup = tmp_path / "app.enc"
    with open(backup, "wb") as f, EncryptWriter(f, key, chunk_size=1000) as w:
        w.write(data)
    out = tmp_path / "app.out"
    # Run outside the repository so `import drkit` could not work even by accident.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [sys.executable, str(script), str(key.path), str(backup), str(out)],
        check=True, cwd=tmp_path, env=env, timeout=60,
    )
    assert out.read_bytes() == data

    tampered = tmp_path / "tampered.enc"
    shutil.copy(backup, tampered)
    with open(tampered, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    proc = subprocess.run(
        [sys.executable, str(script), str(key.path), str(tampered), str(tmp_path / "t.out")],
        cwd=tmp_path, env=env, timeout=60, capture_output=True,
    )
    assert proc.returncode != 0
