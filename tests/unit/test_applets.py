"""Built-in applets: run in-process with captured streams, plus a few real child processes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cristack.containers.applets import APPLETS, Context, child_argv, merge_command, resolve, run
from tests.support.pace import allowance, timed

REPO = Path(__file__).resolve().parents[2]


def run_applet(
    *argv: str, stdin: bytes = b"", env: dict[str, str] | None = None, cwd: str | None = None
) -> tuple[int, str, str]:
    """Run an applet in-process; return (status, stdout, stderr)."""
    out, err = io.BytesIO(), io.BytesIO()
    ctx = Context(
        stdin=io.BytesIO(stdin),
        stdout=out,
        stderr=err,
        env={"PATH": "/usr/bin:/bin"} if env is None else env,
        cwd=cwd or os.getcwd(),
    )
    status = run(list(argv), ctx)
    return status, out.getvalue().decode(), err.getvalue().decode()


def sh(script: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return run_applet("sh", "-c", script, *args, env=env)


def spawn(*argv: str, **kwargs: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **kwargs.pop("env", {})}  # type: ignore[dict-item]
    return subprocess.Popen(
        child_argv(list(argv)),
        stdin=kwargs.pop("stdin", subprocess.DEVNULL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        **kwargs,  # type: ignore[arg-type]
    )


def run_child(*argv: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = spawn(*argv, stdin=subprocess.PIPE, env=env or {})
    out, err = proc.communicate(stdin, timeout=10)
    return proc.returncode, out.decode(), err.decode()


# --- resolution and command merging ---------------------------------------------------------------------


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


# --- simple applets in-process --------------------------------------------------------------------------


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


# --- the mini-shell -------------------------------------------------------------------------------------


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


def test_nginx_in_process_until_stopped() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    ctx = Context(io.BytesIO(), out, err, {"NGINX_INTERVAL": "0.05"}, "/")
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run(["nginx", "-g", "daemon off;"], ctx)))
    thread.start()
    deadline = time.monotonic() + 30
    while out.getvalue().count(b"\n") < 3:  # serving: three lines written
        assert time.monotonic() < deadline and thread.is_alive(), out.getvalue()
        time.sleep(0.01)
    ctx.stop.set()
    thread.join(2)
    assert result == [0]
    lines = out.getvalue().decode().splitlines()
    assert lines[0] == "/docker-entrypoint.sh: Configuration complete; ready for start up"
    assert len(lines) >= 3
    for line in lines[1:]:
        assert line.startswith("127.0.0.1 - - [")
        assert line.endswith('] "GET / HTTP/1.1" 200 615 "-" "kube-probe/1.36"')
        datetime.strptime(line.split("[", 1)[1].split("]", 1)[0], "%d/%b/%Y:%H:%M:%S %z")
    assert "start worker processes" in err.getvalue().decode()
    assert run_applet("nginx", env={"NGINX_INTERVAL": "soon"})[0] == 1


# --- real child processes -------------------------------------------------------------------------------


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


@pytest.mark.parametrize(("sig", "message"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGQUIT, "SIGQUIT")])
def test_child_nginx_graceful_shutdown(sig: signal.Signals, message: str) -> None:
    # Within 1 s of the signal; on a loaded machine, plus how long it just took to start (tests/support/pace.py).
    with timed() as start:
        proc = spawn("nginx", "-g", "daemon off;", env={"NGINX_INTERVAL": "0.05"})
        assert proc.stdout is not None
        assert b"ready for start up" in proc.stdout.readline()
    try:
        assert b"GET / HTTP/1.1" in proc.stdout.readline()
        budget = allowance(1.0, start.seconds)
        proc.send_signal(sig)
        with timed() as took:
            proc.wait(timeout=budget + 10)
        assert took.seconds <= budget, f"{took.seconds:.2f} s to exit (budget {budget:.1f} s)"
    finally:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0
    assert f"({message}) received".encode() in err
    assert err.rstrip().endswith(b": exit")


def test_child_stubborn_needs_sigkill() -> None:
    proc = spawn("stubborn")
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == b"stubborn: ignoring SIGTERM\n"
        # The kernel's own word, instead of waiting a while for an exit that should not come: SIGTERM is ignored.
        ignored = int(next(line.split()[1] for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                           if line.startswith("SigIgn:")), 16)
        assert ignored & 1 << (signal.SIGTERM - 1)
        proc.terminate()  # an ignored signal is discarded as it is sent
    finally:
        proc.kill()
        proc.communicate()
    # A fatal SIGTERM would have fixed the exit status when it was sent, before the SIGKILL.
    assert proc.returncode == -signal.SIGKILL


def test_child_sleep_dies_on_sigterm() -> None:
    proc = spawn("sh", "-c", "sleep 30")
    time.sleep(0.2)  # usually into the sleep; earlier, SIGTERM ends the start all the same
    proc.terminate()
    proc.communicate(timeout=25)  # a hang guard, below the sleep: the point is what ended it
    assert proc.returncode == -signal.SIGTERM


# --- the container's file view, and the busybox applets critest and busybox users expect --------------


def view(tmp_path: Path, *mounts: tuple[str, Path, bool], sysctls: dict[str, str] | None = None) -> Context:
    """A context inside a container whose scratch root is tmp_path/root, with the given mounts."""
    from cristack.containers.containerfs import Bundle, ContainerFS, Mount

    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    bundle = Bundle([Mount(dest, str(src), ro) for dest, src, ro in mounts], sysctls or {}).write(tmp_path / "bundle")
    fs = ContainerFS.from_bundle(str(bundle), str(root))
    return Context(io.BytesIO(), io.BytesIO(), io.BytesIO(), {}, "/", fs=fs)


def run_in(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.BytesIO(), io.BytesIO()
    status = run(list(argv), ctx.derive(stdout=out, stderr=err))
    return status, out.getvalue().decode(), err.getvalue().decode()


def test_ls_sees_a_mounted_host_path_and_a_symlinked_one(tmp_path: Path) -> None:
    host = tmp_path / "data"
    host.mkdir()
    (host / "testVolume.file").write_text("")
    (host / ".hidden").write_text("x")
    link = tmp_path / "data-symlink"
    link.symlink_to(host)
    ctx = view(tmp_path, (str(host), host, False), (str(link), link, False))
    assert run_in(ctx, "ls", "-A", str(host)) == (0, ".hidden\ntestVolume.file\n", "")
    assert run_in(ctx, "ls", str(link)) == (0, "testVolume.file\n", "")
    status, out, _ = run_in(ctx, "ls", "-l", str(host))
    assert status == 0 and out.startswith("total ") and "-rw-" in out and out.rstrip().endswith("testVolume.file")
    # The mountpoint's parents exist in the container, the rest of the host does not.
    assert str(host).split("/")[1] in run_in(ctx, "ls", "/")[1].split()
    assert run_in(ctx, "ls", "/etc/passwd") == (1, "", "ls: /etc/passwd: No such file or directory\n")


def test_paths_cannot_escape_a_mount(tmp_path: Path) -> None:
    host = tmp_path / "vol"
    host.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    (host / "up").symlink_to("../secret")
    (host / "abs").symlink_to(str(secret))
    ctx = view(tmp_path, ("/vol", host, False))
    for path in ("/vol/../secret", "/vol/up", "/vol/abs", "/../../secret", "vol/../../secret"):
        status, out, err = run_in(ctx, "cat", path)
        assert (status, out) == (1, ""), path
        assert "No such file or directory" in err
    # Writes land in the scratch root, never next to the mount on the host.
    assert run_in(ctx, "touch", "/vol/../escaped")[0] == 0
    assert not (tmp_path / "escaped").exists() and (tmp_path / "root" / "escaped").exists()


def test_readonly_mount_refuses_writes(tmp_path: Path) -> None:
    host = tmp_path / "ro"
    host.mkdir()
    (host / "keep").write_text("k")
    ctx = view(tmp_path, ("/ro", host, True))
    assert run_in(ctx, "touch", "/ro/new") == (1, "", "touch: /ro/new: Read-only file system\n")
    assert run_in(ctx, "rm", "/ro/keep")[2] == "rm: can't remove '/ro/keep': Read-only file system\n"
    assert run_in(ctx, "mkdir", "/ro/d")[2] == "mkdir: can't create directory '/ro/d': Read-only file system\n"
    assert (host / "keep").exists() and not (host / "new").exists()
    assert run_in(ctx, "cat", "/ro/keep") == (0, "k", "")


def test_cat_proc_sys_shows_the_sandbox_sysctls(tmp_path: Path) -> None:
    ctx = view(tmp_path, sysctls={"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100"})
    assert run_in(ctx, "cat", "/proc/sys/kernel/shm_rmid_forced") == (0, "1\n", "")
    assert run_in(ctx, "cat", "/proc/sys/fs/mqueue/msg_max") == (0, "100\n", "")
    assert run_in(ctx, "ls", "/proc/sys/fs") == (0, "mqueue\n", "")
    assert run_in(ctx, "cat", "/proc/sys/kernel/hostname")[0] == 1  # nothing of the host's /proc


def test_file_applets_in_a_scratch_root(tmp_path: Path) -> None:
    ctx = view(tmp_path)
    assert run_in(ctx, "mkdir", "-p", "/a/b/c") == (0, "", "")
    assert run_in(ctx, "mkdir", "/a") == (1, "", "mkdir: can't create directory '/a': File exists\n")
    assert run_in(ctx, "touch", "/a/b/f") == (0, "", "")
    assert run_in(ctx, "ls", "/a/b") == (0, "c\nf\n", "")
    assert run_in(ctx, "rm", "/a/b") == (1, "", "rm: '/a/b' is a directory\n")
    assert run_in(ctx, "rm", "/nope") == (1, "", "rm: can't remove '/nope': No such file or directory\n")
    assert run_in(ctx, "rm", "-f", "/nope") == (0, "", "")
    assert run_in(ctx, "rm", "-r", "/a") == (0, "", "")
    assert run_in(ctx, "ls", "-A", "/") == (0, "proc\n", "")


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["-d", "/"], 0), (["-f", "/"], 1), (["-e", "/nope"], 1), (["!", "-e", "/nope"], 0),
        (["a", "=", "a"], 0), (["a", "!=", "a"], 1), (["3", "-gt", "2"], 0), (["-z", ""], 0), (["-n", ""], 1),
        (["x"], 0), ([""], 1), ([], 1), (["1", "-eq", "1", "-a", "-d", "/proc"], 0), (["1", "-eq", "2", "-o", "x"], 0),
        (["a", "-lt", "b"], 2),
    ],
)
def test_test_and_bracket(tmp_path: Path, args: list[str], status: int) -> None:
    ctx = view(tmp_path)
    assert run_in(ctx, "test", *args)[0] == status
    assert run_in(ctx, "[", *args, "]")[0] == status
    assert run_in(ctx, "[", *args) == (2, "", "[: missing ]\n")


def test_wc_head_tail_grep(tmp_path: Path) -> None:
    ctx = view(tmp_path)
    (tmp_path / "root" / "f").write_text("one two\nthree\nfour five six\n")
    assert run_in(ctx, "wc", "-l", "/f") == (0, "      3 /f\n", "")
    assert run_in(ctx.derive(stdin=io.BytesIO(b"a b\nc\n")), "wc", "-l")[1] == "2\n"
    assert run_in(ctx, "wc", "/f")[1] == "      3       6      28 /f\n"
    assert run_in(ctx, "head", "-n", "1", "/f") == (0, "one two\n", "")
    assert run_in(ctx, "head", "-2", "/f")[1] == "one two\nthree\n"
    assert run_in(ctx, "tail", "-n", "1", "/f")[1] == "four five six\n"
    assert run_in(ctx, "tail", "-n", "+2", "/f")[1] == "three\nfour five six\n"
    assert run_in(ctx, "grep", "t[wh]", "/f") == (0, "one two\nthree\n", "")
    assert run_in(ctx, "grep", "-c", "-v", "o", "/f")[1] == "1\n"
    assert run_in(ctx, "grep", "-E", "^(one|four)", "-n", "/f")[1] == "1:one two\n3:four five six\n"
    assert run_in(ctx, "grep", "-q", "zzz", "/f") == (1, "", "")
    assert run_in(ctx, "grep", "x", "/missing")[0] == 2


class DrivenClock(threading.Event):
    """A stop event that records each wait an applet asks for and returns at once: the applet's clock, driven."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return False


