"""Applets as real child processes (``child_argv``), as a container's process runs them: exit statuses, streams,
signals, and the fork server's wait."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.support.applets import run_child, spawn


def test_child_echo_and_exit_status() -> None:
    assert run_child("/bin/echo", "hello", "from", "a", "child") == (0, "hello from a child\n", "")
    assert run_child("sh", "-c", "echo out >&2") == (
        2,
        "",
        "sh: unsupported syntax: '>' (redirections are not supported)\n",
    )
    assert run_child("sh", "-c", "echo before; nope; exit 42") == (42, "before\n", "sh: nope: not found\n")


def test_child_unknown_binary() -> None:
    assert run_child("/usr/local/bin/app", "--serve") == (
        127,
        "",
        'exec: "/usr/local/bin/app": executable file not found in $PATH\n',
    )


def test_child_cat_copies_stdin_until_eof() -> None:
    assert run_child("cat", stdin=b"line 1\nline 2\nno newline") == (0, "line 1\nline 2\nno newline", "")


def test_child_output_is_line_buffered() -> None:
    # Each line must reach the pipe as it is produced, not when the process exits: the first line arrives while
    # `cat` still waits for the input only this test can end.
    proc = spawn("sh", "-c", "echo first; cat; echo second", stdin=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == b"first\n"
        out, _ = proc.communicate(b"", timeout=60)  # closes cat's input
        assert (proc.returncode, out) == (0, b"second\n")
    finally:
        proc.kill()
        proc.wait()


def test_child_yes_rate_limited_and_broken_pipe() -> None:
    proc = spawn("yes")
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"y\n"  # it is writing
    proc.stdout.close()  # the reader goes away: yes must exit quietly
    proc.wait(timeout=5)
    err = proc.stderr.read() if proc.stderr else b""
    assert proc.returncode == 141
    assert err == b""

    proc = spawn("yes", "x")
    assert proc.stdout is not None
    first = proc.stdout.readline()  # it has started (however long the interpreter took on a busy machine)
    started = time.monotonic()
    time.sleep(0.5)
    proc.kill()
    out, _ = proc.communicate()
    elapsed = time.monotonic() - started
    # ~1000 lines/s at most: the rate, not the start-up, is what is limited
    assert first == b"x\n" and 0 < out.count(b"x\n") <= 1000 * elapsed + 100


def test_child_sleep_dies_on_sigterm() -> None:
    proc = spawn("sh", "-c", "sleep 30")
    time.sleep(0.2)  # usually into the sleep; earlier, SIGTERM ends the start all the same
    proc.terminate()
    proc.communicate(timeout=25)  # a hang guard, below the sleep: the point is what ended it
    assert proc.returncode == -signal.SIGTERM


def test_a_child_that_exits_before_its_spawn_returns_is_still_waited_for() -> None:
    """The fork server's pid answer and the child's exit report can be dispatched back to back, before spawn()
    resumes: wait() must still get the exit (it used to wait forever: an exec of `echo` hung until its timeout)."""
    import asyncio

    from cristack.containers import zygote

    async def scenario() -> int:
        z = zygote.Zygote()
        loop = asyncio.get_running_loop()

        async def ensure() -> object:
            return object()

        async def send(_sock, _payload, _fds) -> None:  # noqa: ANN001
            loop.call_soon(z._dispatch, {"id": z._next, "pid": 4242})
            loop.call_soon(z._dispatch, {"exit": 4242, "code": 0})

        z._ensure = ensure  # type: ignore[method-assign]
        original, zygote._send_async = zygote._send_async, send
        try:
            pid = await z.spawn(["true"], {}, Path("/"), 0, 1, 2)
        finally:
            zygote._send_async = original
        return await asyncio.wait_for(z.wait(pid), 30)  # a hang guard: the exit is dispatched at once

    assert asyncio.run(scenario()) == 0
