"""Envelope encryption for backups: AES-256-GCM in the STREAM construction, streaming.

Every backup gets a fresh random 32-byte data key. The data key is wrapped by a
`KeyWrapper` (a local key file here, or `drkit.aws.kms.KmsKeyWrapper`) and the wrapped
blob is stored in the backup's header. The plaintext is cut into fixed-size chunks, each
sealed with AES-256-GCM under the data key, as `age` does:

* nonce = 11-byte big-endian chunk counter + 1 flag byte (0x01 on the final chunk only);
* associated data = the serialized header, on every chunk;
* every chunk but the last holds exactly `chunk_size` bytes; the last holds fewer (maybe 0).

So tampering, reordering, truncation (at a chunk boundary or inside one), appended data, a
swapped header and a wrong key all fail authentication on decrypt. The byte layout and a
recipe that decrypts without drkit are in docs/backup-format.md; keep the two in step.

This module never imports boto3 or drkit.aws: the KMS wrapper is handed in by the caller.
Memory stays flat (about two chunks) whatever the size of the backup.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from drkit.errors import IntegrityError, UsageError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

MAGIC = b"DRKITENC"
FORMAT_VERSION = 1
DEFAULT_CHUNK_SIZE = 1 << 20
# Bounds on chunk_size: a damaged or hostile header must not make a reader allocate gigabytes.
MIN_CHUNK_SIZE = 1
MAX_CHUNK_SIZE = 64 << 20
DATA_KEY_SIZE = 32
TAG_SIZE = 16
_COUNTER_LIMIT = 1 << 88  # the counter is 11 bytes; never wrap (would reuse a nonce)

# Associated data when a local key file wraps a data key: separates this use of the file key
# from any other (documented in docs/backup-format.md).
FILE_WRAP_AAD = b"drkit:data-key:v1"
_FILE_WRAP_NONCE = 12
_FILE_WRAPPED_SIZE = _FILE_WRAP_NONCE + DATA_KEY_SIZE + TAG_SIZE


@runtime_checkable
class KeyWrapper(Protocol):
    """Wraps and unwraps per-backup data keys.

    `kind` is "file" or "kms"; `key_id` names the wrapping key (file: "file:sha256:<16 hex>",
    kms: the key ARN) and is stored in each backup's header so a reader can find the key.
    """

    kind: str
    key_id: str

    def generate_data_key(self) -> tuple[bytes, bytes]:
        """Return (plaintext 32-byte data key, wrapped blob to store in the header)."""
        ...

    def unwrap(self, wrapped: bytes) -> bytes:
        """Return the plaintext data key; raise IntegrityError ("... wrong key ...") if it can't."""
        ...


def file_key_id(key: bytes) -> str:
    """The key_id of a local key file: enough of its hash to tell keys apart, never the key."""
    return "file:sha256:" + hashlib.sha256(key).hexdigest()[:16]


