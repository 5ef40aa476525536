"""Spans as the harness reads them: one flat record per span with its service and resource, made from OTLP
(a whole request with ``flatten``, or one span's stored encoding with ``decode``).

Decoding can be given a ``Values`` budget: a span of a few bytes per attribute becomes a few hundred bytes of
Python per attribute, so a trace the store holds within its byte bound could take a hundred times that to
show. Past the budget, values, events and list items are left out and a ``cristack.sink.cut`` attribute says
how many."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from cristack.otel.tracediff import any_value

CUT = "cristack.sink.cut"
KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


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


class Values:
    """How many values (attributes, events, list and map items, nested ones included) a decode may still make;
    no limit when ``limit`` is None."""

    def __init__(self, limit: int | None = None) -> None:
        self.left = limit

    def _within(self, items: Any) -> tuple[Any, int]:
        """As many of ``items`` as the budget still allows, and how many were left out."""
        if self.left is None:
            return items, 0
        take = max(0, min(len(items), self.left))
        self.left -= take
        return (items if take == len(items) else items[:take]), len(items) - take

    def value(self, v: Any) -> Any:
        """An AnyValue as plain Python (bytes as hex, lists, dicts), as ``tracediff.any_value`` makes it."""
        which = v.WhichOneof("value")
        if self.left is None or which not in ("array_value", "kvlist_value"):
            return any_value(v)
        if which == "array_value":
            items, cut = self._within(v.array_value.values)
            return [self.value(x) for x in items] + ([f"… {cut} more"] if cut else [])
        items, cut = self._within(v.kvlist_value.values)
        out = {kv.key: self.value(kv.value) for kv in items}
        if cut:
            out[CUT] = f"{cut} more"
        return out

    def attributes(self, kvs: Any) -> dict[str, Any]:
        if self.left is None:
            return {kv.key: any_value(kv.value) for kv in kvs}
        items, cut = self._within(kvs)
        out = {kv.key: self.value(kv.value) for kv in items}
        if cut:
            out[CUT] = f"{cut} attributes not shown: the sink shows at most so many values of one trace"
        return out

    def events(self, events: Any) -> list[Event]:
        items, _ = self._within(events)
        return [Event(e.name, e.time_unix_nano, self.attributes(e.attributes)) for e in items]


def attributes(kvs: Any) -> dict[str, Any]:
    return Values().attributes(kvs)


def from_message(s: PbSpan, resource: dict[str, Any], scope: str, values: Values | None = None) -> Span:
    """One OTLP span message as a Span, under its resource's attributes and its scope's name."""
    values = values or Values()
    return Span(
        trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
        name=s.name, kind=KINDS.get(s.kind, str(s.kind)), start=s.start_time_unix_nano,
        end=s.end_time_unix_nano, service=service_of(resource), scope=scope,
        attributes=values.attributes(s.attributes), events=values.events(s.events),
        status=STATUS.get(s.status.code, str(s.status.code)), status_message=s.status.message,
        resource=resource)


def decode(raw: bytes, resource: dict[str, Any], scope: str, values: Values | None = None) -> Span:
    """A span kept as its OTLP encoding (checked when it arrived) as a Span."""
    return from_message(PbSpan.FromString(raw), resource, scope, values)


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
