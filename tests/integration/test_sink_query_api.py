"""The sink's OTLP receivers and its Jaeger-compatible query API, compared with responses
recorded from a real Jaeger v2.13.0 (tests/data/jaeger-v2.13.0)."""

from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from cristack.harness.sink.jaeger import spans_from_jaeger, trace_json
from cristack.harness.sink.store import flatten, kv
from cristack.harness.stack import example
from cristack.otel import otlpjson
from tests.conftest import free_port

RECORDED = Path(__file__).resolve().parents[1] / "data" / "jaeger-v2.13.0"
EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "otlp"


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def post(url: str, body: bytes, kind: str, encoding: str = "") -> int:
    return post_answer(url, body, kind, encoding)[0]


def post_answer(url: str, body: bytes, kind: str, encoding: str = "") -> tuple[int, bytes]:
    headers = {"Content-Type": kind, **({"Content-Encoding": encoding} if encoding else {})}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def request(service: str, name: str, trace_id: bytes = b"\x01" * 16, parent: bytes = b"") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", service))
    span = rs.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.parent_span_id = trace_id, bytes([len(name)]) * 8, parent
    span.name, span.kind = name, PbSpan.SPAN_KIND_SERVER
    now = time.time_ns()
    span.start_time_unix_nano, span.end_time_unix_nano = now - 1000, now
    span.attributes.append(kv("rpc.system", "grpc"))
    ev = span.events.add()
    ev.name, ev.time_unix_nano = "log", now
    ev.attributes.append(kv("log.message", "hi"))
    return req


