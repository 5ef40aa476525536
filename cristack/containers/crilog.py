"""The Kubernetes CRI container log file format, as written by conmon/CRI-O and read by the kubelet.

Each record is one line::

    2026-11-21T06:52:03.123456789Z stdout F hello world

- timestamp: RFC3339Nano in UTC, formatted like Go's ``time.RFC3339Nano`` (trailing zeros of the
  fraction trimmed, no fraction at all when it is zero);
- stream: ``stdout`` or ``stderr``;
- tag: ``F`` for a record that ends a line, ``P`` for a partial one (a line split because it was too long,
  or the last bytes of a stream that closed without a newline);
- content: the container's bytes, unchanged, without the newline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cristack.wording import shown

STREAMS = ("stdout", "stderr")
TAG_FULL = "F"
TAG_PARTIAL = "P"
DEFAULT_MAX_LINE = 16 * 1024

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def format_timestamp(ns: int) -> str:
    """Format nanoseconds since the Unix epoch exactly like Go's RFC3339Nano in UTC."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    # timedelta arithmetic avoids the platform limits of fromtimestamp for far-off dates.
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


class CriLogWriter:
    """Writes a container's output to a CRI log file, one record per line or line piece.

    ``write`` takes chunks exactly as read from the container's pipes, so a line may arrive in several
    pieces; the unfinished tail of each stream is buffered until its newline arrives. A line longer than
    ``max_line`` bytes is written as ``P`` records of ``max_line`` bytes followed by a final ``F`` record,
    and an unfinished tail is never buffered beyond ``max_line`` bytes.

    The caller creates the log directory. The file is opened append-only with mode 0o640 (minus umask),
    and never through a symlink in its last component, so a planted link cannot redirect the log.
    """

    def __init__(self, path: Path, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError(f"max_line must be positive, got {max_line}")
        self.path = Path(path)
        self.max_line = max_line
        self._pending: dict[str, bytearray] = {stream: bytearray() for stream in STREAMS}
        self._fd: int | None = self._open()

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        return os.open(self.path, flags, 0o640)

    def __enter__(self) -> CriLogWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once ``close`` has been called."""
        return self._fd is None

    def pending(self, stream: str) -> bytes:
        """The buffered, not yet written, unfinished line of ``stream``."""
        return bytes(self._pending[_check_stream(stream)])

    def write(self, stream: str, data: bytes, now_ns: int | None = None) -> int:
        """Log a chunk of ``stream`` output; return the number of bytes written to the file.

        Complete lines become ``F`` records; an unfinished tail is kept for the next call. All records
        from one call share one timestamp (``now_ns``, default the current time).
        """
        buf = self._pending[_check_stream(stream)]
        buf += data
        records: list[tuple[str, bytes]] = []
        start = 0
        while (newline := buf.find(b"\n", start)) >= 0:
            self._split(buf[start:newline], records)
            start = newline + 1
        # Bound the buffer: a long unfinished line goes out as P records now; keep at most max_line bytes,
        # because the next byte may be the newline that makes them the line's F record.
        while len(buf) - start > self.max_line:
            records.append((TAG_PARTIAL, bytes(buf[start : start + self.max_line])))
            start += self.max_line
        del buf[:start]
        return self._emit(stream, records, now_ns)

    def _split(self, line: bytearray, records: list[tuple[str, bytes]]) -> None:
        # Every piece but the last is P; the last (possibly empty for a blank line) ends the line with F.
        pos = 0
        while len(line) - pos > self.max_line:
            records.append((TAG_PARTIAL, bytes(line[pos : pos + self.max_line])))
            pos += self.max_line
        records.append((TAG_FULL, bytes(line[pos:])))

    def flush_partial(self, stream: str, now_ns: int | None = None) -> int:
        """Write the buffered unfinished line of ``stream`` as a ``P`` record (call when it closes).

        Returns the number of bytes written (0 if nothing was buffered).
        """
        buf = self._pending[_check_stream(stream)]
        if not buf:
            return 0
        records = [(TAG_PARTIAL, bytes(buf))]
        buf.clear()
        return self._emit(stream, records, now_ns)

    def _emit(self, stream: str, records: list[tuple[str, bytes]], now_ns: int | None) -> int:
        if not records:
            return 0
        if self._fd is None:
            raise ValueError(f"write to closed CRI log {self.path}")
        prefix = f"{format_timestamp(time.time_ns() if now_ns is None else now_ns)} {stream} ".encode()
        payload = b"".join(prefix + tag.encode() + b" " + content + b"\n" for tag, content in records)
        view = memoryview(payload)
        while view:
            # os.write may write less than asked (e.g. interrupted by a signal); finish the job.
            written = os.write(self._fd, view)
            view = view[written:]
        return len(payload)

    def reopen(self) -> None:
        """Close and reopen the path (log rotation: the old file was renamed away, a new one is created).

        Unfinished lines stay buffered and continue in the new file.
        """
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._fd = self._open()

    def close(self) -> None:
        """Close the file (idempotent). Unfinished lines are dropped: ``flush_partial`` first keeps them."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _check_stream(stream: str) -> str:
    if stream not in STREAMS:
        raise ValueError(f"stream must be 'stdout' or 'stderr', got {stream!r}")
    return stream


def parse_line(line: str) -> tuple[str, str, str, str]:
    """Split one CRI log record into (timestamp, stream, tag, content); raise ValueError if malformed.

    A trailing newline is ignored. The tag may carry extra ``:``-separated tags as the CRI allows; its
    first element must be ``P`` or ``F``.
    """
    if line.endswith("\n"):
        line = line[:-1]
    parts = line.split(" ", 3)
    if len(parts) != 4:
        raise ValueError(f"malformed CRI log line: {shown(line)}")
    timestamp, stream, tag, content = parts
    if stream not in STREAMS:
        raise ValueError(f"malformed CRI log line (stream {shown(stream)}): {shown(line)}")
    if tag.split(":", 1)[0] not in (TAG_FULL, TAG_PARTIAL):
        raise ValueError(f"malformed CRI log line (tag {shown(tag)}): {shown(line)}")
    return timestamp, stream, tag, content


def read_log(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Read a CRI log file and reassemble ``P``/``F`` records into whole (stream, text) messages.

    Content is decoded as UTF-8 with surrogateescape, so arbitrary bytes survive a round trip through
    ``text.encode("utf-8", "surrogateescape")``. A stream's trailing ``P`` records without an ``F`` (the
    stream closed mid-line) still make a message. A last line without a newline is a write in progress
    and is skipped, as the kubelet's reader does.
    """
    data = Path(path).read_bytes()
    # Split on b"\n" only: str.splitlines would also split content at \r, \v, \f and friends.
    lines = data.split(b"\n")[:-1]
    messages: list[tuple[str, str]] = []
    partial: dict[str, list[str]] = {stream: [] for stream in STREAMS}
    open_order: list[str] = []
    for raw in lines:
        _, stream, tag, content = parse_line(raw.decode("utf-8", "surrogateescape"))
        pieces = partial[stream]
        pieces.append(content)
        if tag.split(":", 1)[0] == TAG_PARTIAL:
            if len(pieces) == 1:
                open_order.append(stream)
            continue
        if len(pieces) > 1:
            open_order.remove(stream)
        messages.append((stream, "".join(pieces)))
        pieces.clear()
    for stream in open_order:
        messages.append((stream, "".join(partial[stream])))
    return messages


# The longest record a reader accepts: a writer's longest piece, its prefix and room for other writers' (conmon-rs
# writes up to 8 KiB pieces, CRI-O's conmon 8 KiB, ours DEFAULT_MAX_LINE). A longer line is not a CRI log.
MAX_RECORD = 4 * DEFAULT_MAX_LINE


def iter_output(path: str | os.PathLike[str], chunk: int = 64 * 1024) -> Iterator[bytes]:
    """The container's output as the kubelet serves it (cri-client pkg/logs/logs.go ``ReadLogs``/``parseCRILog``):
    the records in file order, a full one's content with its newline, a partial one's without, in pieces of
    about ``chunk`` bytes. Memory stays bounded whatever the file's size (one record at a time), unlike
    ``read_log``, which reassembles messages and holds them all. A last line without a newline is a write in
    progress and is skipped; a record longer than ``MAX_RECORD`` or malformed raises ValueError (after what
    came before it was yielded)."""
    out = bytearray()
    with open(path, "rb") as f:
        while raw := f.readline(MAX_RECORD + 1):
            if not raw.endswith(b"\n"):
                if len(raw) > MAX_RECORD:
                    raise ValueError(f"malformed CRI log line: longer than {MAX_RECORD:,} bytes")
                break  # a write in progress
            _, _, tag, content = parse_line(raw.decode("utf-8", "surrogateescape"))
            out += content.encode("utf-8", "surrogateescape")
            if tag.split(":", 1)[0] == TAG_FULL:
                out += b"\n"
            if len(out) >= chunk:
                yield bytes(out)
                out.clear()
    if out:
        yield bytes(out)
