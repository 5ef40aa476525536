"""``cristack fleet`` as a user runs it: a real process against a real OTLP receiver. SIGTERM stops it within its
2 s deadline with everything it had counted (what the receiver got is what it says it exported); with the endpoint
down it still stops in time and says why spans were dropped; a typo in an option gets a "did you mean"."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from cristack.harness.procs import component_argv
from cristack.harness.sink.receiver import Sink
from cristack.harness.sink.store import SpanStore
from cristack.wire.endpoints import free_ports

DEADLINE_S = 2.0  # the command's own promise on SIGTERM


class Lines:
    """A process's stdout, line by line, as it comes."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> tuple[float, re.Match]:
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for at, line in self.lines[seen:]:
                    if m := re.search(pattern, line):
                        return at, m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} in {timeout} s: {self.lines}")
                self.cond.wait(left)


def _start(endpoint: str, *extra: str) -> tuple[subprocess.Popen, Lines, float]:
    started = time.monotonic()
    proc = subprocess.Popen(component_argv("cristack", "fleet", "--nodes", "20", "--otlp-endpoint", endpoint,
                                           "--interval", "0.5", "--seed", "1", "--pods-per-second", "2", *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, Lines(proc), started


def _summary_counts(lines: Lines) -> tuple[int, int]:
    _, m = lines.wait_for(r"spans asked .* issued ([\d,]+) .* exported ([\d,]+) ", 10)
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


def test_sigterm_stops_it_in_time_having_flushed_and_counted_everything():
    store = SpanStore(max_traces=10**6, max_spans=10**6, max_bytes=2**31)
    sink = Sink(store)
    endpoint = sink.start().otlp_endpoint
    try:
        proc, lines, started = _start(endpoint)
        first_line, _ = lines.wait_for(r"^cristack fleet: 20 nodes", 60)
        lines.wait_for(r"exported [1-9][\d,]* ", 30)  # it is exporting
        told = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        exited = time.monotonic()
        summary_at, _ = lines.wait_for(r"\(stopped early\)", 5)
        issued, exported = _summary_counts(lines)
        assert proc.returncode == 0, proc.stderr.read()
        assert told <= summary_at <= exited  # the summary is the answer to the signal
        # Everything it issued was sent before it exited and the receiver has every span it counted as exported.
        assert exported == issued > 0
        assert store.wait(lambda st: st.span_count >= exported, 5) and store.span_count == exported
        # The 2 s deadline, with a margin of what this machine took to start the process (imports) in this run.
        startup = first_line - started
        assert exited - told <= DEADLINE_S + startup, (exited - told, startup)
        assert "Traceback" not in proc.stderr.read()
    finally:
        sink.stop()


def test_an_endpoint_that_is_down_costs_it_nothing_but_the_drops_it_counts():
    dead = f"127.0.0.1:{free_ports(1)[0]}"
    proc, lines, started = _start(dead, "--max-queue", "200")
    first_line, _ = lines.wait_for(r"^cristack fleet: 20 nodes", 60)
    # Each export waits its 1 s timeout for a connection: the queue fills and what does not fit is dropped
    # at once, while the schedule goes on.
    lines.wait_for(r"queue full [1-9]", 30)
    told = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    exited = time.monotonic()
    issued, exported = _summary_counts(lines)
    _, m = lines.wait_for(r"requests, dropped ([\d,]+) \((.*)\);", 5)
    reasons = {k.strip(): int(v.replace(",", "")) for k, v in re.findall(r"([A-Za-z_ ]+) ([\d,]+)", m.group(2))}
    assert exported == 0 and int(m.group(1).replace(",", "")) == issued == sum(reasons.values())
    assert reasons.get("queue full") and set(reasons) <= {"queue full", "DEADLINE_EXCEEDED", "UNAVAILABLE", "shutdown"}
    assert exited - told <= DEADLINE_S + (first_line - started)
    assert "Traceback" not in proc.stderr.read()


def test_half_the_nodes_on_containerd_send_containerd_and_shim_traces():
    """``--runtimes crio=0.5,containerd=0.5``: the start line names both runtimes' nodes and where slow-storage can
    happen (CRI-O's fault injection); the receiver gets each runtime's services, every shim's spans from a
    containerd node."""
    store = SpanStore(max_traces=10**6, max_spans=10**6, max_bytes=2**31)
    sink = Sink(store)
    endpoint = sink.start().otlp_endpoint
    try:
        proc, lines, _ = _start(endpoint, "--runtimes", "crio=0.5,containerd=0.5", "--duration", "6")
        _, m = lines.wait_for(r"^cristack fleet: 20 nodes \(crio (\d+), containerd (\d+)\) .*slow-storage 2% "
                              r"\(crio nodes only\)", 60)
        assert int(m.group(1)) + int(m.group(2)) == 20 and int(m.group(2)) > 0
        issued, exported = _summary_counts(lines)
        assert proc.wait(30) == 0 and exported == issued > 0
        assert store.wait(lambda st: st.span_count >= exported, 5)
        hosts: dict[str, set[str]] = {}
        for span in store.spans():
            service = "shim" if span.service.startswith("containerd-shim-") else span.service
            hosts.setdefault(service, set()).add(span.resource["host.name"])
        assert {"kubelet", "crio", "conmonrs", "containerd", "shim"} <= set(hosts), set(hosts)
        assert hosts["shim"] <= hosts["containerd"] and hosts["containerd"].isdisjoint(hosts["crio"])
        assert "Traceback" not in proc.stderr.read()
    finally:
        sink.stop()


@pytest.mark.parametrize(("args", "says"), [
    (["--runtimes", "cri-o=1"], "no runtime 'cri-o'; did you mean 'crio'?"),
    (["--faults", "crashlop=0.1"], "no fault 'crashlop'; did you mean 'crashloop'?"),
    (["--faults", "crashloop=2"], "the share is a number between 0 and 1"),
    (["--nodes", "300", "--cluster-cidr", "10.244.0.0/16"], "node index 256 is outside cluster CIDR"),
])
def test_a_mistake_is_named_and_exits_2(args, says):
    proc = subprocess.run([*component_argv("cristack", "fleet", "--otlp-endpoint", "127.0.0.1:4317"), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
