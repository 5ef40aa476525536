"""Spans as the harness reads them: one flat record per span with its service and resource, made from OTLP
(a whole request with ``flatten``, or one span's stored encoding with ``decode``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from cristack.otel.tracediff import any_value

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def service_of(resource: dict[str, Any]) -> str:
    """The service a resource names, as Jaeger shows a resource without one."""
    return str(resource.get("service.name", "unknown_service"))


@dataclass
class Event:
    name: str
    time: int
    attributes: dict[str, Any]


@dataclass
class Span:
    """One span, flattened with its service and resource for querying."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start: int
    end: int
    service: str
    scope: str
    attributes: dict[str, Any]
    events: list[Event]
    status: str
    status_message: str
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end - self.start)

    def event(self, name: str) -> Event | None:
        return next((e for e in self.events if e.name == name), None)


def from_message(s: PbSpan, resource: dict[str, Any], scope: str) -> Span:
    """One OTLP span message as a Span, under its resource's attributes and its scope's name."""
    return Span(
        trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
        name=s.name, kind=KINDS.get(s.kind, str(s.kind)), start=s.start_time_unix_nano,
        end=s.end_time_unix_nano, service=service_of(resource), scope=scope,
        attributes=attributes(s.attributes),
        events=[Event(e.name, e.time_unix_nano, attributes(e.attributes)) for e in s.events],
        status=STATUS.get(s.status.code, str(s.status.code)), status_message=s.status.message,
        resource=resource)


def decode(raw: bytes, resource: dict[str, Any], scope: str) -> Span:
    """A span kept as its OTLP encoding (checked when it arrived) as a Span."""
    return from_message(PbSpan.FromString(raw), resource, scope)


def flatten(request: ExportTraceServiceRequest) -> list[Span]:
    out: list[Span] = []
    for rs in request.resource_spans:
        res = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            out.extend(from_message(s, res, ss.scope.name) for s in ss.spans)
    return out


def kv(key: str, value: Any) -> KeyValue:
    """A KeyValue for tests that build requests by hand."""
    out = KeyValue(key=key)
    if isinstance(value, bool):
        out.value.bool_value = value
    elif isinstance(value, int):
        out.value.int_value = value
    elif isinstance(value, float):
        out.value.double_value = value
    else:
        out.value.string_value = str(value)
    return out
