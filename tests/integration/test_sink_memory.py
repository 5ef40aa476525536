"""Issue 27's bound: under its default bounds, no client can take a ``cristack sink`` past twice its memory bound
plus ten times the largest request it accepts. Every hostile shape at once, against a real process, measured
from /proc (the kernel's high-water mark of its resident memory, VmHWM), over the idle process's own RSS."""

from __future__ import annotations

import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from bench.sink_load import (
    JSON,
    SinkProcess,
    filling,
    grpc_export,
    http_request,
    json_objects,
    json_strings,
    post,
    request,
    typical,
    wide,
)
from cristack.harness.sink.limits import Limits
from cristack.harness.sink.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_SPANS

MiB = 2**20


def bomb(inflated: int) -> bytes:
    """gzip of ``inflated`` zero bytes, made a MiB at a time (a GiB of zeros is about 1 MiB of gzip)."""
    out = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * MiB
    parts = [out.compress(zeros) for _ in range(inflated // MiB)]
    return b"".join(parts) + out.flush()


def slow_client(address: str, stop: threading.Event, outcomes: Counter) -> None:
    """Connects and sends a request head, then a body, a few bytes at a time, until the sink gives up on it."""
    host, _, port = address.rpartition(":")
    while not stop.is_set():
        try:
            with socket.create_connection((host, int(port)), timeout=60) as sock:
                sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\n"
                             b"Content-Length: 20000000\r\n\r\n")
                while not stop.is_set():
                    sock.sendall(b"\x0a\x00")
                    time.sleep(0.5)
        except OSError:
            outcomes["slow client cut off"] += 1


def slow_reader(address: str, stop: threading.Event, outcomes: Counter) -> None:
    """Asks for every trace of a service and reads nothing of the answer."""
    host, _, port = address.rpartition(":")
    while not stop.is_set():
        try:
            with socket.create_connection((host, int(port)), timeout=60) as sock:
                sock.sendall(b"GET /api/traces?service=load&limit=10000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
                stop.wait(5)
        except OSError:
            outcomes["slow reader cut off"] += 1


@pytest.mark.timeout(900)  # about a minute of work for the sink; minutes on a machine shared by many
def test_hostile_clients_cannot_take_the_sink_past_twice_its_bound_plus_ten_requests(tmp_path: Path) -> None:
    sink = SinkProcess.start(tmp_path)
    limits = Limits()
    stop = threading.Event()
    try:
        idle = sink.rss()
        allowed = idle + 2 * DEFAULT_MAX_BYTES + 10 * limits.largest_request
        outcomes: Counter = Counter()
        tiny = filling(limits.max_http_body, trace_of=lambda i: i // 50)  # the largest request, spans of 33 bytes
        big_spans = filling(limits.max_http_body, trace_of=lambda i: 10**6 + i // 100, attr_bytes=1000)
        grpc_max = filling(limits.max_grpc_message, trace_of=lambda i: 2 * 10**6 + i // 50)
        one_trace = request(5000, trace_of=lambda i: 3 * 10**6, attr_bytes=1000)
        gzip_bomb = bomb(1024 * MiB)
        many = [typical(10_000, traces=10_000, seed=n) for n in range(4)]
        jsons = [json_objects(4 * MiB), json_strings(4 * MiB)]
        wide_trace = 5 * 10**6
        costly = wide(spans=2500, attributes=300, trace=wide_trace)  # cheap to store, costly to show

        def retried(label: str, send: Callable[[], object], busy: set) -> Callable[[], None]:
            """What an OTLP client does: a busy sink (503, UNAVAILABLE, or a connection it cut while refusing
            to read a body it had no room for) is asked again, so that every attack reaches the sink however
            loaded the machine is."""
            def step() -> None:
                result: object = "gave up"
                for _ in range(60):
                    try:
                        result = send()
                    except OSError as err:
                        result = type(err).__name__
                    else:
                        if result not in busy:
                            break
                    outcomes["retried"] += 1
                    time.sleep(0.5)
                outcomes[f"{label} {getattr(result, 'name', result)}"] += 1
            return step

        def http(body: bytes, **kw: str) -> Callable[[], None]:
            return retried("http", lambda: post(sink.http, body, **kw).status, {503})

        def get(path: str) -> Callable[[], None]:
            return retried("get", lambda: http_request(sink.http, "GET", path).status, {503})

        def rpc(body: bytes) -> Callable[[], None]:
            return retried("grpc", lambda: grpc_export(sink.grpc, body),
                           {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})

        attacks: list[list[Callable[[], None]]] = [
            [http(b) for b in many * 3],  # many traces: 120,000 spans in 40,000 traces, past every store bound
            [http(one_trace)] * 12,  # one trace id, 60 MB of spans
            [http(tiny)], [http(tiny)],  # the largest request, of the smallest spans, side by side
            [http(big_spans)] * 3, [http(big_spans)] * 3,
            [rpc(grpc_max)] * 2, [rpc(grpc_max)] * 2, [rpc(grpc_max)] * 2,
            [http(gzip_bomb, encoding="gzip")] * 3, [http(gzip_bomb, encoding="gzip")] * 3,
            [http(b, kind=JSON) for b in jsons] * 2, [http(b, kind=JSON) for b in jsons] * 2,
            [http(costly)] + [get(f"/trace/{wide_trace:x}"), get("/ui/traces")] * 3,
            [get(f"/trace/{wide_trace:x}"), get(f"/api/traces/{wide_trace:x}")] * 3,
        ]

        def run(steps: list[Callable[[], None]]) -> None:
            for step in steps:
                try:
                    step()
                except (OSError, grpc.RpcError) as err:
                    outcomes[f"client error {type(err).__name__}"] += 1

        pests = [threading.Thread(target=slow_client, args=(sink.http, stop, outcomes), daemon=True)
                 for _ in range(40)]
        pests += [threading.Thread(target=slow_reader, args=(sink.http, stop, outcomes), daemon=True)
                  for _ in range(10)]
        workers = [threading.Thread(target=run, args=(steps,), daemon=True) for steps in attacks]
        for t in pests + workers:
            t.start()
        for t in workers:
            t.join()
        stop.set()
        for t in pests:
            t.join()

        peak = sink.peak()
        assert peak <= allowed, (f"peak RSS {peak / MiB:.0f} MiB: over the idle {idle / MiB:.0f} MiB + 2 × "
                                 f"{DEFAULT_MAX_BYTES / MiB:.0f} MiB + 10 × {limits.largest_request / MiB:.0f} MiB "
                                 f"= {allowed / MiB:.0f} MiB; {dict(outcomes)}")
        assert outcomes["grpc OK"] == 6 and outcomes["http 413"] >= 10, outcomes  # 6 bombs, 4 JSON past its limit
        stats = sink.stats()
        assert stats["spans"] <= DEFAULT_MAX_SPANS and stats["bytes"] <= DEFAULT_MAX_BYTES
        assert stats["dropped_traces"] > 0 and stats["refused_spans"] > 0
        assert http_request(sink.http, "GET", "/healthz").status == 200, "it still serves"
        assert "Traceback" not in sink.stderr(), sink.stderr()[-3000:]
        print(f"sink peak {peak / MiB:.0f} MiB (idle {idle / MiB:.0f} MiB, allowed {allowed / MiB:.0f} MiB); "
              f"{dict(outcomes)}")
    finally:
        stop.set()
        sink.stop()
