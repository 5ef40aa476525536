"""Signals and cleanup: `cristack up` stops everything it started, whatever stops it, and leaves nothing behind.

Each case starts the real `cristack up` (kubelet, crio, conmon and their fork servers as real processes), stops
it the way a user does (Ctrl-C, SIGTERM, a closed terminal's SIGHUP, a closed pipe, a second signal during
shutdown, SIGKILL), and checks it exits promptly, every process it started is gone (walking /proc), and its
temp dir is removed unless --keep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cristack.harness.procs import component_argv
from tests.support.pace import allowance, interpreter_start, timed


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: set[int], timeout: float = 3.0) -> set[int]:
    """The pids still alive after ``timeout`` (a dying process takes a moment to leave /proc)."""
    deadline = time.monotonic() + timeout
    left = {p for p in pids if alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if alive(p)}
    return left


def start_up(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "NO_COLOR": "1"}
    proc = subprocess.Popen(component_argv("cristack", "up", "--manifests", str(tmp_path / "pods"), *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                            start_new_session=True)
    return proc, tmp


def wait_banner(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Ctrl-C stops everything" in line:
            return
        assert time.monotonic() < deadline, "no banner in time"
    raise AssertionError(f"cristack up exited before serving: {proc.wait()}\n{proc.stderr.read()}")


def wait_components(proc: subprocess.Popen, n: int = 3, timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        procs = descendants(proc.pid)
        if len(procs) >= n or time.monotonic() > deadline:
            return procs
        time.sleep(0.05)


def assert_clean_exit(proc: subprocess.Popen, procs: set[int], tmp: Path, reference: float) -> None:
    """Exits within 3 s (on a loaded machine, plus ``reference``: how long the same machine just took to start
    what is stopping, tests/support/pace.py), leaving no process, no temp dir and no traceback."""
    budget = allowance(3.0, reference)
    with timed() as took:
        try:
            proc.wait(timeout=budget + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"cristack up did not exit within {budget + 5:.1f} s") from None
    assert took.seconds <= budget, f"cristack up took {took.seconds:.2f} s to exit (budget {budget:.1f} s)"
    left = wait_gone(procs)
    assert not left, f"processes left running: {[Path(f'/proc/{p}/cmdline').read_text() for p in left]}"
    assert list(tmp.iterdir()) == [], f"temp dirs left behind: {list(tmp.iterdir())}"
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def serving_up(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path, set[int], float]:
    """`cristack up` started and serving, its five processes (kubelet, crio, conmon and the two fork servers),
    and the seconds that took."""
    with timed() as started:
        proc, tmp = start_up(tmp_path, *extra)
        wait_banner(proc)
        procs = wait_components(proc, 5)
    assert len(procs) >= 3
    return proc, tmp, procs, started.seconds


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_while_serving_stops_everything_and_removes_the_temp_dir(tmp_path: Path, sig) -> None:
    proc, tmp, procs, started = serving_up(tmp_path)
    proc.send_signal(sig)
    assert_clean_exit(proc, procs, tmp, started)


def test_a_signal_while_starting_stops_everything(tmp_path: Path) -> None:
    reference = interpreter_start()  # the stack never comes up: a reference of its own
    proc, tmp = start_up(tmp_path)
    procs = wait_components(proc, 1)  # the first component has been started, the stack is not up yet
    procs |= descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    procs |= descendants(proc.pid)
    assert_clean_exit(proc, procs, tmp, reference)


def test_a_second_signal_during_shutdown_does_not_cut_the_cleanup_short(tmp_path: Path) -> None:
    proc, tmp, procs, started = serving_up(tmp_path)
    proc.send_signal(signal.SIGTERM)
    for _ in range(5):
        time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    assert_clean_exit(proc, procs, tmp, started)


def test_a_closed_stdout_stops_everything(tmp_path: Path) -> None:
    """`cristack up | head -8`: once the reader is gone, up notices and stops."""
    proc, tmp, procs, started = serving_up(tmp_path)
    assert proc.stdout is not None
    proc.stdout.close()
    assert_clean_exit(proc, procs, tmp, started)


def test_killed_outright_its_components_die_with_it(tmp_path: Path) -> None:
    """SIGKILL runs no cleanup: the parent-death signal still stops every component."""
    proc, _, procs, started = serving_up(tmp_path)
    proc.kill()
    proc.wait()
    # Each component stops on its own (its parent-death signal): within 5 s, plus the machine's pace.
    assert not wait_gone(procs, timeout=allowance(5.0, started))


def test_keep_keeps_the_temp_dir_and_names_it(tmp_path: Path) -> None:
    proc, tmp = start_up(tmp_path, "--keep")
    wait_banner(proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    kept = list(tmp.iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("cristack-up-")
    assert f"kept {kept[0]}" in proc.stderr.read()


@pytest.mark.parametrize("component", ["fake-crio", "fake-conmon"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("state", ["starting", "serving"])
def test_each_component_exits_within_2s_of_a_signal(tmp_path: Path, component: str, sig, state: str) -> None:
    """A component stops within 2 s of SIGINT/SIGTERM whether it is still starting or serving, and takes its
    fork server with it. On a loaded machine: 2 s plus how long the same machine just took to start it (serving),
    or to start an interpreter with the components' imports (starting) (tests/support/pace.py)."""
    from cristack.wire.endpoints import parse_endpoint, serving

    sock = tmp_path / "run" / "c.sock"
    args = ["--listen", f"unix://{sock}", "--runtime-dir" if component == "fake-conmon" else "--root",
            str(tmp_path / "state")]
    if component == "fake-crio":
        args += ["--runroot", str(tmp_path / "runroot")]
    from cristack.lifeline import held_sigint

    reference = interpreter_start() if state == "starting" else 0.0
    with timed() as start:
        with held_sigint():  # as the harness starts components (procs.start): CPython's own start is not ours
            proc = subprocess.Popen(component_argv(component, *args), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
        if state == "serving":
            deadline = time.monotonic() + 30
            while not serving(parse_endpoint(str(sock))):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            procs = wait_components(proc, 1)  # its fork server
        else:
            procs = descendants(proc.pid)
    budget = allowance(2.0, reference if state == "starting" else start.seconds)
    proc.send_signal(sig)
    with timed() as took:
        proc.wait(timeout=budget + 10)
    assert took.seconds <= budget, f"{took.seconds:.2f} s to exit (budget {budget:.1f} s)"
    assert not wait_gone(procs | descendants(proc.pid))
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_during_cristack_demo_stops_everything_and_removes_its_temp_dir(tmp_path: Path, sig) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(component_argv("cristack", "demo"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TMPDIR": str(tmp), "NO_COLOR": "1"}, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    with timed() as started:
        for line in proc.stdout:
            if "running hello.yaml" in line:
                break
        procs = wait_components(proc, 3)
    proc.send_signal(sig)
    assert_clean_exit(proc, procs, tmp, started.seconds)


def test_a_repeated_stop_signal_neither_kills_a_component_mid_shutdown_nor_prints_a_traceback(make_stack, sink):
    """A supervisor that signals twice (``Proc.terminate`` then ``Proc.stop``, or an impatient user) must not
    cut a component's shutdown short: it would lose the spans still to flush, and a signal that lands after
    the event loop closed printed "Exception ignored when trying to write to the signal wakeup fd"."""
    stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint)
    stack.start()
    procs = {"kubelet": stack.kubelet, "crio": stack.crio, "conmon": stack.conmon}
    # The kubelet's relists are traced through crio: the stack is up and exporting.
    assert sink.store.wait(lambda st: {"kubelet", "crio"} <= {s.service for s in st.spans()}, 20)
    for proc in procs.values():
        proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(p.popen.poll() is None for p in procs.values()) and time.monotonic() < deadline:
        for proc in procs.values():  # again and again, until each has exited
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGTERM)
        time.sleep(0.002)
    codes = {name: p.popen.poll() for name, p in procs.items()}
    assert codes == {name: 0 for name in procs}, codes
    for name, text in stack.logs().items():
        assert "Traceback" not in text and "wakeup fd" not in text, (name, text[-2000:])


def test_ctrl_c_while_a_component_is_still_importing_ends_it_without_a_traceback() -> None:
    """A SIGINT that lands before the component's handlers exist (a loaded machine stretches its imports) ends
    it as Ctrl-C ends any program, not with a KeyboardInterrupt traceback from the middle of an import."""
    import sys

    from cristack.pyexec import python_argv

    # What a component started by the harness runs first, then a Ctrl-C during its (here: pretended) imports.
    code = ("from cristack.lifeline import from_env; from_env(); import os, signal, time; "
            "os.kill(os.getpid(), signal.SIGINT); time.sleep(5)")
    proc = subprocess.run(python_argv(code), capture_output=True, text=True, timeout=30, executable=sys.executable)
    assert proc.returncode == -signal.SIGINT, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_ctrl_c_during_the_interpreters_own_start_ends_a_component_quietly() -> None:
    """A SIGINT at any moment of a harness-started component's start, also while CPython itself is still
    starting (site, our first imports), ends it as Ctrl-C ends any program: no traceback, no fatal error."""
    from cristack.lifeline import held_sigint
    from cristack.pyexec import python_argv

    code = "from cristack.lifeline import from_env; from_env(); import time; time.sleep(10)"
    for delay_ms in range(0, 60, 4):  # across the interpreter's start, into our code
        with held_sigint():
            proc = subprocess.Popen(python_argv(code), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay_ms / 1000)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        err = proc.stderr.read() if proc.stderr else ""
        assert proc.returncode == -signal.SIGINT and "Traceback" not in err, (delay_ms, proc.returncode, err)


@pytest.mark.parametrize("component", ["fake-crio", "fake-conmon"])
def test_a_stop_signal_the_moment_the_socket_appears_is_a_clean_stop(tmp_path: Path, component: str) -> None:
    """A supervisor (or a test) that sees the socket may stop the server at once, before it has finished
    starting: that is a clean stop (exit 0, socket removed), not death by the signal's default action."""
    sock = tmp_path / "run" / "s.sock"
    args = {"fake-crio": ["--listen", f"unix://{sock}", "--root", str(tmp_path / "r"), "--runroot",
                          str(tmp_path / "rr"), "--enable-tracing=false"],
            "fake-conmon": ["--listen", f"unix://{sock}", "--runtime-dir", str(tmp_path / "c")]}[component]
    for attempt in range(3):  # three times: the window before serving is short
        proc = subprocess.Popen(component_argv(component, *args), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
            pass  # no sleep: the signal must land as close to the bind as we can make it
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, f"attempt {attempt}: exit {proc.returncode}\n{err}"
        assert not sock.exists(), f"attempt {attempt}: the socket was left behind"
