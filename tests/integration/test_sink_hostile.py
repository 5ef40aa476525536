"""The sink under hostile and careless clients (issue 27): each test is one way in, on real sockets, and checks the
answer a client gets and what the sink holds afterwards. The memory bound under all of them at once is
test_sink_memory.py."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from bench.sink_load import (
    JSON,
    PROTOBUF,
    SinkProcess,
    grpc_export,
    http_request,
    post,
    raw,
    request,
    status_of,
    wide,
)
from cristack.harness.sink.receiver import Sink
from cristack.harness.sink.store import SpanStore


def message(answer_body: bytes, kind: str = PROTOBUF) -> str:
    if kind == JSON:
        return json.loads(answer_body)["message"]
    return Status.FromString(answer_body).message


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def head(address: str, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


@pytest.fixture
def served():
    """A sink with small bounds, on free loopback ports."""
    s = Sink(SpanStore(max_spans=1000, max_bytes=1024 * 1024))
    s.start()
    yield s
    s.stop()


# The bounds hold per trace, per request --------------------------------------------------------------------------

def test_one_trace_id_cannot_take_more_than_a_trace_may_hold(served) -> None:
    """12 exports of 5,000 spans of 1 KB under one trace id into a sink kept to 1,000 spans and 1 MiB: the trace
    keeps what fits, every answer says how many spans it refused (OTLP's partial_success), and the query API
    marks the trace as cut short."""
    url = served.addresses.http
    body = request(5000, trace_of=lambda i: 7, attr_bytes=1000)
    refused = 0
    for _ in range(12):
        answer = post(url, body)
        assert answer.status == 200
        refused += ExportTraceServiceResponse.FromString(answer.body).partial_success.rejected_spans
    stats = served.store.stats()
    assert stats.spans <= 1000 and stats.bytes <= 1024 * 1024, stats
    assert stats.traces == 1 and stats.truncated_traces == 1
    assert refused == stats.refused_spans == 60_000 - stats.spans
    trace = json.loads(http_request(url, "GET", f"/api/traces/{8:032x}").body)["data"][0]
    assert len(trace["spans"]) == stats.spans
    assert "refused" in trace["warnings"][0]


def test_a_new_trace_pushes_out_whole_old_ones_and_they_are_counted(served) -> None:
    url = served.addresses.http
    for n in range(30):
        assert post(url, request(100, trace_of=lambda i, n=n: n, attr_bytes=100)).status == 200
    stats = served.store.stats()
    assert stats.spans <= 1000 and stats.bytes <= 1024 * 1024
    assert stats.traces + stats.dropped_traces == 30
    assert stats.dropped_spans == 100 * stats.dropped_traces, "whole traces go"
    assert served.store.trace_ids()[-1] == f"{30:032x}", "the newest trace stays"


def test_one_large_request_costs_a_small_multiple_of_its_size(tmp_path: Path) -> None:
    """13 MiB of 420,000 small spans once cost the sink 600 MiB of memory: the request is now checked and stored
    from its own bytes, never as objects. Its peak cost is measured on a real ``cristack sink``."""
    sink = SinkProcess.start(tmp_path)
    try:
        body = request(420_000, trace_of=lambda i: i // 42)
        base = sink.rss()
        assert post(sink.http, body).status == 200
        grew = sink.peak() - base
        assert grew <= 10 * len(body), f"peak {grew / 2**20:.0f} MiB over the idle sink for {len(body) / 2**20:.0f} MiB"
        stats = sink.stats()
        assert stats["spans"] + stats["dropped_spans"] == 420_000
    finally:
        sink.stop()


# Content-Length, Content-Type, Content-Encoding ------------------------------------------------------------------

@pytest.mark.parametrize("length", ["-1", "+5", "5_0", "0x10", "1e3", "1" * 40])
def test_content_length_must_be_a_byte_count(served, length: str) -> None:
    """``Content-Length: -1`` once read the body to the end of the stream, past every limit: a length that is not a
    byte count is 400 at once, without waiting for a body."""
    url = served.addresses.http
    data = head(url, "POST", "/v1/traces", {"Host": "127.0.0.1", "Content-Type": PROTOBUF,
                                            "Content-Length": length}).replace(b"\r\n\r\n", b"\r\n\r\n\x0a\x00")
    host, _, port = url.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)  # and keeps the connection open, as a client still sending would
        answer = read_all(sock)
    assert status_of(answer) == 400, answer
    assert b"not a byte count" in answer


def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(served) -> None:
    from cristack.harness.sink.intake import MAX_HTTP_BODY

    url = served.addresses.http
    host, _, port = url.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head(url, "POST", "/v1/traces", {"Host": "127.0.0.1", "Content-Type": PROTOBUF,
                                                     "Content-Length": str(48 * 2**20)}))
        answer = read_all(sock)
    assert status_of(answer) == 413 and str(f"{MAX_HTTP_BODY:,}").encode() in answer


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                  "", "application/protobuf"])
def test_only_the_two_otlp_types_are_read(served, kind: str) -> None:
    """What a web page of any origin may POST without a CORS preflight (text/plain, forms) is 415, as the
    Collector answers any type but OTLP's two; nothing is stored."""
    body = request(3)
    answer = http_request(served.addresses.http, "POST", "/v1/traces", body, {"Content-Type": kind} if kind else {})
    assert answer.status == 415
    assert answer.body == b"415 unsupported media type, supported: [application/json, application/x-protobuf]"
    assert served.store.stats().spans == 0


def test_a_chunked_body_is_read_within_the_limit(served) -> None:
    """The OTLP exporters that gzip as they send (Java's) send chunked bodies: once read as empty and answered
    200 with nothing stored."""
    body = gzip.compress(request(20, trace_of=lambda i: 3))
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100]) for i in range(0, len(body), 100))
    answer = raw(served.addresses.http, head(served.addresses.http, "POST", "/v1/traces", {
        "Host": "localhost", "Content-Type": PROTOBUF, "Content-Encoding": "gzip",
        "Transfer-Encoding": "chunked"}, chunks + b"0\r\n\r\n"))
    assert status_of(answer) == 200, answer
    assert len(served.store.trace(f"{4:032x}")) == 20
    answer = raw(served.addresses.http, head(served.addresses.http, "POST", "/v1/traces", {
        "Host": "localhost", "Content-Type": PROTOBUF, "Transfer-Encoding": "gzip, chunked"}))
    assert status_of(answer) == 501