def test_sleep_suffixes_and_fractions() -> None:
    ctx = Context(io.BytesIO(), io.BytesIO(), io.BytesIO(), {}, "/", stop=DrivenClock())
    assert run(["sleep", "0.1s", ".05", "0.001m", "0.0001h", "0d"], ctx) == 0
    assert ctx.stop.waits == [pytest.approx(0.1 + 0.05 + 0.06 + 0.36)]
    assert run(["sleep", "infinity"], ctx) == 0 and ctx.stop.waits[-1] is None
    for bad in ("1x", "-1", "abc"):
        status, _, err = run_applet("sleep", bad)
        assert status == 1 and err == f"sleep: invalid number '{bad}'\n"


def test_network_applets_fail_like_busybox_without_a_network() -> None:
    assert run_applet("nslookup", "kubernetes.default") == (
        1, ";; connection timed out; no servers could be reached\n\n", "")
    assert run_applet("wget", "-qO-", "http://example.com/") == (1, "", "wget: bad address 'example.com'\n")
    assert run_applet("wget", "http://10.0.0.1:8080/x")[2] == (
        "Connecting to 10.0.0.1 (10.0.0.1:8080)\n"
        "wget: can't connect to remote host (10.0.0.1): Network is unreachable\n")


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


def test_child_top_ps_and_pgrep_show_the_containers_own_processes(tmp_path: Path) -> None:
    from cristack.containers.containerfs import BUNDLE_ENV, Bundle

    root = tmp_path / "root"
    root.mkdir()
    bundle = Bundle().write(tmp_path / "bundle")
    env = {BUNDLE_ENV: str(bundle), "PWD": "/"}
    main = spawn("top", "-d", "0.2", env=env, cwd=str(root))
    outsider = spawn("sleep", "30", env={}, cwd=str(tmp_path))
    try:
        line = main.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith(b"Mem: ")
        proc = spawn("ps", env=env, cwd=str(root))
        out, _ = proc.communicate(timeout=10)
        lines = out.decode().splitlines()
        assert lines[0] == "PID   USER     TIME  COMMAND"
        assert any(line.endswith(" top -d 0.2") and line.split()[0] == str(main.pid) for line in lines)
        assert not any(str(outsider.pid) == line.split()[0] for line in lines[1:]), "another container's process"
        pg = spawn("pgrep", "top", env=env, cwd=str(root))
        assert pg.communicate(timeout=10)[0].decode().split() == [str(main.pid)]
        pg = spawn("pgrep", "sleep", env=env, cwd=str(root))
        assert pg.communicate(timeout=10)[0] == b"" and pg.returncode == 1
        # top keeps refreshing until it is killed.
        frames = 1
        while frames < 2:
            frames += main.stdout.readline().startswith(b"Mem: ")  # type: ignore[union-attr]
        assert main.poll() is None
    finally:
        main.send_signal(signal.SIGTERM)
        outsider.kill()
        assert main.wait(10) == -signal.SIGTERM
        outsider.wait(10)


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
