"""Jaeger's HTTP query API JSON (``/api/services``, ``/api/traces``), both ways: our spans as
Jaeger answers them, and Jaeger's answers back into our spans, so that one set of
assertions reads the embedded sink and a real Jaeger alike."""

from __future__ import annotations

from typing import Any

from cristack.harness.sink.store import Event, Span

KIND_TAG = {"SERVER": "server", "CLIENT": "client", "PRODUCER": "producer", "CONSUMER": "consumer",
            "INTERNAL": "internal"}


def tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    return {"key": key, "type": "string", "value": value if isinstance(value, str) else str(value)}


class Processes:
    """Jaeger's ``processes`` of one trace: a ``pN`` id for each distinct service and resource, in the order they
    first appear."""

    def __init__(self) -> None:
        self.ids: dict[tuple, str] = {}
        self.json: dict[str, dict[str, Any]] = {}

    def id_of(self, s: Span) -> str:
        key = (s.service, tuple(sorted((k, str(v)) for k, v in s.resource.items())))
        pid = self.ids.get(key)
        if pid is None:
            pid = self.ids[key] = f"p{len(self.ids) + 1}"
            self.json[pid] = {"serviceName": s.service, "tags": [
                tag(k, v) for k, v in sorted(s.resource.items()) if k != "service.name"]}
        return pid


def span_json(s: Span, processes: Processes) -> dict[str, Any]:
    """One span in Jaeger's JSON shape."""
    tags = [tag(k, v) for k, v in s.attributes.items()]
    if s.kind in KIND_TAG:
        tags.append(tag("span.kind", KIND_TAG[s.kind]))
    if s.scope:
        tags.append(tag("otel.scope.name", s.scope))
    if s.status == "ERROR":
        tags += [tag("otel.status_code", "ERROR"), tag("error", True)]
        if s.status_message:
            tags.append(tag("otel.status_description", s.status_message))
    refs = [{"refType": "CHILD_OF", "traceID": s.trace_id, "spanID": s.parent_span_id}] if s.parent_span_id else []
    return {
        "traceID": s.trace_id, "spanID": s.span_id, "operationName": s.name, "references": refs,
        "startTime": s.start // 1000, "duration": s.duration_ns // 1000, "tags": tags,
        "logs": [{"timestamp": e.time // 1000, "fields": [tag("event", e.name)] +
                  [tag(k, v) for k, v in e.attributes.items()]} for e in s.events],
        "processID": processes.id_of(s), "warnings": None,
    }


def trace_json(spans: list[Span]) -> dict[str, Any]:
    """One trace in Jaeger's JSON shape, its spans by start time."""
    processes = Processes()
    out = [span_json(s, processes) for s in sorted(spans, key=lambda x: x.start)]
    trace_id = spans[0].trace_id if spans else ""
    return {"traceID": trace_id, "spans": out, "processes": processes.json, "warnings": None}


def envelope(data: Any) -> dict[str, Any]:
    total = len(data) if isinstance(data, list) else 0
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": None}


def spans_from_jaeger(trace: dict[str, Any]) -> list[Span]:
    """Jaeger's JSON for one trace back into our Span model."""
    processes = trace.get("processes", {})
    out = []
    for s in trace.get("spans", []):
        tags = {t["key"]: t["value"] for t in s.get("tags", [])}
        kind = {"server": "SERVER", "client": "CLIENT", "producer": "PRODUCER", "consumer": "CONSUMER"}.get(
            str(tags.pop("span.kind", "")), "INTERNAL")
        scope = str(tags.pop("otel.scope.name", ""))
        tags.pop("otel.scope.version", None)
        status = "ERROR" if tags.pop("otel.status_code", "") == "ERROR" or tags.get("error") is True else "UNSET"
        message = str(tags.pop("otel.status_description", ""))
        tags.pop("error", None)
        parent = next((r["spanID"] for r in s.get("references", []) if r.get("refType") == "CHILD_OF"), "")
        proc = processes.get(s.get("processID", ""), {})
        resource = {t["key"]: t["value"] for t in proc.get("tags", [])}
        resource["service.name"] = proc.get("serviceName", "")
        events = []
        for entry in s.get("logs", []):
            fields = {f["key"]: f["value"] for f in entry.get("fields", [])}
            name = str(fields.pop("event", ""))
            events.append(Event(name, int(entry.get("timestamp", 0)) * 1000, fields))
        start = int(s.get("startTime", 0)) * 1000
        out.append(Span(
            trace_id=s["traceID"].rjust(32, "0"), span_id=s["spanID"].rjust(16, "0"),
            parent_span_id=parent.rjust(16, "0") if parent else "", name=s["operationName"], kind=kind,
            start=start, end=start + int(s.get("duration", 0)) * 1000, service=resource["service.name"],
            scope=scope, attributes=tags, events=events, status=status, status_message=message,
            resource=resource))
    return out
