"""The one-shot applets (cristack/containers/applets/coreutils.py), run in-process with captured streams."""

from __future__ import annotations

import io
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cristack.containers.applets import Context, run
from tests.support.applets import run_applet


class DrivenClock(threading.Event):
    """A stop event that records each wait an applet asks for and returns at once: the applet's clock, driven."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return False


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["echo", "hello", "world"], "hello world\n"),
        (["echo"], "\n"),
        (["echo", "-n", "no newline"], "no newline"),
        (["echo", "-e", r"a\tb\nc"], "a\tb\nc\n"),
        (["echo", r"a\tb"], "a\\tb\n"),
        (["echo", "-ne", r"x\0101"], "xA"),
        (["echo", "-e", r"cut\chere"], "cut"),
        (["echo", "-x", "y"], "-x y\n"),
        (["echo", "--", "y"], "-- y\n"),
    ],
)
def test_echo(argv: list[str], expected: str) -> None:
    assert run_applet(*argv) == (0, expected, "")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["printf", r"%s-%d\n", "a", "7"], "a-7\n"),
        (["printf", r"%s=%d\n", "a", "1", "b", "2", "c"], "a=1\nb=2\nc=0\n"),
        (["printf", r"100%%\n"], "100%\n"),
        (["printf", "plain"], "plain"),
        (["printf", r"[%5s][%-3d][%03d]\n", "ab", "4", "7"], "[   ab][4  ][007]\n"),
        (["printf", r"%x %o %.2f\n", "255", "8", "3.14159"], "ff 10 3.14\n"),
        (["printf", r"%s\n"], "\n"),
        (["printf", r"tab\there\101\n"], "tab\there\x41\n"),
        (["printf", "no-conversion", "extra"], "no-conversion"),
    ],
)
def test_printf(argv: list[str], expected: str) -> None:
    assert run_applet(*argv) == (0, expected, "")


def test_printf_errors() -> None:
    assert run_applet("printf", "%d\n", "abc") == (1, "0\n", "printf: invalid number 'abc'\n")
    status, _, err = run_applet("printf")
    assert status == 1 and "missing operand" in err


def test_cat(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    (tmp_path / "b.txt").write_bytes(b"beta")
    assert run_applet("cat", str(tmp_path / "a.txt"), str(tmp_path / "b.txt")) == (0, "alpha\nbeta", "")
    assert run_applet("cat", stdin=b"from stdin\nline 2\n") == (0, "from stdin\nline 2\n", "")
    assert run_applet("cat", "a.txt", "-", cwd=str(tmp_path), stdin=b"mid\n") == (0, "alpha\nmid\n", "")
    status, out, err = run_applet("cat", str(tmp_path / "missing"), str(tmp_path / "a.txt"))
    assert (status, out) == (1, "alpha\n")
    assert err == f"cat: {tmp_path / 'missing'}: No such file or directory\n"


def test_true_false_exit() -> None:
    assert run_applet("true")[0] == 0
    assert run_applet("false")[0] == 1
    assert run_applet("exit")[0] == 0
    assert run_applet("exit", "3")[0] == 3
    assert run_applet("exit", "256")[0] == 0
    assert run_applet("exit", "x") == (2, "", "exit: Illegal number: x\n")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["seq", "3"], "1\n2\n3\n"),
        (["seq", "2", "4"], "2\n3\n4\n"),
        (["seq", "1", "3", "10"], "1\n4\n7\n10\n"),
        (["seq", "5", "-2", "1"], "5\n3\n1\n"),
        (["seq", "-1", "1"], "-1\n0\n1\n"),
        (["seq", "1", "0.5", "2"], "1.0\n1.5\n2.0\n"),
        (["seq", "0"], ""),
        (["seq", "-s", ",", "3"], "1,2,3\n"),
        (["seq", "-w", "9", "11"], "09\n10\n11\n"),
    ],
)
def test_seq(argv: list[str], expected: str) -> None:
    assert run_applet(*argv) == (0, expected, "")


def test_seq_errors() -> None:
    assert run_applet("seq", "x") == (1, "", "seq: invalid floating point argument: 'x'\n")
    assert run_applet("seq", "1", "0", "3")[0] == 1
    assert run_applet("seq")[0] == 1


def test_sleep() -> None:
    start = time.monotonic()
    assert run_applet("sleep", "0.2") == (0, "", "")
    assert run_applet("sleep", "0.05", "0.05")[0] == 0
    assert time.monotonic() - start >= 0.29
    assert run_applet("sleep", "abc") == (1, "", "sleep: invalid number 'abc'\n")
    assert run_applet("sleep")[0] == 1


def test_sleep_infinity_until_stopped() -> None:
    ctx = Context(io.BytesIO(), io.BytesIO(), io.BytesIO(), {}, "/")
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run(["sleep", "infinity"], ctx)))
    thread.start()
    time.sleep(0.1)
    assert thread.is_alive()
    ctx.stop.set()
    thread.join(2)
    assert result == [143]


def test_sleep_suffixes_and_fractions() -> None:
    ctx = Context(io.BytesIO(), io.BytesIO(), io.BytesIO(), {}, "/", stop=DrivenClock())
    assert run(["sleep", "0.1s", ".05", "0.001m", "0.0001h", "0d"], ctx) == 0
    assert ctx.stop.waits == [pytest.approx(0.1 + 0.05 + 0.06 + 0.36)]
    assert run(["sleep", "infinity"], ctx) == 0 and ctx.stop.waits[-1] is None
    for bad in ("1x", "-1", "abc"):
        status, _, err = run_applet("sleep", bad)
        assert status == 1 and err == f"sleep: invalid number '{bad}'\n"


def test_env_prints_sorted() -> None:
    assert run_applet("env", env={"B": "2", "A": "1", "C": "x=y"}) == (0, "A=1\nB=2\nC=x=y\n", "")


def test_env_runs_applet_with_extra_env() -> None:
    assert run_applet("env", "GREETING=hi", "sh", "-c", "echo $GREETING $A", env={"A": "a"}) == (
        0,
        "hi a\n",
        "",
    )
    assert run_applet("env", "-i", "X=1", "env", env={"A": "a"}) == (0, "X=1\n", "")
    assert run_applet("env", "-u", "A", "env", env={"A": "a", "B": "b"}) == (0, "B=b\n", "")
    assert run_applet("env", "X=1", "python3") == (127, "", "env: 'python3': No such file or directory\n")


def test_date() -> None:
    assert run_applet("date", "-d", "@0") == (0, "Thu Jan  1 00:00:00 UTC 1970\n", "")
    assert run_applet("date", "-u", "-d", "@86400", "+%Y-%m-%d %H:%M") == (0, "1970-01-02 00:00\n", "")
    status, out, _ = run_applet("date", "+%Y")
    assert status == 0 and out == f"{datetime.now(timezone.utc).year}\n"
    assert run_applet("date", "bogus")[0] == 1


def test_hostname() -> None:
    assert run_applet("hostname", env={"HOSTNAME": "web-0.example"}) == (0, "web-0.example\n", "")
    assert run_applet("hostname", "-s", env={"HOSTNAME": "web-0.example"}) == (0, "web-0\n", "")
    import socket

    assert run_applet("hostname", env={}) == (0, socket.gethostname() + "\n", "")


def test_pwd(tmp_path: Path) -> None:
    assert run_applet("pwd", cwd=str(tmp_path)) == (0, f"{tmp_path}\n", "")


class _ClosingPipe(io.BytesIO):
    """A stdout whose reader goes away after ``limit`` writes."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.writes = 0
        self.limit = limit

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        if self.writes > self.limit:
            raise BrokenPipeError
        return super().write(data)


def test_yes_is_rate_limited() -> None:
    pipe = _ClosingPipe(limit=200)
    ctx = Context(io.BytesIO(), pipe, io.BytesIO(), {}, "/")
    start = time.monotonic()
    with pytest.raises(BrokenPipeError):
        run(["yes", "ok"], ctx)
    elapsed = time.monotonic() - start
    assert pipe.getvalue() == b"ok\n" * 200
    # 200 lines at <= 1000 lines/s need at least ~0.2 s.
    assert elapsed >= 0.19
