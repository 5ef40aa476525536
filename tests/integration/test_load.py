"""``cristack load`` as a user runs it: a real process starting two real nodes, against the OTLP sink or against an
endpoint where nothing listens. Short runs (a few seconds of pods); deadlines are generous for a loaded machine."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from cristack.harness.procs import component_argv
from cristack.wire.endpoints import free_ports

RUN = ["--nodes", "2", "--pods-per-second", "3", "--duration", "4", "--pod-lifetime", "2", "--interval", "1"]


def load(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(component_argv("cristack", "load", *args), capture_output=True, text=True, timeout=timeout)


def summary(out: str) -> dict[str, int]:
    """The totals and per-node figures of the summary lines."""
    got: dict[str, int] = {}
    m = re.search(r"^cristack load: .* pods created (\d+) .*started (\d+) .*pending at the end (\d+)$", out, re.M)
    assert m, out
    got["created"], got["started"], got["pending"] = map(int, m.groups())
    m = re.search(r"^  spans exported ([\d,]+) .*dropped ([\d,]+) \(export failed ([\d,]+), queue full ([\d,]+)\)$",
                  out, re.M)
    assert m, out
    got["exported"], got["dropped"], got["failed"], got["queue_full"] = (int(x.replace(",", "")) for x in m.groups())
    for node, created, started in re.findall(r"^  (node-\d+): created (\d+), started (\d+),", out, re.M):
        got[f"{node} created"], got[f"{node} started"] = int(created), int(started)
    return got


def test_load_reports_what_the_sink_received_from_two_nodes(sink) -> None:
    run = load(*RUN, "--otlp-endpoint", sink.addresses.otlp_endpoint)
    assert run.returncode == 0, run.stdout + run.stderr
    got = summary(run.stdout)
    spans = sink.store.spans()
    if got["dropped"] == 0:
        assert got["exported"] == len(spans), run.stdout
    else:  # an export that timed out may still have arrived: the sink holds at least what was reported sent
        assert got["exported"] <= len(spans) <= got["exported"] + got["dropped"], run.stdout
    assert got["created"] >= 10, run.stdout  # 3/s for 4 s
    assert got["node-1 started"] > 0 and got["node-2 started"] > 0, run.stdout
    assert {s.resource.get("host.name") for s in spans} == {"node-1", "node-2"}
    # Progress lines came while it ran, not only the summary.
    assert len(re.findall(r"^ +\d+\.\ds  pods created \d+, started \d+", run.stdout, re.M)) >= 2, run.stdout


def test_load_with_nobody_listening_keeps_the_rate_and_reports_the_drops() -> None:
    port = free_ports(1)[0]  # nothing listens there
    started = time.monotonic()
    run = load(*RUN, "--otlp-endpoint", f"127.0.0.1:{port}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert time.monotonic() - started < 60, "a dead collector must not hold the run up"
    got = summary(run.stdout)
    assert got["created"] >= 10 and got["started"] > 0, run.stdout
    assert got["exported"] == 0 and got["dropped"] > 0, run.stdout


def _start_and_wait_for_progress(port: int) -> tuple[subprocess.Popen[str], list[str], str]:
    """``cristack load`` running for long, once its first progress line is out: (process, lines so far, base dir)."""
    proc = subprocess.Popen(component_argv("cristack", "load", "--nodes", "2", "--pods-per-second", "2", "--duration",
                                           "600", "--interval", "1", "--otlp-endpoint", f"127.0.0.1:{port}"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # until the first progress line: the nodes run and pods are coming
        lines.append(line)
        if re.match(r"^ +\d+\.\ds  pods created", line):
            break
    base = re.search(r"logs under (\S+) ", "".join(lines))
    assert base, "".join(lines)
    return proc, lines, base.group(1)


def test_sigterm_stops_everything_and_still_reports() -> None:
    proc, lines, base = _start_and_wait_for_progress(free_ports(1)[0])
    try:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert "(stopped early)" in text, text
    assert not Path(base).exists(), "the temp dir is removed"
    leftovers = [pid for pid in os.listdir("/proc") if pid.isdigit() and base.encode() in _cmdline(pid)]
    assert leftovers == [], f"processes of the run still alive: {leftovers}"


def test_a_component_that_dies_stops_the_run_with_exit_1() -> None:
    proc, lines, base = _start_and_wait_for_progress(free_ports(1)[0])
    try:
        crio = [int(pid) for pid in os.listdir("/proc") if pid.isdigit()
                and f"{base}/node-2/crio-root".encode() in _cmdline(pid)]
        assert len(crio) == 1, crio
        os.kill(crio[0], signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, "".join(lines) + out
    assert "a component exited; stopping" in out, out
    assert not Path(base).exists()


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
