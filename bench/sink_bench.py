"""The trace sink's cost beside Jaeger v2's (memory storage), each fed the same OTLP/HTTP load in the same run:

- peak RSS per MiB of request: one request into a fresh process (its VmHWM over its idle RSS, per MiB of body),
  for spans shaped like a CRI call's (about 330 bytes) and for the smallest spans (33 bytes, the worst case);
- ingest rate and RSS per span held: 100,000 CRI-call spans in 10,000 traces, in batches of 512 (the SDK's batch
  size) from 4 clients at once; spans per second from the first request sent to the last answered, then the
  process's RSS over its idle RSS per span it holds.

Jaeger answers an export once its batch processor has the spans and stores them a moment later; the sink answers
once they are stored. Both run on the same two cores as the load generator (this process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.report import Row
from bench.sink_load import SinkProcess, filling, post, typical
from bench.stats import p50, rss_kb
from cristack.harness.jaeger import jaeger_binary, start_jaeger

MiB = 2**20
SPANS = 100_000
BATCH = 512
CLIENTS = 4
FEEDS = 3
REQUEST = 16 * MiB  # under both receivers' 20 MiB


class _Receiver:
    """One fresh receiver process: where to POST, and its memory from /proc."""

    def __init__(self, name: str, http: str, pid: int, stop: Callable[[], None], held: Callable[[], int]) -> None:
        self.name, self.http, self.pid, self.stop, self.held = name, http, pid, stop, held

    def rss(self) -> int:
        return rss_kb(self.pid) * 1024

    def peak(self) -> int:
        return rss_kb(self.pid, peak=True) * 1024


def _sink(base: Path) -> _Receiver:
    s = SinkProcess.start(base / f"sink-{time.monotonic_ns()}")
    return _Receiver("cristack sink", s.http, s.pid, s.stop, lambda: s.stats()["spans"])


def _jaeger(base: Path) -> _Receiver:
    binary = jaeger_binary()
    if binary is None:
        raise SystemExit("bench: the jaeger binary is missing; run `make tools`")
    j = start_jaeger(binary, base / f"jaeger-{time.monotonic_ns()}")
    assert j.proc is not None
    return _Receiver("Jaeger v2 (memory)", j.otlp_http.removeprefix("http://"), j.proc.pid, j.stop, lambda: SPANS)


def _settle(receiver: _Receiver) -> None:
    """Lets a receiver that stores after answering (Jaeger's batch processor) finish, and the idle RSS settle."""
    time.sleep(2.0)


def one_request(receiver: _Receiver, body: bytes) -> float:
    """Peak RSS growth over the size of ``body`` (MiB per MiB), sent once into an idle receiver."""
    _settle(receiver)
    idle = receiver.rss()
    answer = post(receiver.http, body)
    if answer.status != 200:
        raise RuntimeError(f"{receiver.name} answered {answer.status} to {len(body)} bytes")
    _settle(receiver)
    return (receiver.peak() - idle) / len(body)


def feed(receiver: _Receiver, batches: list[bytes]) -> tuple[float, float, float, float]:
    """Ingest spans/s, RSS per span held, peak RSS per span held, and the share of a core the clients used (the
    load generator is Python too: near 1.0, the rate is partly its own)."""
    _settle(receiver)
    idle = receiver.rss()
    queue = list(batches)
    lock = threading.Lock()
    failed = []

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            if post(receiver.http, body).status != 200:
                failed.append(body)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    cpu = time.process_time()
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    cpu = time.process_time() - cpu
    if failed:
        raise RuntimeError(f"{receiver.name} refused {len(failed)} batches")
    _settle(receiver)
    held = receiver.held()
    return SPANS / took, (receiver.rss() - idle) / held, (receiver.peak() - idle) / held, cpu / took


def report(bench, section: str) -> None:  # noqa: ANN001 - bench.run.Bench (run imports us)
    print(section, flush=True)
    base = bench.base / "sink"
    base.mkdir(parents=True, exist_ok=True)
    bodies = {"CRI-call spans (about 330 bytes)": filling(REQUEST, trace_of=lambda i: i // 20, attr_bytes=260,
                                                          times=True),
              "the smallest spans (33 bytes)": filling(REQUEST, trace_of=lambda i: i // 20)}
    batches = [typical(BATCH, traces=BATCH // 10, seed=n) for n in range(SPANS // BATCH)]
    batches.append(typical(SPANS - BATCH * (SPANS // BATCH), traces=10, seed=SPANS))
    rows: dict[str, dict[str, str]] = {}
    for start in (_sink, _jaeger):
        for label, body in bodies.items():
            receiver = start(base)
            try:
                per_mib = one_request(receiver, body)
            finally:
                receiver.stop()
            rows.setdefault(f"peak RSS per MiB of one {len(body) / MiB:.0f} MiB request, {label}", {})[
                receiver.name] = f"{per_mib:.1f} MiB"
    feeds: dict[str, list[tuple[float, float, float, float]]] = {}
    for _ in range(FEEDS):  # interleaved: the machine's load changes from minute to minute
        for start in (_sink, _jaeger):
            receiver = start(base)
            try:
                feeds.setdefault(receiver.name, []).append(feed(receiver, batches))
            finally:
                receiver.stop()
    for name, runs in feeds.items():
        rate, per_span, peak_per_span, client_cpu = (p50([r[i] for r in runs]) for i in range(4))
        rows.setdefault(f"ingest, {SPANS:,} CRI-call spans in batches of {BATCH} from {CLIENTS} clients "
                        f"(p50 of {FEEDS} runs)", {})[name] = (
            f"{rate:,.0f} spans/s (runs {', '.join(f'{r[0]:,.0f}' for r in runs)}; the clients used "
            f"{client_cpu:.0%} of a core)")
        rows.setdefault("RSS per span held after that (peak)", {})[name] = f"{per_span:.0f} B ({peak_per_span:.0f} B)"
    notes = {
        0: "VmHWM over the idle process's RSS, per MiB of body; what it keeps of the request is part of it "
           "(the sink keeps at most 100,000 spans by default, Jaeger every span)",
        2: "the sink answers once it has stored the spans, Jaeger once its batch processor has them; both "
           "receivers, and this load generator, share the machine's two cores",
        3: "RSS over the idle process's after the feed, divided by the spans held (all 100,000 in both)",
    }
    for n, (what, by) in enumerate(rows.items()):
        bench.report.add(section, Row(what, " · ".join(f"{name}: {value}" for name, value in by.items()),
                                      note=notes.get(n, "")))
