"""CRI log file format: timestamps, F/P records, chunking, rotation and reading back."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cristack.containers.crilog import CriLogWriter, format_timestamp, parse_line, read_log

# 2026-11-21T06:52:03Z
T0 = 1_795_243_923 * 1_000_000_000


def records(path: Path) -> list[tuple[str, str, str, str]]:
    return [parse_line(line) for line in path.read_text().splitlines(keepends=True)]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[CriLogWriter]:
    writer = CriLogWriter(tmp_path / "0.log")
    yield writer
    writer.close()


# --- timestamps -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        (T0, "2026-11-21T06:52:03Z"),
        (T0 + 123_456_789, "2026-11-21T06:52:03.123456789Z"),
        (T0 + 123_400_000, "2026-11-21T06:52:03.1234Z"),
        (T0 + 100_000_000, "2026-11-21T06:52:03.1Z"),
        (T0 + 1, "2026-11-21T06:52:03.000000001Z"),
        (T0 + 10, "2026-11-21T06:52:03.00000001Z"),
        (0, "1970-01-01T00:00:00Z"),
        (1_500_000_000, "1970-01-01T00:00:01.5Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
    ],
)
def test_format_timestamp(ns: int, expected: str) -> None:
    assert format_timestamp(ns) == expected


# --- writing --------------------------------------------------------------------------------------------


def test_full_lines(log: CriLogWriter) -> None:
    written = log.write("stdout", b"hello\nworld\n", now_ns=T0 + 5_000)
    assert log.path.read_bytes() == (
        b"2026-11-21T06:52:03.000005Z stdout F hello\n2026-11-21T06:52:03.000005Z stdout F world\n"
    )
    assert written == log.path.stat().st_size
    log.write("stderr", b"oops\n", now_ns=T0)
    assert records(log.path)[-1] == ("2026-11-21T06:52:03Z", "stderr", "F", "oops")


def test_blank_lines_and_raw_bytes(log: CriLogWriter) -> None:
    log.write("stdout", b"\n\tindented \r\n\xff\xfe binary\n", now_ns=T0)
    assert log.path.read_bytes().split(b"\n")[:-1] == [
        b"2026-11-21T06:52:03Z stdout F ",
        b"2026-11-21T06:52:03Z stdout F \tindented \r",
        b"2026-11-21T06:52:03Z stdout F \xff\xfe binary",
    ]


def test_chunk_boundaries_inside_a_line(log: CriLogWriter) -> None:
    assert log.write("stdout", b"hel", now_ns=T0) == 0
    assert log.pending("stdout") == b"hel"
    assert log.path.read_bytes() == b""
    log.write("stdout", b"lo wor", now_ns=T0)
    log.write("stdout", b"ld\nsecond", now_ns=T0 + 1)
    log.write("stdout", b" line\n", now_ns=T0 + 2)
    assert [(r[0], r[2], r[3]) for r in records(log.path)] == [
        ("2026-11-21T06:52:03.000000001Z", "F", "hello world"),
        ("2026-11-21T06:52:03.000000002Z", "F", "second line"),
    ]
    assert log.pending("stdout") == b""


def test_streams_are_buffered_separately(log: CriLogWriter) -> None:
    log.write("stdout", b"out-", now_ns=T0)
    log.write("stderr", b"err-", now_ns=T0)
    log.write("stderr", b"line\n", now_ns=T0)
    log.write("stdout", b"line\n", now_ns=T0)
    assert [(r[1], r[3]) for r in records(log.path)] == [("stderr", "err-line"), ("stdout", "out-line")]


def test_long_line_is_split_into_partials(tmp_path: Path) -> None:
    with CriLogWriter(tmp_path / "long.log", max_line=4) as log:
        log.write("stdout", b"abcdefghij\nxy\n", now_ns=T0)
        log.write("stdout", b"12345678\n", now_ns=T0)  # exact multiple: the last full piece is the F
    assert [(r[2], r[3]) for r in records(tmp_path / "long.log")] == [
        ("P", "abcd"),
        ("P", "efgh"),
        ("F", "ij"),
        ("F", "xy"),
        ("P", "1234"),
        ("F", "5678"),
    ]
    assert read_log(tmp_path / "long.log") == [
        ("stdout", "abcdefghij"),
        ("stdout", "xy"),
        ("stdout", "12345678"),
    ]


def test_long_unfinished_line_is_not_buffered_forever(tmp_path: Path) -> None:
    with CriLogWriter(tmp_path / "stream.log", max_line=4) as log:
        log.write("stdout", b"abcdefgh", now_ns=T0)
        # "efgh" might be the end of the line: it waits for the next byte.
        assert [(r[2], r[3]) for r in records(log.path)] == [("P", "abcd")]
        assert log.pending("stdout") == b"efgh"
        log.write("stdout", b"\n", now_ns=T0)
        for byte in b"0123456789":
            log.write("stdout", bytes([byte]), now_ns=T0)
        log.write("stdout", b"\n", now_ns=T0)
    assert [(r[2], r[3]) for r in records(tmp_path / "stream.log")] == [
        ("P", "abcd"),
        ("F", "efgh"),
        ("P", "0123"),
        ("P", "4567"),
        ("F", "89"),
    ]


def test_default_max_line_is_16k(log: CriLogWriter) -> None:
    log.write("stdout", b"x" * (16 * 1024 + 1) + b"\n", now_ns=T0)
    assert [(r[2], len(r[3])) for r in records(log.path)] == [("P", 16 * 1024), ("F", 1)]


def test_flush_partial(log: CriLogWriter) -> None:
    log.write("stdout", b"done\nno newline at exit", now_ns=T0)
    assert log.flush_partial("stderr") == 0
    written = log.flush_partial("stdout", now_ns=T0 + 7)
    assert written == len(b"2026-11-21T06:52:03.000000007Z stdout P no newline at exit\n")
    assert log.pending("stdout") == b""
    assert log.flush_partial("stdout") == 0
    assert [(r[2], r[3]) for r in records(log.path)] == [("F", "done"), ("P", "no newline at exit")]
    assert read_log(log.path) == [("stdout", "done"), ("stdout", "no newline at exit")]


def test_bad_stream_rejected(log: CriLogWriter) -> None:
    with pytest.raises(ValueError):
        log.write("stdin", b"x\n")


def test_file_mode_and_append(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    path.write_bytes(b"2026-11-21T06:52:03Z stdout F earlier\n")
    umask = os.umask(0)
    os.umask(umask)
    with CriLogWriter(path) as log:
        log.write("stdout", b"later\n", now_ns=T0)
    assert read_log(path) == [("stdout", "earlier"), ("stdout", "later")]
    new = tmp_path / "new.log"
    CriLogWriter(new).close()
    assert stat.S_IMODE(new.stat().st_mode) == 0o640 & ~umask


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CriLogWriter(tmp_path / "no-such-dir" / "0.log")


def test_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (tmp_path / "0.log").symlink_to(target)
    with pytest.raises(OSError):
        CriLogWriter(tmp_path / "0.log")
    assert target.read_bytes() == b""


def test_reopen_after_rename(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    log = CriLogWriter(path)
    log.write("stdout", b"before rotation\nhalf ", now_ns=T0)
    path.rename(tmp_path / "0.log.20261121-065203")
    log.write("stdout", b"still old\n", now_ns=T0)  # until reopened, writes follow the renamed file
    log.reopen()
    log.write("stdout", b"after rotation\n", now_ns=T0)
    log.close()
    assert read_log(tmp_path / "0.log.20261121-065203") == [
        ("stdout", "before rotation"),
        ("stdout", "half still old"),
    ]
    assert read_log(path) == [("stdout", "after rotation")]
    assert log.closed
    with pytest.raises(ValueError):
        log.write("stdout", b"x\n")
    log.close()  # idempotent


def test_reopen_keeps_unfinished_line(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    with CriLogWriter(path) as log:
        log.write("stderr", b"spans ", now_ns=T0)
        path.rename(tmp_path / "0.log.1")
        log.reopen()
        log.write("stderr", b"rotation\n", now_ns=T0)
    assert (tmp_path / "0.log.1").read_bytes() == b""
    assert read_log(path) == [("stderr", "spans rotation")]


# --- reading --------------------------------------------------------------------------------------------


def test_parse_line() -> None:
    assert parse_line("2026-11-21T06:52:03.1Z stdout F hello world\n") == (
        "2026-11-21T06:52:03.1Z",
        "stdout",
        "F",
        "hello world",
    )
    assert parse_line("2026-11-21T06:52:03Z stderr P  two  spaces ") == (
        "2026-11-21T06:52:03Z",
        "stderr",
        "P",
        " two  spaces ",
    )
    assert parse_line("2026-11-21T06:52:03Z stdout F ")[3] == ""
    assert parse_line("2026-11-21T06:52:03Z stdout F:x text")[2] == "F:x"
    for bad in ["", "2026-11-21T06:52:03Z stdout F", "ts stdin F x", "ts stdout X x"]:
        with pytest.raises(ValueError):
            parse_line(bad)


def test_round_trip_interleaved(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    with CriLogWriter(path, max_line=8) as log:
        log.write("stdout", b"a long stdout line\nshort\n")
        log.write("stderr", b"error: ")
        log.write("stdout", b"more\n")
        log.write("stderr", b"disk full\n")
        log.write("stdout", b"tail\xe2\x9c\x93")
        log.flush_partial("stdout")
    assert read_log(path) == [
        ("stdout", "a long stdout line"),
        ("stdout", "short"),
        ("stdout", "more"),
        ("stderr", "error: disk full"),
        ("stdout", "tail\u2713"),
    ]
    for timestamp, *_ in records(path):
        assert timestamp.endswith("Z") and timestamp[10] == "T"


def test_read_log_binary_and_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    with CriLogWriter(path) as log:
        log.write("stdout", b"\xff raw\r\n", now_ns=T0)
    with open(path, "ab") as f:
        f.write(b"2026-11-21T06:52:03Z stdout F torn wri")
    [(stream, text)] = read_log(path)
    assert stream == "stdout"
    assert text.encode("utf-8", "surrogateescape") == b"\xff raw\r"


def test_iter_output_serves_the_log_in_file_order_in_bounded_pieces(tmp_path: Path) -> None:
    """As the kubelet's ReadLogs: full records with their newline, partial ones without, in file order; never
    more than a piece and a record in memory, whatever the log's size."""
    from cristack.containers.crilog import MAX_RECORD, iter_output

    path = tmp_path / "0.log"
    with CriLogWriter(path, max_line=1000) as log:
        for i in range(2000):
            log.write("stdout", f"line {i}\n".encode())
        log.write("stdout", b"x" * 2500)  # two P records, then its end in an F
        log.write("stderr", b"err\n")
        log.write("stdout", b"!\n")
    pieces = list(iter_output(path, chunk=4096))
    assert max(len(p) for p in pieces) < 4096 + MAX_RECORD
    text = b"".join(pieces)
    assert text.startswith(b"line 0\nline 1\n") and text.endswith(b"x" * 2000 + b"err\n" + b"x" * 500 + b"!\n")
    assert text.count(b"\n") == 2002
    with path.open("ab") as f:
        f.write(b"2026-01-01T00:00:00Z stdout F no newline yet")
    assert b"".join(iter_output(path)) == text, "a write in progress is not served"
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"y" * (MAX_RECORD + 10) + b"\n")
    with pytest.raises(ValueError, match="longer than"):
        list(iter_output(bad))
