"""Built-in applets: how a command resolves to one, how a container's command merges with its image's, and
the argv that starts one as a process. Each family's applets are tested in test_applets_<family>.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cristack.containers.applets import APPLETS, child_argv, merge_command, resolve


def test_applet_set() -> None:
    expected = {"echo", "printf", "cat", "sleep", "true", "false", "exit", "seq", "env", "date", "hostname"}
    expected |= {"yes", "sh", "nginx", "stubborn", "pwd"}
    assert expected <= APPLETS


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["sh", "-c", "true"], "sh"),
        (["/bin/sh", "-c", "true"], "sh"),
        (["/usr/bin/env"], "env"),
        (["/bin/echo", "hi"], "echo"),
        (["nginx", "-g", "daemon off;"], "nginx"),
        (["/usr/sbin/nginx"], "nginx"),
        (["/docker-entrypoint.sh", "nginx"], None),
        (["python3"], None),
        (["/usr/bin/python3"], None),
        (["ls", "-l"], "ls"),
        (["vim"], None),
        (["./echo"], None),
        (["bin/echo"], None),
        ([""], None),
        ([], None),
    ],
)
def test_resolve(argv: list[str], name: str | None) -> None:
    assert resolve(argv) == name


def test_child_argv() -> None:
    argv = child_argv(["/bin/sh", "-c", "echo hi"])
    assert argv[0] == sys.executable and argv[-3:] == ["/bin/sh", "-c", "echo hi"]
    assert "runpy.run_module('cristack.containers.applets'" in argv[2] and "sys.path" in argv[2]  # not from the cwd
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout) == (0, "hi\n")


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "command", "args", "expected"),
    [
        (["/ep.sh"], ["nginx", "-g", "daemon off;"], [], [], ["/ep.sh", "nginx", "-g", "daemon off;"]),
        (["ep"], ["c1"], ["sh", "-c"], ["echo hi"], ["sh", "-c", "echo hi"]),
        # command without args drops the image CMD entirely
        (["ep"], ["c1", "c2"], ["sleep", "5"], [], ["sleep", "5"]),
        (["ep"], ["c1"], [], ["a1", "a2"], ["ep", "a1", "a2"]),
        ([], ["sh"], [], ["-c", "true"], ["-c", "true"]),
        ([], ["sh", "-c", "true"], [], [], ["sh", "-c", "true"]),
    ],
)  # fmt: skip
def test_merge_command(
    entrypoint: list[str], cmd: list[str], command: list[str], args: list[str], expected: list[str]
) -> None:
    assert merge_command(entrypoint, cmd, command, args) == expected


def test_merge_command_empty_is_an_error() -> None:
    with pytest.raises(ValueError):
        merge_command([], [], [], [])
    assert merge_command(["ep"], [], [], []) == ["ep"]
