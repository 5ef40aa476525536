"""OTLP load for a trace sink, friendly and hostile, and a ``cristack sink`` process to aim it at: shared by the
bench's sink section (bench/sink_bench.py) and the sink's tests (tests/integration/test_sink_*.py).

Requests are built as bytes once and sent many times; a receiver is measured from /proc (VmRSS, VmHWM, Threads).
"""

from __future__ import annotations

import gzip
import http.client
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bench.stats import rss_kb
from cristack.harness.procs import component_argv
from cristack.lifeline import stop_process
from cristack.wire.endpoints import free_ports

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def request(spans: int, trace_of=lambda i: i // 10, service: str = "load", attr_bytes: int = 0,  # noqa: ANN001
            name: str = "s", times: bool = False) -> bytes:
    """An ExportTraceServiceRequest of ``spans`` small spans under one resource, span i in trace ``trace_of(i)``
    (an int), with an attribute of ``attr_bytes`` bytes and start and end times when asked: the encoded bytes."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", service))
    ss = rs.scope_spans.add()
    ss.scope.name = "bench"
    filler = "x" * attr_bytes
    now = time.time_ns()
    for i in range(spans):
        s = ss.spans.add()
        s.trace_id = (trace_of(i) + 1).to_bytes(16, "big")
        s.span_id = (i + 1).to_bytes(8, "big")
        s.name = name
        if times:
            s.start_time_unix_nano, s.end_time_unix_nano = now, now + 1000
        if attr_bytes:
            s.attributes.append(_kv("filler", filler))
    return req.SerializeToString()


def filling(size: int, **shape) -> bytes:  # noqa: ANN003 - request()'s keywords
    """A ``request(**shape)`` of as many spans as fit in ``size`` bytes (within a few hundred bytes of it)."""
    per_span = (len(request(1001, **shape)) - len(request(1, **shape))) / 1000
    spans = int((size - len(request(1, **shape))) / per_span)
    body = request(spans, **shape)
    while len(body) > size:
        spans -= max(1, (len(body) - size) // int(per_span) + 1)
        body = request(spans, **shape)
    return body


def typical(spans: int, traces: int, seed: int = 0) -> bytes:
    """Spans shaped like a CRI call's (about 300 bytes: a few attributes and an event), ``traces`` traces
    interleaved as a batch span processor interleaves them."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for key, value in (("service.name", "crio"), ("host.name", "node-1"), ("process.pid", "4242")):
        rs.resource.attributes.append(_kv(key, value))
    ss = rs.scope_spans.add()
    ss.scope.name = "github.com/cri-o/cri-o"
    now = time.time_ns()
    for i in range(spans):
        s = ss.spans.add()
        s.trace_id = (seed * 10**9 + i % traces + 1).to_bytes(16, "big")
        s.span_id = (seed * 10**9 + i + 1).to_bytes(8, "big")
        s.parent_span_id = (seed * 10**9 + i + 7).to_bytes(8, "big")
        s.name = "runtime.v1.RuntimeService/CreateContainer"
        s.kind = 2
        s.start_time_unix_nano, s.end_time_unix_nano = now + i, now + i + 250_000
        for key, value in (("rpc.system", "grpc"), ("rpc.service", "runtime.v1.RuntimeService"),
                           ("rpc.method", "CreateContainer"), ("k8s.pod", f"default/pod-{i % traces}"),
                           ("container.id", f"{i:064x}"[:64])):
            s.attributes.append(_kv(key, value))
        e = s.events.add()
        e.name, e.time_unix_nano = "log", now + i + 1000
        e.attributes.append(_kv("message", "Creating container"))
    return req.SerializeToString()


def wide(spans: int, attributes: int, trace: int = 7) -> bytes:
    """One trace of spans that are all attributes of a few bytes each: cheap to store, the costliest to show."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", "wide"))
    ss = rs.scope_spans.add()
    for i in range(spans):
        s = ss.spans.add(trace_id=trace.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="w")
        for k in range(attributes):
            s.attributes.add(key=f"{k:x}")
    return req.SerializeToString()


def gzip_bomb(inflated: int) -> bytes:
    """A gzip body of a few KiB per MiB of zeros that inflates to ``inflated`` bytes."""
    return gzip.compress(b"\0" * inflated, compresslevel=9)


def json_objects(size: int) -> bytes:
    """OTLP/JSON of about ``size`` bytes that is all empty spans: the most objects per byte."""
    count = size // 3
    return b'{"resourceSpans":[{"scopeSpans":[{"spans":[' + b",".join([b"{}"] * count) + b"]}]}]}"


def json_strings(size: int) -> bytes:
    """OTLP/JSON of about ``size`` bytes that is one array of one-character strings (few objects, many values)."""
    count = size // 4
    return (b'{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"arrayValue":{"values":['
            + b",".join([b'"a"'] * count) + b"]}}}]}}]}")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def http_request(address: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                 timeout: float = 60.0) -> Answer:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def post(address: str, body: bytes, kind: str = PROTOBUF, encoding: str = "", timeout: float = 60.0,
         path: str = "/v1/traces") -> Answer:
    headers = {"Content-Type": kind, **({"Content-Encoding": encoding} if encoding else {})}
    return http_request(address, "POST", path, body, headers, timeout)


def raw(address: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Sends ``data`` as it is and reads until the server closes (or ``timeout`` passes: TimeoutError)."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def status_of(answer: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return int(m.group(1)) if m else 0


def grpc_export(target: str, body: bytes, timeout: float = 60.0, compression: grpc.Compression | None = None
                ) -> grpc.StatusCode:
    """One Export call with ``body`` as the request's bytes; the status code it ended with."""
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 1 << 30)]) as channel:
        call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        try:
            call(body, timeout=timeout, compression=compression)
        except grpc.RpcError as err:
            return err.code()
        return grpc.StatusCode.OK


@dataclass
class SinkProcess:
    """A ``cristack sink`` process on free loopback ports; its stderr goes to a file."""

    popen: subprocess.Popen
    grpc: str
    http: str
    stderr_path: Path

    @classmethod
    def start(cls, workdir: Path, *args: str) -> SinkProcess:
        workdir.mkdir(parents=True, exist_ok=True)
        grpc_port, http_port = free_ports(2)
        stderr_path = workdir / "sink.stderr"
        with stderr_path.open("wb") as err:
            popen = subprocess.Popen(
                component_argv("cristack", "sink", "--grpc", f"127.0.0.1:{grpc_port}", "--http",
                               f"127.0.0.1:{http_port}", *args),
                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        sink = cls(popen, f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}", stderr_path)
        deadline = time.monotonic() + 30
        while True:
            try:
                if http_request(sink.http, "GET", "/healthz", timeout=2).status == 200:
                    return sink
            except OSError:
                pass
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"cristack sink did not come up:\n{sink.stderr()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss(self) -> int:
        """Resident memory now, in bytes."""
        return rss_kb(self.pid) * 1024

    def peak(self) -> int:
        """The highest resident memory so far (the kernel's high-water mark), in bytes."""
        return rss_kb(self.pid, peak=True) * 1024

    def stats(self) -> dict:
        import json

        return json.loads(http_request(self.http, "GET", "/api/sink/stats").body)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.popen, 10)
