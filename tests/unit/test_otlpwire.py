"""Our wire-format OTLP encoder against the SDK's: generated spans (every attribute type, events, links,
statuses, remote parents, trace state, several resources and scopes) decode to the very request the SDK's
encoder builds."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceState

from cristack.otel.otlpwire import SpanEncoder, varint

text = st.text(max_size=12)
scalar = st.one_of(text, st.booleans(), st.integers(-(2**63), 2**63 - 1),
                   st.floats(allow_nan=False), st.just(-0.0))
value = st.one_of(scalar, st.lists(st.integers(-5, 2**40), max_size=3), st.lists(text, max_size=3),
                  st.lists(st.booleans(), max_size=2), st.lists(st.floats(allow_nan=False), max_size=2))
attrs = st.dictionaries(st.text(min_size=1, max_size=10), value, max_size=5)
ids = st.integers(1, 2**64 - 1)


@st.composite
def span_spec(draw):
    return {
        "name": draw(text), "kind": draw(st.sampled_from(list(SpanKind))), "attrs": draw(attrs),
        "events": draw(st.lists(st.tuples(text, attrs, st.integers(0, 2**62)), max_size=3)),
        "links": draw(st.lists(st.tuples(st.integers(1, 2**128 - 1), ids, st.booleans(), attrs), max_size=2)),
        "status": draw(st.sampled_from([None, (StatusCode.OK, None), (StatusCode.ERROR, None),
                                        (StatusCode.ERROR, "rpc error: code = NotFound")])),
        "parent": draw(st.one_of(st.none(), st.tuples(st.integers(1, 2**128 - 1), ids, st.booleans()))),
        "state": draw(st.sampled_from([None, TraceState([("vendor", "v1"), ("other", "x=y")])])),
        "resource": draw(st.integers(0, 1)), "scope": draw(st.sampled_from([("a", None), ("b", "1.2"), ("a", None)])),
    }


def finished_spans(specs) -> list:
    exporter = InMemorySpanExporter()
    providers = [TracerProvider(resource=Resource({"service.name": "crio", "process.pid": 42})),
                 TracerProvider(resource=Resource({"service.name": "kubelet", "host.name": "node-1"}, "https://s"))]
    for p in providers:
        p.add_span_processor(SimpleSpanProcessor(exporter))
    for spec in specs:
        tracer = providers[spec["resource"]].get_tracer(*spec["scope"])
        ctx = None
        if spec["parent"]:
            trace_id, span_id, remote = spec["parent"]
            ctx = set_span_in_context(NonRecordingSpan(SpanContext(
                trace_id, span_id, remote, TraceFlags(1), spec["state"])))
        links = [Link(SpanContext(t, s, r, TraceFlags(1)), a) for t, s, r, a in spec["links"]]
        span = tracer.start_span(spec["name"], context=ctx, kind=spec["kind"], attributes=spec["attrs"], links=links)
        for name, a, ts in spec["events"]:
            span.add_event(name, a, timestamp=ts)
        if spec["status"]:
            span.set_status(Status(*spec["status"]))
        span.end()
    return list(exporter.get_finished_spans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(span_spec(), min_size=1, max_size=6))
def test_our_bytes_decode_to_the_sdk_encoders_request(specs) -> None:
    spans = finished_spans(specs)
    ours = ExportTraceServiceRequest.FromString(SpanEncoder().request(spans))
    assert ours == encode_spans(spans)


def test_remembered_pairs_never_leak_between_fields_or_types() -> None:
    encoder = SpanEncoder()
    spans = finished_spans([
        {"name": "a", "kind": SpanKind.CLIENT, "attrs": {"k": 1, "x": True, "f": 0.0}, "events": [("e", {"k": 1}, 5)],
         "links": [], "status": None, "parent": None, "state": None, "resource": 0, "scope": ("a", None)},
        {"name": "b", "kind": SpanKind.SERVER, "attrs": {"k": True, "x": 1, "f": -0.0},
         "events": [("e", {"k": True}, 5)],
         "links": [], "status": None, "parent": None, "state": None, "resource": 0, "scope": ("a", None)}])
    for _ in range(2):  # the second time from the remembered encodings
        assert ExportTraceServiceRequest.FromString(encoder.request(spans)) == encode_spans(spans)


def test_varints_match_protobufs() -> None:
    for n in (0, 1, 127, 128, 300, 2**32, 2**63 - 1, -1, -(2**63)):
        assert b"\x18" + varint(n) == AnyValue(int_value=n).SerializeToString(), n
