"""Just enough of pg_dump's custom archive format to restore it while it is still being decrypted.

A custom-format archive is a header, a table of contents (TOC), then one data block per
table (and one for large objects), in TOC order. pg_dump writes the blocks' offsets into
the TOC only when its output is seekable; drkit's backups stream through a pipe, so
pg_restore finds blocks by reading. To load tables while the rest of the archive is still
being decrypted, drkit needs two facts pg_restore would otherwise find itself: where the TOC
ends, and where each data block starts and ends. This module reads them from the byte stream
(see pg_backup_archiver.c ReadHead/ReadToc and pg_backup_custom.c in PostgreSQL's sources).

Finding a block's end without walking its chunks: a table's data is COPY text, cut into
chunks of <len int><len bytes>, ended by a zero length. An int is a sign byte and `int_size`
little-endian bytes, so a zero length is 1 + int_size zero bytes; a non-zero length has at
most int_size zero bytes in a row, and COPY text never contains a NUL byte. So the first run
of 1 + int_size zero bytes after the block header is the block's end: a C-speed `find`
instead of a Python loop over millions of rows. Large-object blocks hold binary data where
that does not hold; for those (and any archive this module does not understand) the tracker
gives up and the caller falls back to restoring from the complete file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAGIC = b"PGDMP"
FORMAT_CUSTOM = 1
# Archive versions (major, minor) this parser knows: PostgreSQL 12-17's pg_dump write 1.14-1.16.
MIN_VERSION = (1, 12)
MAX_VERSION = (1, 16)
SECTION_NAMES = {1: "none", 2: "pre-data", 3: "data", 4: "post-data"}
BLK_DATA = 1
BLK_BLOBS = 3
OFFSET_POS_SET = 2
OFFSET_NO_DATA = 3


class NotUnderstood(Exception):
    """The bytes are not an archive this module can follow (the caller falls back)."""


class _Incomplete(Exception):
    """More bytes are needed."""


@dataclass(frozen=True)
class TocEntry:
    dump_id: int
    desc: str
    section: str
    tag: str
    has_data: bool  # a data block follows in the data region
    namespace: str = ""  # the schema (for TABLE DATA: of the table, whose name is the tag)
    deps: tuple[int, ...] = ()  # dump ids this entry depends on
    offset: int | None = None  # the block's offset, when pg_dump could write it (seekable output)


@dataclass(frozen=True)
class Toc:
    version: tuple[int, int, int]
    int_size: int
    end: int  # offset of the first byte after the TOC: where the data region starts
    entries: tuple[TocEntry, ...]


class _Reader:
    def __init__(self, buf: bytes | bytearray, version: tuple[int, int, int] = (1, 0, 0), int_size: int = 4) -> None:
        self.buf = buf
        self.pos = 0
        self.version = version
        self.int_size = int_size

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise _Incomplete
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if sign else value

    def str(self) -> str | None:
        n = self.int()
        if n < 0:
            return None
        return self.take(n).decode("utf-8", "replace")


def parse_toc(buf: bytes | bytearray) -> Toc | None:
    """The header and TOC at the start of `buf`; None if `buf` does not hold all of it yet.

    Raises NotUnderstood for anything but a custom-format archive of a known version."""
    try:
        return _parse(buf)
    except _Incomplete:
        return None


def _parse(buf: bytes | bytearray) -> Toc:
    r = _Reader(buf)
    if r.take(5) != MAGIC:
        raise NotUnderstood("not a pg_dump archive")
    vmaj, vmin, vrev = r.byte(), r.byte(), r.byte()
    version = (vmaj, vmin, vrev)
    if not MIN_VERSION <= (vmaj, vmin) <= MAX_VERSION:
        raise NotUnderstood(f"archive version {vmaj}.{vmin} is not one drkit can follow")
    r.version, r.int_size = version, r.byte()
    off_size = r.byte()
    if r.byte() != FORMAT_CUSTOM:
        raise NotUnderstood("not a custom-format archive")
    if (vmaj, vmin) >= (1, 15):
        r.byte()  # compression algorithm
    else:
        r.int()  # compression level
    for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
        r.int()
    for _ in range(3):  # database name, server version, pg_dump version
        r.str()
    count = r.int()
    entries = []
    for _ in range(count):
        dump_id = r.int()
        r.int()  # had dumper
        r.str()  # table oid
        r.str()  # oid
        tag = r.str() or ""
        desc = r.str() or ""
        section = SECTION_NAMES.get(r.int(), "none")
        for _ in range(3):  # definition, drop statement, copy statement
            r.str()
        namespace = r.str() or ""
        r.str()  # tablespace
        if (vmaj, vmin) >= (1, 14):
            r.str()  # table access method
        if (vmaj, vmin) >= (1, 16):
            r.int()  # relkind
        r.str()  # owner
        r.str()  # "with oids" (always false)
        deps = []
        while (dep := r.str()) is not None:  # dependencies, ended by a NULL string
            if dep.isdigit():
                deps.append(int(dep))
        flag = r.byte()  # custom format's extra TOC data: the data block's offset
        offset = int.from_bytes(r.take(off_size), "little")
        entries.append(
            TocEntry(
                dump_id, desc, section, tag,
                has_data=flag != OFFSET_NO_DATA, namespace=namespace, deps=tuple(deps),
                offset=offset if flag == OFFSET_POS_SET else None,
            )
        )
    return Toc(version, r.int_size, r.pos, tuple(entries))


@dataclass
class Block:
    dump_id: int
    start: int
    end: int | None = None  # None while the block is still arriving


@dataclass
class BlockTracker:
    """Fed the archive's bytes in order; learns the TOC and where each data block starts and ends.

    `failed` is set (and tracking stops) at the first thing it does not understand. Pieces
    are searched in place (no copies of the data), with a few bytes carried over between
    pieces for a header or terminator that straddles two of them."""

    toc: Toc | None = None
    blocks: list[Block] = field(default_factory=list)
    failed: str | None = None
    _head: bytearray = field(default_factory=bytearray)
    _tried: int = 0  # buffer size at the last parse attempt that needed more bytes
    _pos: int = 0  # stream offset of the next byte to be fed
    _carry: bytes = b""  # unparsed bytes just before the next piece
    _in_block: bool = False
    _data_ids: frozenset[int] = frozenset()

    def feed(self, data: bytes) -> None:
        start = self._pos
        self._pos += len(data)
        if self.failed is not None:
            return
        try:
            if self.toc is None:
                self._head += data
                # Parse again only once the buffer has doubled: a TOC of many MB (a schema of
                # 100,000 tables) then costs a few parses, not one per piece.
                if len(self._head) >= 2 * self._tried:
                    self._try_toc()
            else:
                self._scan(data, start)
        except NotUnderstood as exc:
            self.failed = str(exc)

    def _try_toc(self) -> None:
        self._tried = len(self._head)
        toc = parse_toc(self._head)
        if toc is None:
            return
        self.toc = toc
        self._data_ids = frozenset(e.dump_id for e in toc.entries if e.desc == "TABLE DATA" and e.has_data)
        rest = bytes(self._head[toc.end :])
        self._head = bytearray()
        self._scan(rest, toc.end)

    def _scan(self, data: bytes, start: int) -> None:
        """Consume self._carry + data; `data` starts at stream offset `start`."""
        assert self.toc is not None
        carry = self._carry
        base = start - len(carry)  # stream offset of logical index 0
        total = len(carry) + len(data)
        term = b"\x00" * (1 + self.toc.int_size)
        header = 2 + self.toc.int_size

        def window(i: int, n: int) -> bytes:
            if i >= len(carry):
                return data[i - len(carry) : i - len(carry) + n]
            return (carry + data[: n])[i : i + n]

        i = 0
        while True:
            if not self._in_block:
                if total - i < header:
                    break
                head = window(i, header)
                kind, dump_id = head[0], int.from_bytes(head[2:], "little")
                if kind == BLK_BLOBS:
                    raise NotUnderstood("the archive holds large objects")
                if kind != BLK_DATA or head[1] != 0 or dump_id not in self._data_ids:
                    raise NotUnderstood(f"unexpected bytes at offset {base + i} of the data region")
                self.blocks.append(Block(dump_id, base + i))
                i += header
                self._in_block = True
            found = -1
            if i < len(carry):  # a terminator that starts in the carry
                k = (carry[i:] + data[: len(term) - 1]).find(term)
                found = i + k if k >= 0 else -1
            if found < 0:
                k = data.find(term, max(0, i - len(carry)))
                found = len(carry) + k if k >= 0 else -1
            if found < 0:
                # Keep the last few bytes: the terminator may straddle this piece and the next.
                i = max(i, total - (len(term) - 1))
                break
            i = found + len(term)
            self.blocks[-1].end = base + i
            self._in_block = False
        self._carry = window(i, total - i) if i < total else b""

    def finish(self) -> None:
        """The stream ended: every block must be complete and nothing may be left over."""
        if self.failed is None and self.toc is None:
            try:
                self._try_toc()  # the last bytes may have come after the last attempt
            except NotUnderstood as exc:
                self.failed = str(exc)
        if self.failed is None and (self.toc is None or self._in_block or self._carry):
            self.failed = "the archive ended inside its TOC or a data block"