def test_gzip_members_are_read_as_one_stream_and_bounded_together(served) -> None:
    """Concatenated gzip members (what Go's reader, and so the Collector, reads as one body) count together
    against the inflated limit; the first alone was read before, and the rest dropped without a word."""
    from cristack.harness.sink.intake import MAX_HTTP_BODY

    url = served.addresses.http
    body = request(50, trace_of=lambda i: 5)
    answer = post(url, gzip.compress(body[:len(body) // 2]) + gzip.compress(body[len(body) // 2:]), encoding="gzip")
    assert answer.status == 200 and len(served.store.trace(f"{6:032x}")) == 50
    half = gzip.compress(b"\0" * (MAX_HTTP_BODY // 2 + 1))
    answer = post(url, half + half, encoding="gzip")
    assert answer.status == 413 and "once inflated" in message(answer.body)


# Host ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:4318", "127.0.0.1.attacker.example",
                                  "localhost.attacker.example"])
def test_a_host_name_that_is_not_ours_is_refused(served, host: str) -> None:
    """DNS rebinding: a page whose own name now points at 127.0.0.1 sends its requests with its own name as Host.
    Those get 403, reads and writes alike, and nothing is stored."""
    url = served.addresses.http
    answer = http_request(url, "GET", "/api/services", headers={"Host": host})
    assert answer.status == 403 and b"--allowed-hosts" in answer.body
    answer = http_request(url, "POST", "/v1/traces", request(3), {"Host": host, "Content-Type": PROTOBUF})
    assert answer.status == 403
    assert served.store.stats().spans == 0


@pytest.mark.parametrize("host", ["localhost", "localhost:4318", "127.0.0.1", "127.0.0.1:4318", "[::1]:4318",
                                  "web.localhost:4318", "10.1.2.3:4318"])
def test_addresses_and_localhost_are_answered(served, host: str) -> None:
    assert http_request(served.addresses.http, "GET", "/api/services", headers={"Host": host}).status == 200


def test_allowed_hosts_extend_what_is_answered(tmp_path: Path) -> None:
    """``cristack sink --allowed-hosts`` for a sink reached by name (a Service in a cluster)."""
    sink = SinkProcess.start(tmp_path, "--allowed-hosts", "sink.example,.cluster.local")
    try:
        for host, code in (("sink.example", 200), ("sink.example:4318", 200), ("cristack.ns.svc.cluster.local", 200),
                           ("cluster.local", 200), ("other.example", 403), ("sink.example.evil", 403)):
            assert http_request(sink.http, "GET", "/api/services", headers={"Host": host}).status == code, host
    finally:
        sink.stop()


# Nesting, bad protobuf, gRPC -------------------------------------------------------------------------------------

def _kvlist_json(depth: int) -> bytes:
    value: dict = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    span = {"traceId": "01" * 16, "spanId": "02" * 8, "name": "deep", "attributes": [{"key": "a", "value": value}]}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def _kvlist_protobuf(depth: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    value = AnyValue(string_value="leaf")
    for _ in range(depth):
        outer = AnyValue()
        outer.kvlist_value.values.add(key="k").value.CopyFrom(value)
        value = outer
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="deep")
    span.attributes.add(key="a").value.CopyFrom(value)
    return req.SerializeToString()


def test_deep_nesting_is_a_400_with_a_status_not_a_dropped_connection(tmp_path: Path) -> None:
    """JSON nested 1,000 deep, or a kvlist nested 200 deep, once raised RecursionError: the connection dropped
    with no answer and a traceback went to stderr. Now: 400 with a google.rpc.Status saying why, on a real
    ``cristack sink``, whose stderr stays clean and which keeps serving."""
    sink = SinkProcess.start(tmp_path)
    try:
        cases = [(b"[" * 1000 + b"]" * 1000, JSON), (b'{"resourceSpans":' + b"[" * 5000 + b"]" * 5000 + b"}", JSON),
                 (_kvlist_json(200), JSON), (_kvlist_protobuf(200), PROTOBUF)]
        for body, kind in cases:
            answer = post(sink.http, body, kind)
            assert answer.status == 400, (kind, answer)
            assert "deep" in message(answer.body, kind) or "depth" in message(answer.body, kind).lower(), answer.body
        assert post(sink.http, _kvlist_json(20), JSON).status == 200, "a kvlist 20 deep is fine"
        assert post(sink.http, _kvlist_protobuf(20), PROTOBUF).status == 200
        assert "Traceback" not in sink.stderr() and "RecursionError" not in sink.stderr(), sink.stderr()
    finally:
        sink.stop()


def test_bad_protobuf_over_grpc_is_invalid_argument(served) -> None:
    """grpc's own deserializer failing answers INTERNAL; the Collector answers INVALID_ARGUMENT."""
    target = served.addresses.grpc
    assert grpc_export(target, b"\xff\xff\xff\xff") == grpc.StatusCode.INVALID_ARGUMENT
    assert grpc_export(target, _kvlist_protobuf(200)) == grpc.StatusCode.INVALID_ARGUMENT
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    wrong_id = ExportTraceServiceRequest()
    wrong_id.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\1" * 15, span_id=b"\2" * 8, name="x")
    assert grpc_export(target, wrong_id.SerializeToString()) == grpc.StatusCode.INVALID_ARGUMENT
    assert grpc_export(target, request(2, trace_of=lambda i: 9)) == grpc.StatusCode.OK
    assert len(served.store.trace(f"{10:032x}")) == 2


def test_grpc_bounds_messages_before_and_after_inflating(served) -> None:
    from cristack.harness.sink.intake import MAX_GRPC_MESSAGE

    target = served.addresses.grpc
    assert grpc_export(target, b"\0" * (MAX_GRPC_MESSAGE + 1)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    bomb = b"\0" * (64 * 2**20)  # a few KiB on the wire
    assert grpc_export(target, bomb, compression=grpc.Compression.Gzip) == grpc.StatusCode.RESOURCE_EXHAUSTED


# Slow clients, many connections ----------------------------------------------------------------------------------

def test_half_sent_requests_are_closed_and_cannot_take_every_thread() -> None:
    """200 connections that send part of a request once held 200 threads for ever. Now each gets at most
    ``header_timeout`` for its whole head (a byte now and then does not stretch it), connections past
    ``max_connections`` get 503 at once, and a proper request is served again once they are gone."""
    from cristack.harness.sink.limits import Limits

    limits = Limits(header_timeout=1.0, max_connections=16)
    s = Sink(limits=limits)
    url = s.start().http
    host, _, port = url.rpartition(":")
    try:
        before = threading.active_count()
        socks = []
        for _ in range(200):
            sock = socket.create_connection((host, int(port)), timeout=limits.header_timeout * 20)
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\n")
            socks.append(sock)
        most = threading.active_count() - before
        answers = []
        for sock in socks:  # the server closes every one (or the recv times out and the test fails)
            answers.append(sock.recv(65536))
            most = max(most, threading.active_count() - before)
        assert most <= limits.max_connections
        assert all(a == b"" or status_of(a) == 503 for a in answers)
        assert any(status_of(a) == 503 for a in answers)
        for sock in socks:
            sock.close()
        # A head sent a byte every quarter of header_timeout would take 10 header_timeouts: it is cut off
        # long before that.
        request_head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"s" * 20 + b"\r\n\r\n"
        with socket.create_connection((host, int(port)), timeout=limits.header_timeout * 20) as dripping:
            sent = 0
            for byte in request_head:
                if _closed(dripping):
                    break
                dripping.sendall(bytes([byte]))
                sent += 1
                time.sleep(limits.header_timeout / 4)
            assert sent < len(request_head), "the server waited for the whole head"
        assert http_request(url, "GET", "/healthz").status == 200
    finally:
        s.stop()


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed the connection (readable, and nothing to read)."""
    import select

    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except ConnectionError:
        return True


def test_a_slow_body_holds_only_the_bytes_it_sent() -> None:
    """Clients that declare 20 MB and send a few bytes hold a few bytes of the sink's budget for bodies in
    flight, not 20 MB each: a client with a whole body is served meanwhile."""
    from cristack.harness.sink.limits import Limits

    s = Sink(limits=Limits(in_flight_bytes=2 * 2**20, busy_wait=2.0))
    url = s.start().http
    host, _, port = url.rpartition(":")
    slow = []
    try:
        for _ in range(5):
            sock = socket.create_connection((host, int(port)), timeout=30)
            sock.sendall(head(url, "POST", "/v1/traces", {"Host": "localhost", "Content-Type": PROTOBUF,
                                                         "Content-Length": "20000000"}, b"\x0a"))
            slow.append(sock)
        assert post(url, request(2000, trace_of=lambda i: 11, attr_bytes=100)).status == 200
        assert len(s.store.trace(f"{12:032x}")) == 2000
    finally:
        for sock in slow:
            sock.close()
        s.stop()


def test_a_body_that_does_not_arrive_is_408() -> None:
    from cristack.harness.sink.limits import Limits

    s = Sink(limits=Limits(body_timeout=1.0))
    url = s.start().http
    try:
        host, _, port = url.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(head(url, "POST", "/v1/traces", {"Host": "localhost", "Content-Type": PROTOBUF,
                                                         "Content-Length": "1000"}, b"\x0a\x00"))
            answer = read_all(sock)
        assert status_of(answer) == 408
    finally:
        s.stop()


# Query parameters, the live view's filters, error text ----------------------------------------------------------

@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "limit=abc", "limit=99999999999999999999", "limit=10001",
                                   "lookback=nan", "lookback=inf", "lookback=-1h", "lookback=" + "9" * 5000,
                                   "operation=" + "o" * 600])
def test_trace_search_parameters_are_checked(served, query: str) -> None:
    answer = http_request(served.addresses.http, "GET", f"/api/traces?service=x&{query}")
    assert answer.status == 400, answer
    assert len(answer.body) < 400, "the error does not repeat the parameter whole"


@pytest.mark.parametrize("path", ["/api/traces/" + "a" * 33, "/api/traces/xyz", "/api/traces/" + "f" * 5000])
def test_trace_ids_are_checked(served, path: str) -> None:
    answer = http_request(served.addresses.http, "GET", path)
    assert answer.status == 400 and len(answer.body) < 300


@pytest.mark.parametrize("query", ["operation=" + "o" * 600, "pod=" + "p" * 600, "limit=-5", "limit=" + "9" * 50])
def test_live_view_filters_are_checked(served, query: str) -> None:
    answer = http_request(served.addresses.http, "GET", f"/ui/traces?{query}")
    assert answer.status == 400 and len(answer.body) < 300


def test_error_text_never_repeats_input_whole(served) -> None:
    url = served.addresses.http
    answer = post(url, request(1), path="/" + "p" * 20_000)
    assert answer.status == 404 and len(message(answer.body)) < 200 and "characters)" in message(answer.body)
    answer = post(url, request(1), encoding="x" * 20_000)
    assert answer.status == 415 and len(message(answer.body)) < 200
    bad_id = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "z" * 100_000}]}]}]}).encode()
    answer = post(url, bad_id, JSON)
    assert answer.status == 400 and len(message(answer.body, JSON)) < 400
    answer = raw(url, b"GET /" + b"q" * 60_000 + b" too many words\r\n\r\n")  # an HTTP/0.9 answer: no head
    assert b"Error code: 400" in answer and len(answer) < 2000


def test_a_large_trace_is_answered_whole_a_slice_at_a_time() -> None:
    s = Sink()
    url = s.start().http
    try:
        assert post(url, request(3000, trace_of=lambda i: 41, attr_bytes=200)).status == 200
        found = json.loads(http_request(url, "GET", "/api/traces?service=load&limit=5").body)
        assert found["total"] == 1 and len(found["data"][0]["spans"]) == 3000
        assert found["data"][0]["processes"]["p1"]["serviceName"] == "load"
        one = json.loads(http_request(url, "GET", f"/api/traces/{42:x}").body)
        assert one["data"][0]["traceID"] == f"{42:032x}" and len(one["data"][0]["spans"]) == 3000
    finally:
        s.stop()


def test_a_trace_of_tiny_attributes_is_shown_within_a_values_bound(tmp_path: Path) -> None:
    """A span of 300 attributes of a few bytes each is 2 KB stored and 60 KB decoded: a trace of them within the
    store's byte bound once took a real sink 170 MiB to show as a page. A page or summary decodes at most
    ``max_view_values`` values of a trace and says what it left out; the Jaeger API writes every value, a slice
    at a time."""
    sink = SinkProcess.start(tmp_path)
    try:
        body = wide(spans=2500, attributes=300)
        assert post(sink.http, body).status == 200
        held = sink.stats()
        base = sink.rss()
        page = http_request(sink.http, "GET", f"/trace/{7:032x}")
        assert page.status == 200 and b"attributes not shown" in page.body
        assert http_request(sink.http, "GET", "/ui/traces").status == 200
        answer = json.loads(http_request(sink.http, "GET", f"/api/traces/{7:x}").body)
        assert len(answer["data"][0]["spans"]) == held["spans"]
        assert all(len(s["tags"]) == 300 for s in answer["data"][0]["spans"])
        from cristack.harness.sink.limits import Limits

        per_value = 400  # bytes of Python per decoded value, at the most (tag dicts, the page's model)
        assert sink.peak() - base <= Limits().max_view_values * per_value + len(body)
    finally:
        sink.stop()


def test_jsonl_writes_a_large_request_as_lines_of_bounded_size(tmp_path: Path) -> None:
    """--jsonl once turned a whole request into one JSON document (about 20 times its size as objects); a
    request of more than 1,000 spans now goes as several lines, a small one as one, as before."""
    from cristack.otel import otlpjson

    path = tmp_path / "spans.jsonl"
    s = Sink(jsonl=path)
    url = s.start().http
    try:
        assert post(url, request(2500, trace_of=lambda i: i // 100)).status == 200
        assert post(url, request(3, trace_of=lambda i: 999)).status == 200
    finally:
        s.stop()
    counts = [sum(len(ss.spans) for rs in otlpjson.loads(line).resource_spans for ss in rs.scope_spans)
              for line in path.read_text().splitlines()]
    assert counts == [1000, 1000, 500, 3]


def test_other_methods_on_the_receiver_are_405(served) -> None:
    answer = http_request(served.addresses.http, "GET", "/v1/traces")
    assert answer.status == 405 and answer.body == b"405 method not allowed, supported: [POST]"