class LocalKeyFile:
    """A 32-byte key in a local file (mode 0600) that wraps data keys with AES-256-GCM.

    wrapped blob = 12-byte random nonce || AESGCM(file_key).encrypt(nonce, data_key, FILE_WRAP_AAD)

    With `create=True` a missing file is made (32 random bytes, parent directories, mode
    0600, written atomically and never over an existing file) and `on_created(path)` is
    called once so the caller can warn, loudly, that backups are unreadable without it.
    """

    kind = "file"

    def __init__(
        self,
        path: Path,
        *,
        create: bool = False,
        on_created: Callable[[Path], None] | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise UsageError(
                    f"key file {self.path} does not exist; restore it from where you keep its copy "
                    "(backups encrypted with it cannot be read without it)"
                )
            if _create_key_file(self.path) and on_created is not None:
                on_created(self.path)
        self._key = _load_key_file(self.path)
        self.key_id = file_key_id(self._key)
        self._aead = AESGCM(self._key)

    def generate_data_key(self) -> tuple[bytes, bytes]:
        data_key = os.urandom(DATA_KEY_SIZE)
        nonce = os.urandom(_FILE_WRAP_NONCE)
        return data_key, nonce + self._aead.encrypt(nonce, data_key, FILE_WRAP_AAD)

    def unwrap(self, wrapped: bytes) -> bytes:
        failure = IntegrityError(
            f"cannot unwrap the backup's data key with key file {self.path} ({self.key_id}): "
            "wrong key, or the backup header is damaged"
        )
        if len(wrapped) != _FILE_WRAPPED_SIZE:
            raise failure
        try:
            return self._aead.decrypt(wrapped[:_FILE_WRAP_NONCE], wrapped[_FILE_WRAP_NONCE:], FILE_WRAP_AAD)
        except InvalidTag:
            raise failure from None

    def __repr__(self) -> str:  # never show the key
        return f"LocalKeyFile({str(self.path)!r}, key_id={self.key_id!r})"


def _create_key_file(path: Path) -> bool:
    """Create a fresh key file at `path`; return False if someone else created it first.

    Written to a temp file in the same directory (0600, fsynced), then hard-linked into
    place: link() fails if the target exists, so an existing key is never overwritten
    (rename() would silently replace it, and a replaced key loses every backup).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(os.urandom(DATA_KEY_SIZE))
            tmp.flush()
            os.fsync(tmp.fileno())
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return False
        except OSError:
            # A filesystem without hard links: fall back to check-then-rename (a tiny race).
            if path.exists():
                return False
            os.rename(tmp_name, path)
        _fsync_dir(path.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def _fsync_dir(directory: Path) -> None:
    """Make the new directory entry durable (best effort where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _load_key_file(path: Path) -> bytes:
    """Read and check a key file: exactly 32 bytes, not readable or writable by others."""
    try:
        st = path.stat()
        if os.name == "posix" and st.st_mode & 0o077:
            raise UsageError(
                f"key file {path} is accessible by group or others (mode {st.st_mode & 0o777:o}); "
                f"run: chmod 600 {path}"
            )
        key = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    if len(key) != DATA_KEY_SIZE:
        raise UsageError(
            f"key file {path} holds {len(key)} bytes, a drkit key file holds exactly {DATA_KEY_SIZE}; "
            "point drkit at the right file (do not edit key files)"
        )
    return key


@dataclass(frozen=True)
class EncryptionHeader:
    """The header at the start of every encrypted backup (docs/backup-format.md).

    It is not authenticated by itself: it is the associated data of every chunk, so a
    changed header fails on the first chunk. Fields read without decrypting (as
    `backup list` does) are only as trustworthy as the storage.
    """

    version: int
    chunk_size: int
    kind: str
    key_id: str
    wrapped_key: bytes

    def to_bytes(self) -> bytes:
        kind = self.kind.encode("ascii")
        key_id = self.key_id.encode("utf-8")
        if not kind or len(kind) > 0xFF or len(key_id) > 0xFFFF or len(self.wrapped_key) > 0xFFFF:
            raise ValueError("header field too long")
        return b"".join(
            (
                MAGIC,
                struct.pack(">BIB", self.version, self.chunk_size, len(kind)),
                kind,
                struct.pack(">H", len(key_id)),
                key_id,
                struct.pack(">H", len(self.wrapped_key)),
                self.wrapped_key,
            )
        )

    @property
    def size(self) -> int:
        """Length of the serialized header in bytes (where the first chunk starts)."""
        return len(self.to_bytes())


def read_header(source: BinaryIO) -> EncryptionHeader:
    """Read and parse the header at the current position of `source` (and nothing more).

    Raises IntegrityError if the bytes are not a drkit encrypted backup or the header is
    damaged or truncated. Does not check authenticity (see EncryptionHeader).
    """

    def take(n: int, what: str) -> bytes:
        data = _read_exact(source, n)
        if len(data) != n:
            raise IntegrityError(f"encrypted backup header is truncated (in {what})")
        return data

    if take(len(MAGIC), "magic") != MAGIC:
        raise IntegrityError("not a drkit encrypted backup (bad magic bytes); is it the right file?")
    version, chunk_size, kind_len = struct.unpack(">BIB", take(6, "version/chunk size"))
    if version != FORMAT_VERSION:
        raise IntegrityError(
            f"encrypted backup has format version {version}, this drkit reads version {FORMAT_VERSION}: "
            "upgrade drkit, or the header is damaged"
        )
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise IntegrityError(f"encrypted backup header is damaged (chunk size {chunk_size})")
    try:
        kind = take(kind_len, "key wrapper kind").decode("ascii")
        (key_id_len,) = struct.unpack(">H", take(2, "key id length"))
        key_id = take(key_id_len, "key id").decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError("encrypted backup header is damaged (key wrapper kind or key id)") from None
    (wrapped_len,) = struct.unpack(">H", take(2, "wrapped key length"))
    wrapped = take(wrapped_len, "wrapped key")
    return EncryptionHeader(FORMAT_VERSION, chunk_size, kind, key_id, wrapped)


def _read_exact(source: BinaryIO, n: int) -> bytes:
    """Read n bytes, or fewer only at EOF (a raw stream or socket may return short reads)."""
    data = source.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = source.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _nonce(counter: int, last: bool) -> bytes:
    if counter >= _COUNTER_LIMIT:
        raise IntegrityError("encrypted stream is too long (chunk counter exhausted)")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class EncryptWriter(io.RawIOBase):
    """A writable stream that encrypts into `sink`: write() any sizes, close() to finish.

    The header is written at construction (after the wrapper generated the data key).
    Whole chunks are emitted as soon as they fill; close() seals the final, shorter chunk
    and flushes the sink (and closes it if `owns_sink`). Leaving a `with` block on an
    exception, calling abort(), or dropping the writer without close() does NOT seal the
    stream: the result then fails to decrypt as truncated, so a failed backup can never
    pass for a complete one.
    """

    def __init__(
        self,
        sink: BinaryIO,
        wrapper: KeyWrapper,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        owns_sink: bool = False,
    ) -> None:
        super().__init__()
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}")
        self._sink = sink
        self._owns_sink = owns_sink
        self._chunk_size = chunk_size
        self._finished = False
        self._failed = False  # a chunk may be missing: never seal such a stream
        data_key, wrapped = wrapper.generate_data_key()
        if len(data_key) != DATA_KEY_SIZE:
            raise ValueError(f"key wrapper {wrapper.kind} returned a {len(data_key)}-byte data key")
        self.header = EncryptionHeader(FORMAT_VERSION, chunk_size, wrapper.kind, wrapper.key_id, wrapped)
        self._aad = self.header.to_bytes()
        self._aead = AESGCM(data_key)
        self._buf = bytearray(chunk_size)
        self._fill = 0
        self._counter = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self._write_out(self._aad)

    def writable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer) -> int:
        if self.closed:
            raise ValueError("write to a closed EncryptWriter")
        if self._failed:
            raise ValueError("EncryptWriter: an earlier write to the sink failed; the stream is unusable")
        with memoryview(b) as view, view.cast("B") as data:
            n = len(data)
            size = self._chunk_size
            pos = 0
            if self._fill:
                # Top up the partial chunk first.
                take = min(size - self._fill, n)
                self._buf[self._fill : self._fill + take] = data[:take]
                self._fill += take
                pos = take
                if self._fill == size:
                    self._seal(self._buf, last=False)
                    self._fill = 0
            # Whole chunks straight from the caller's buffer: no copy.
            while n - pos >= size:
                self._seal(data[pos : pos + size], last=False)
                pos += size
            if pos < n:
                rest = n - pos
                self._buf[:rest] = data[pos:]
                self._fill = rest
        self.bytes_in += n
        return n

    def _seal(self, plaintext: bytes | bytearray | memoryview, *, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._counter, last), plaintext, self._aad)
        self._counter += 1
        try:
            self._write_out(sealed)
        except BaseException:
            self._failed = True
            raise

    def _write_out(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._sink.write(view)
            if not written:  # None or 0: a non-blocking raw sink that took nothing
                raise BlockingIOError("the backup sink accepted no data")
            if written == len(view):
                break
            view = view[written:]
        self.bytes_out += len(data)

    def flush(self) -> None:
        # Only whole chunks can be written before close(); flushing just passes through.
        if not self._finished and not self.closed:
            self._sink.flush()

    def close(self) -> None:
        """Seal the final chunk, flush the sink (close it if owned). Idempotent.

        If a write to the sink failed earlier, the stream is left unsealed (as abort()).
        """
        if self.closed:
            return
        self._finish(seal=True)

    def abort(self) -> None:
        """Stop without sealing: what was written stays an incomplete (undecryptable) stream."""
        if self.closed:
            return
        self._finish(seal=False)

    def _finish(self, *, seal: bool) -> None:
        try:
            if seal and not self._failed:
                self._seal(memoryview(self._buf)[: self._fill], last=True)
                self._sink.flush()
        finally:
            self._finished = True
            self._buf = bytearray()
            try:
                if self._owns_sink:
                    self._sink.close()
            finally:
                super().close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # io.IOBase.__del__ would call close() and seal a stream nobody finished: abort instead.
        # getattr: __init__ may have failed before the attributes existed.
        if getattr(self, "_finished", True) or self.closed:
            return
        with contextlib.suppress(Exception):
            self.abort()


class DecryptReader(io.RawIOBase):
    """A readable stream of the plaintext of an encrypted backup read from `source`.

    The header is read and the data key unwrapped at construction. `resolve_wrapper` is a
    KeyWrapper, or a function (kind, key_id) -> KeyWrapper that picks one from the header.
    Each chunk is authenticated before any of its bytes are returned; IntegrityError is
    raised at a tampered or reordered chunk, at truncation (EOF before the final chunk), at
    data after the final chunk, and for a wrong key. Only reading to EOF (read() returning
    b"") proves the whole backup is intact. `source` is not closed.
    """

    def __init__(
        self,
        source: BinaryIO,
        resolve_wrapper: Callable[[str, str], KeyWrapper] | KeyWrapper,
    ) -> None:
        super().__init__()
        self._source = source
        self.header = read_header(source)
        if isinstance(resolve_wrapper, KeyWrapper):
            wrapper = resolve_wrapper
        else:
            wrapper = resolve_wrapper(self.header.kind, self.header.key_id)
        if (wrapper.kind, wrapper.key_id) != (self.header.kind, self.header.key_id):
            raise IntegrityError(
                f"wrong key: the backup was encrypted with {self.header.kind} key {self.header.key_id}, "
                f"but the key given is {wrapper.kind} key {wrapper.key_id}"
            )
        data_key = wrapper.unwrap(self.header.wrapped_key)
        if len(data_key) != DATA_KEY_SIZE:
            raise IntegrityError(f"wrong key: unwrapped data key has {len(data_key)} bytes")
        self._aad = self.header.to_bytes()
        self._aead = AESGCM(data_key)
        self._sealed_size = self.header.chunk_size + TAG_SIZE
        self._counter = 0
        self._done = False
        self._chunk = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bool:
        """Authenticate the next chunk into self._chunk; False at the (verified) end."""
        if self._done:
            return False
        sealed = _read_exact(self._source, self._sealed_size)
        if len(sealed) < TAG_SIZE:
            raise IntegrityError(
                f"encrypted backup is truncated: it ends after chunk {self._counter} "
                "without the final chunk (an interrupted upload or copy?)"
            )
        # Every chunk but the last is full size, so a short read is the final chunk.
        last = len(sealed) < self._sealed_size
        try:
            plaintext = self._aead.decrypt(_nonce(self._counter, last), sealed, self._aad)
        except InvalidTag:
            raise IntegrityError(
                f"encrypted backup is damaged at chunk {self._counter} (byte offset "
                f"{self.header.size + self._counter * self._sealed_size}): it was modified, "
                "truncated or reordered"
            ) from None
        if last and self._source.read(1):
            raise IntegrityError("encrypted backup has unexpected data after its final chunk")
        self._counter += 1
        self._done = last
        self._chunk = plaintext
        self._pos = 0
        return True

    def _available(self) -> int:
        """Bytes ready in the current chunk, fetching the next chunk(s) when it is used up."""
        while self._pos >= len(self._chunk):
            if not self._next_chunk():
                return 0
        return len(self._chunk) - self._pos

    def readinto(self, b: WriteableBuffer) -> int:
        if self.closed:
            raise ValueError("read from a closed DecryptReader")
        with memoryview(b) as view, view.cast("B") as out:
            if not len(out):
                return 0
            n = min(self._available(), len(out))
            out[:n] = memoryview(self._chunk)[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed DecryptReader")
        if size is None or size < 0:
            return self.readall()
        if size == 0:
            return b""
        avail = self._available()
        if not avail:
            return b""
        if self._pos == 0 and size >= avail:
            # The whole chunk: hand over the bytes object itself, no copy.
            self._pos = avail
            return self._chunk
        n = min(avail, size)
        data = self._chunk[self._pos : self._pos + n]
        self._pos += n
        return data

    def readall(self) -> bytes:
        parts = []
        while chunk := self.read(self._sealed_size):
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self._chunk = b""
        super().close()
