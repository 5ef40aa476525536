"""The long-running applets (cristack/containers/applets/daemons.py): nginx in-process and as a process, and the
one that ignores SIGTERM."""

from __future__ import annotations

import io
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from cristack.containers.applets import Context, run
from tests.support.applets import run_applet, spawn
from tests.support.pace import allowance, timed


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
