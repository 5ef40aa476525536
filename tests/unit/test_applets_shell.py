"""The mini-shell (cristack/containers/applets/shell.py): what it runs, what it refuses, and how it stops."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from cristack.containers.applets import Context, run
from tests.support.applets import run_applet, sh


@pytest.mark.parametrize(
    ("script", "status", "out"),
    [
        ("echo a; echo b", 0, "a\nb\n"),
        ("echo a\necho b\n\n", 0, "a\nb\n"),
        ("true && echo yes", 0, "yes\n"),
        ("false && echo yes", 1, ""),
        ("false || echo rescued", 0, "rescued\n"),
        ("true || echo no", 0, ""),
        ("false && echo x || echo y", 0, "y\n"),
        ("true && false || echo z", 0, "z\n"),
        ("false; echo $?", 0, "1\n"),
        ("exit 3; echo unreachable", 3, ""),
        ("false; exit", 1, ""),
        ("exit 7 && echo no", 7, ""),
        ("false || exit 4; echo no", 4, ""),
        ("exit 300", 44, ""),
        ("false && echo skipped; echo $?", 0, "1\n"),
        ("exit 5 || true", 5, ""),
        ("false\n", 1, ""),
        ("echo 'single $HOME quoted'", 0, "single $HOME quoted\n"),
        ('echo "double $V quoted"', 0, "double val quoted\n"),
        ("echo ${V}x $Vx end", 0, "valx end\n"),
        (
            'echo "${UNSET:-fallback}" ${V:-unused} "[${EMPTY-kept}]" "[${EMPTY:-dflt}]"',
            0,
            "fallback val [] [dflt]\n",
        ),
        ("echo [$EMPTY] $EMPTY x", 0, "[] x\n"),
        ('echo a\\ b "c  d" e   f', 0, "a b c  d e f\n"),
        ('X="1  2"; echo $X; echo "$X"', 0, "1 2\n1  2\n"),
        ("A=1; B=$A$A; echo $B", 0, "11\n"),
        ("echo 100$ cost", 0, "100$ cost\n"),
        ("echo one # a comment", 0, "one\n"),
        ("/bin/echo via-path && /bin/true", 0, "via-path\n"),
        ("printf '%s,' a b; echo", 0, "a,b,\n"),
        ("seq 2 && echo done", 0, "1\n2\ndone\n"),
        ("exec echo replaced; echo never", 0, "replaced\n"),
    ],
)
def test_sh_scripts(script: str, status: int, out: str) -> None:
    result = sh(script, env={"V": "val", "EMPTY": "", "HOME": "/root"})
    assert result[:2] == (status, out), result


def test_sh_positional_parameters() -> None:
    assert sh('echo "$0" $1 "$2" $#', "name", "a", "b c") == (0, "name a b c 2\n", "")
    assert run_applet("sh", "-c", 'printf "[%s]" "$@"; echo', "n", "x y", "z") == (0, "[x y][z]\n", "")
    assert sh("echo $0")[1] == "sh\n"


def test_sh_unknown_command() -> None:
    assert sh("nosuchcmd arg") == (127, "", "sh: nosuchcmd: not found\n")
    assert sh("nosuchcmd; echo $?") == (0, "127\n", "sh: nosuchcmd: not found\n")
    assert sh("python3 -c 'print(1)' || echo no-host-binaries") == (
        0,
        "no-host-binaries\n",
        "sh: python3: not found\n",
    )
    assert sh("/usr/bin/python3")[0] == 127


@pytest.mark.parametrize(
    "script",
    [
        "echo a | cat",
        "echo a > /tmp/x",
        "cat < /etc/passwd",
        "echo `hostname`",
        "echo $(hostname)",
        "echo $((1+1))",
        "sleep 1 &",
        "(echo sub)",
        "for x in 1 2; do echo $x; done",
        "case x in x) echo;; esac",
    ],
)
def test_sh_unsupported_syntax(script: str) -> None:
    status, out, err = sh("echo must-not-run; " + script)
    assert (status, out) == (2, "")
    assert err.startswith("sh: unsupported syntax: ")


@pytest.mark.parametrize("script", ["&& echo x", "echo x &&", "; echo", "echo a;; echo b", "echo 'open"])
def test_sh_syntax_errors(script: str) -> None:
    status, out, err = sh(script)
    assert (status, out) == (2, "")
    assert err.startswith("sh: syntax error")


def test_sh_variables_and_env() -> None:
    # Plain assignments are shell variables; export (or a prefix) passes them to commands.
    assert sh("A=1; env; export A; env", env={})[1] == "A=1\n"
    assert sh("B=2 env; env", env={})[1] == "B=2\n"
    assert sh("export C=3 D=4; env", env={})[1] == "C=3\nD=4\n"
    assert sh("unset E; echo [$E]; env", env={"E": "x"})[1] == "[]\n"
    assert sh("echo $HOSTNAME", env={"HOSTNAME": "pod-a"})[1] == "pod-a\n"


def test_sh_set_options() -> None:
    assert sh("set -e; echo one; false; echo two") == (1, "one\n", "")
    # set -e ignores failures on the left of && and ||
    assert sh("set -e; false && true; false || true; echo alive")[:2] == (0, "alive\n")
    assert sh("set -eu; echo $NOPE; echo no", env={}) == (2, "", "sh: NOPE: parameter not set\n")
    assert sh("set -x; echo hi", env={}) == (0, "hi\n", "+ echo hi\n")
    assert run_applet("sh", "-e", "-c", "false; echo no")[:2] == (1, "")
    assert sh("set -o pipefail; echo ok")[:2] == (0, "ok\n")


def test_sh_cd(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert sh(f"cd {tmp_path} && cd sub && pwd")[:2] == (0, f"{tmp_path / 'sub'}\n")
    status, _, err = sh("cd /definitely/not/here || echo $?")
    assert status == 0 and "can't cd to /definitely/not/here" in err


def test_sh_really_sleeps() -> None:
    start = time.monotonic()
    assert sh("sleep 0.2 && echo woke") == (0, "woke\n", "")
    assert time.monotonic() - start >= 0.19


def test_sh_reads_script_from_stdin_and_file(tmp_path: Path) -> None:
    assert run_applet("sh", stdin=b"echo from-stdin\nexit 6\n") == (6, "from-stdin\n", "")
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho file $1\n")
    assert run_applet("sh", str(script), "arg") == (0, "file arg\n", "")
    assert run_applet("sh", str(tmp_path / "none.sh"))[0] == 127
    assert run_applet("sh", "-c")[0] == 2


def test_nested_sh_and_stop_between_commands() -> None:
    assert sh("sh -c 'exit 9'; echo $?") == (0, "9\n", "")
    ctx = Context(io.BytesIO(), io.BytesIO(), io.BytesIO(), {}, "/")
    ctx.stop.set()
    assert run(["sh", "-c", "echo never"], ctx) == 143
    assert ctx.stdout.getvalue() == b""  # type: ignore[attr-defined]


def test_sh_loops_and_conditionals() -> None:
    assert sh("i=x; while test $i != xxx; do echo $i; i=${i}x; done")[1] == "x\nxx\n"
    assert sh("until true; do echo never; done; echo after")[1] == "after\n"
    assert sh("if false; then echo a; elif [ 1 -eq 1 ]; then echo b; else echo c; fi")[1] == "b\n"
    assert sh("if false; then echo a; fi")[0] == 0
    assert sh("set -e; while false; do :; done; echo still")[1] == "still\n"
    for script in ("while true; do echo x", "if true; then fi", "do echo", "while; do :; done"):
        status, out, err = sh(script)
        assert (status, out) == (2, "") and err.startswith("sh: syntax error"), script


def test_sh_while_loop_stops_when_asked() -> None:
    out = io.BytesIO()
    ctx = Context(io.BytesIO(), out, io.BytesIO(), {}, "/")
    t = threading.Thread(target=run, args=(["sh", "-c", "while true; do echo tick; sleep 0.05; done"], ctx))
    t.start()
    deadline = time.monotonic() + 5
    while out.getvalue().count(b"tick") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    ctx.stop.set()
    t.join(5)
    assert not t.is_alive() and out.getvalue().count(b"tick") >= 2
