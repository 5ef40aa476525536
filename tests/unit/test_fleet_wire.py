"""The fleet's compiled templates: what a collector decodes from an issued kind is the captured span with fresh
ids joined as captured, times at their anchors plus the captured offsets, and every marker filled."""

from __future__ import annotations

import os

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from cristack.harness.fleet import wire
from cristack.harness.fleet.catalogue import EventTemplate, Kind, SpanTemplate, load, marker
from cristack.otel.tracediff import any_value

CATALOGUE = load("crio")
LENGTHS = {"base": 25, "uid": 36, "pod": 23, "node": 8, "ip": 11}


def _lengths(kind: Kind) -> dict[str, int]:
    out = {}
    for m in wire.kind_markers(kind):
        out[m] = LENGTHS.get(m) or (64 if m.startswith("id") else 36 if m.startswith("uuid") else 5)
    return out


def _issue(kind: Kind, lengths: dict[str, int]):
    markers = {m: os.urandom(n // 2 + 1).hex()[:n].encode() for m, n in lengths.items()}
    traces = [os.urandom(16) for _ in range(1 + max(s.trace for s in kind.spans))]
    spans = [os.urandom(8) for _ in range(1 + max(s.span for s in kind.spans))]
    anchors = {"r": 1_700_000_000_000_000_000, "t0": 1_700_000_001_000_000_000, "t1": 1_700_000_061_000_000_000}
    resource = wire.resource_bytes({"service.name": "x", "host.name": "node-7"})
    body = b"".join(wire.issue(g, resource, traces, spans, anchors, markers)
                    for e in wire.compile_kind(kind, lengths) for g in e.groups)
    return ExportTraceServiceRequest.FromString(body), markers, traces, spans, anchors


def _filled(value, markers):
    if isinstance(value, str):
        for m, v in markers.items():
            value = value.replace(marker(m), v.decode())
        return value
    if isinstance(value, list):
        return [_filled(v, markers) for v in value]
    if isinstance(value, dict):
        return {k: _filled(v, markers) for k, v in value.items()}
    return value


@pytest.mark.parametrize("name", sorted(CATALOGUE.kinds))
def test_an_issued_kind_decodes_to_its_captured_spans(name):
    kind = CATALOGUE.kinds[name]
    req, markers, traces, spans, anchors = _issue(kind, _lengths(kind))
    got = {s.span_id: (ss.scope, s) for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert len(got) == len(kind.spans)
    for t in kind.spans:
        scope, s = got[spans[t.span]]
        assert s.trace_id == traces[t.trace]
        assert s.parent_span_id == (spans[t.parent] if t.parent is not None else b"")
        assert (s.name, s.kind, s.flags) == (_filled(t.name, markers), t.span_kind, t.flags)
        assert (scope.name, scope.version) == t.scope
        assert s.start_time_unix_nano == anchors[t.start[0]] + t.start[1]
        assert s.end_time_unix_nano == anchors[t.end[0]] + t.end[1]
        assert {kv.key: any_value(kv.value) for kv in s.attributes} == _filled(t.attributes, markers)
        assert [(e.time_unix_nano, e.name, {kv.key: any_value(kv.value) for kv in e.attributes}) for e in s.events] \
            == [(anchors[e.time[0]] + e.time[1], _filled(e.name, markers), _filled(e.attributes, markers))
                for e in t.events]
        assert (s.status.code, s.status.message) == (t.status[0], _filled(t.status[1], markers))


def test_literal_percent_signs_and_adjacent_markers_survive():
    t = SpanTemplate(kind="k", trace=0, span=0, parent=None, flags=256, service="crio", scope=("", ""),
                     name="100% {{pod}}{{uid}}", span_kind=1, start=("r", 0), end=("r", 5),
                     attributes={"a": "%s %b {{pod}}", "n": 0, "z": "", "b": True},
                     events=[EventTemplate(("r", 1), "{{pod}}", {"x": "%%"})], status=(2, "failed: {{uid}} 50%"))
    kind = Kind("k", "node", rate=1.0, spans=[t])
    req, markers, *_ = _issue(kind, {"pod": 3, "uid": 36})
    s = req.resource_spans[0].scope_spans[0].spans[0]
    pod, uid = markers["pod"].decode(), markers["uid"].decode()
    assert s.name == f"100% {pod}{uid}"
    assert {kv.key: any_value(kv.value) for kv in s.attributes} == {"a": f"%s %b {pod}", "n": 0, "z": "", "b": True}
    assert s.events[0].name == pod and s.events[0].attributes[0].value.string_value == "%%"
    assert s.status.message == f"failed: {uid} 50%"


def test_every_captured_span_is_grouped_by_its_services_resource():
    kind = CATALOGUE.kinds["pod-pull"]
    for emission in wire.compile_kind(kind, _lengths(kind)):
        assert {g.service for g in emission.groups} <= set(CATALOGUE.resources)
    assert {"kubelet", "crio", "conmonrs"} <= {s.service for s in kind.spans}