def keys(obj) -> object:
    """The shape of a JSON value: dict keys (recursively), list element shapes merged."""
    if isinstance(obj, dict):
        return {k: keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        merged: dict = {}
        for item in obj:
            shape = keys(item)
            if isinstance(shape, dict):
                merged.update(shape)
            else:
                return [shape]
        return [merged] if merged else []
    return type(obj).__name__ if obj is not None else "null"


def comparable(spans) -> list[tuple]:
    return sorted((s.span_id, s.parent_span_id, s.name, s.kind, s.service, s.status,
                   sorted(s.attributes.items(), key=str),
                   [(e.name, sorted(e.attributes.items(), key=str)) for e in s.events]) for s in spans)


def test_shapes_match_recorded_jaeger(sink) -> None:
    recorded = json.loads((RECORDED / "traces-syncPod.json").read_text())
    spans = spans_from_jaeger(recorded["data"][0])
    assert {s.service for s in spans} == {"kubelet", "crio", "conmonrs"}
    ours = {"data": [trace_json(spans)], "total": 1, "limit": 0, "offset": 0, "errors": None}
    assert keys(ours) == keys(recorded)
    # Round trip: Jaeger's JSON → our spans → our JSON → our spans keeps everything we compare.
    again = spans_from_jaeger(ours["data"][0])
    assert comparable(spans) == comparable(again)
    services = json.loads((RECORDED / "services.json").read_text())
    sink.store.add(request("kubelet", "syncPod"))
    status, answer = get(f"{sink.addresses.query_url}/api/services")
    assert status == 200 and keys(answer) == keys(services)


def test_receivers_and_queries(tmp_path) -> None:
    from cristack.harness.sink.receiver import Sink

    jsonl = tmp_path / "spans.jsonl"
    s = Sink(jsonl=jsonl)
    addrs = s.start()
    url = addrs.query_url
    try:
        assert post(f"{url}/v1/traces", request("crio", "a", b"\x02" * 16).SerializeToString(),
                    "application/x-protobuf") == 200
        body = otlpjson.dumps(request("kubelet", "syncPod", b"\x03" * 16)).encode()
        assert post(f"{url}/v1/traces", body, "application/json") == 200
        assert post(f"{url}/v1/traces", b"\xff\x00garbage", "application/x-protobuf") == 400
        assert post(f"{url}/nope", b"", "application/json") == 404
        assert get(f"{url}/api/services")[1]["data"] == ["crio", "kubelet"]
        assert get(f"{url}/api/services/crio/operations")[1]["data"] == ["a"]
        status, found = get(f"{url}/api/traces?service=kubelet&operation=syncPod&limit=5&lookback=1h")
        assert status == 200 and [t["traceID"] for t in found["data"]] == ["03" * 16]
        span = found["data"][0]["spans"][0]
        assert span["logs"][0]["fields"][0] == {"key": "event", "type": "string", "value": "log"}
        assert {"key": "span.kind", "type": "string", "value": "server"} in span["tags"]
        assert get(f"{url}/api/traces?service=kubelet&operation=other")[1]["data"] == []
        assert get(f"{url}/api/traces?service=crio&lookback=soon")[0] == 400
        assert get(f"{url}/api/traces")[0] == 400
        assert get(f"{url}/api/traces/{'02' * 16}")[1]["data"][0]["spans"][0]["operationName"] == "a"
        assert get(f"{url}/api/traces/{'0f' * 16}")[0] == 404
        lines = jsonl.read_text().splitlines()
        assert len(lines) == 2 and all("resourceSpans" in json.loads(line) for line in lines)
        assert json.loads(lines[1])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == "03" * 16
    finally:
        s.stop()


def test_otlp_json_from_the_specification_in_and_out(sink, tmp_path) -> None:
    """The OTLP spec's example request (hex ids) posted as OTLP/JSON keeps its ids in the query API and in
    --jsonl, and the sink's JSON lines read back as the same request."""
    from cristack.harness.sink.receiver import Sink

    example = (EXAMPLE_DIR / "trace.json").read_bytes()
    jsonl = tmp_path / "spans.jsonl"
    s = Sink(jsonl=jsonl)
    url = s.start().query_url
    try:
        assert post(f"{url}/v1/traces", example, "application/json") == 200
        status, found = get(f"{url}/api/traces/5b8efff798038103d269b633813fc60c")
        assert status == 200, found
        span = found["data"][0]["spans"][0]
        assert (span["traceID"], span["spanID"]) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
        assert span["references"][0]["spanID"] == "eee19b7ec3c1b173"
        assert otlpjson.loads(jsonl.read_text()) == otlpjson.loads(example)
    finally:
        s.stop()


def test_gzip_bodies_are_accepted_and_other_encodings_refused(sink) -> None:
    """What the Collector's otlphttp exporter sends by default: protobuf, Content-Encoding gzip."""
    from google.rpc.status_pb2 import Status

    url = f"{sink.addresses.query_url}/v1/traces"
    body = request("crio", "zipped", b"\x04" * 16).SerializeToString()
    assert post(url, gzip.compress(body), "application/x-protobuf", "gzip") == 200
    assert sink.store.trace("04" * 16)[0].name == "zipped"
    example = (EXAMPLE_DIR / "trace.json").read_bytes()
    assert post(url, gzip.compress(example), "application/json", "gzip") == 200
    assert sink.store.trace("5b8efff798038103d269b633813fc60c")
    code, answer = post_answer(url, body, "application/x-protobuf", "br")
    assert code == 415 and "Content-Encoding 'br' is not supported" in Status.FromString(answer).message
    code, answer = post_answer(url, body, "application/x-protobuf", "gzip")
    assert code == 400 and "not gzip" in Status.FromString(answer).message
    code, answer = post_answer(url, example, "application/json", "deflate")
    assert code == 415 and "deflate" in json.loads(answer)["message"]


def test_a_gzip_bomb_is_refused_once_it_passes_the_limit(sink) -> None:
    from cristack.harness.sink.receiver import MAX_BODY

    bomb = gzip.compress(b"\0" * (MAX_BODY + 1024))
    assert len(bomb) < MAX_BODY // 100
    code, _ = post_answer(f"{sink.addresses.query_url}/v1/traces", bomb, "application/x-protobuf", "gzip")
    assert code == 413


def test_sink_keeps_a_bounded_number_of_traces() -> None:
    from cristack.harness.sink.store import SpanStore

    store = SpanStore(max_traces=10)
    for i in range(25):
        store.add(request("x", "s", i.to_bytes(16, "big")))
    assert len(store.trace_ids()) == 10
    assert store.trace_ids()[0] == (15).to_bytes(16, "big").hex()


def test_sink_bounds_spans_and_bytes_and_counts_what_it_dropped() -> None:
    """Oldest traces out when a bound is passed; the request log that ``export_request`` and --json read is
    bounded with them; the counters show in the query API's headers and at /api/sink/stats."""
    from cristack.harness.sink.receiver import Sink
    from cristack.harness.sink.store import SpanStore

    store = SpanStore(max_spans=30)
    for i in range(100):
        store.add(request("x", "s", i.to_bytes(16, "big")))
    stats = store.stats()
    assert (stats.spans, stats.dropped_spans, stats.dropped_traces) == (30, 70, 70)
    assert len(flatten(store.export_request())) == 30, "the kept requests are trimmed too"
    assert store.trace_ids()[0] == (70).to_bytes(16, "big").hex()

    # What one trace of one span costs the store (its encoding and the objects that hold it).
    single = SpanStore()
    single.add(request("x", "s"))
    one = single.stats().bytes
    store = SpanStore(max_bytes=10 * one)
    for i in range(40):
        store.add(request("x", "s", i.to_bytes(16, "big")))
    stats = store.stats()
    assert stats.bytes <= 10 * one and stats.traces >= 5 and stats.dropped_traces == 40 - stats.traces
    assert stats.traces + stats.dropped_traces == 40

    s = Sink(store)
    url = s.start().query_url
    try:
        with urllib.request.urlopen(f"{url}/api/services", timeout=5) as resp:
            assert resp.headers["X-Cristack-Dropped-Spans"] == str(stats.dropped_spans)
            assert resp.headers["X-Cristack-Dropped-Traces"] == str(stats.dropped_traces)
            assert json.load(resp)["data"] == ["x"], "the Jaeger-shaped body is unchanged"
        status, answer = get(f"{url}/api/sink/stats")
        assert status == 200 and answer["dropped_spans"] == stats.dropped_spans and answer["max_bytes"] == 10 * one
    finally:
        s.stop()


@pytest.mark.parametrize("port_kind", ["grpc", "http"])
def test_sink_refuses_a_busy_port(port_kind) -> None:
    import socket

    from cristack.harness.sink.receiver import Sink

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        addr = f"127.0.0.1:{port}"
        s = Sink()
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            if port_kind == "grpc":
                s.start(grpc_address=addr)
            else:
                s.start(http_address=addr)
        s.stop()
    assert free_port() and example("pods", "hello.yaml").exists()
