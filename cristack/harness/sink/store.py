"""Spans received over OTLP, kept in memory within bounds and optionally appended to a JSONL file.

A span is kept as the OTLP bytes it arrived as (checked whole on arrival by ``intake``) and decoded into a
``Span`` only when it is read; an index beside it (trace, service and span name, start and end) answers the
query API without decoding anything.

Bounds, each counted and never passed, with what was let go counted in ``stats()``:

- the whole store: traces, spans and bytes. Whole traces go, least recently updated first, as in Jaeger v2's
  memory storage (``internal/storage/v2/memory/tenant.go``: a ring of ``max_traces``, the oldest trace is
  overwritten), which bounds the number of traces only;
- one trace: spans and bytes. A trace that reaches its bound keeps the spans it has and refuses the rest, as
  Grafana Tempo's ingester does past ``max_bytes_per_trace`` (``modules/overrides/config.go``, 5,000,000 bytes by
  default); without it one trace id could fill the store, and one answer of the query API could be the store.

Bytes are what the spans cost here: their encoding plus a measured allowance per span, per run of spans and per
trace for the Python objects that hold them (``SPAN_COST``, ``RUN_COST``, ``TRACE_COST``), so that ``max_bytes``
bounds the process's memory, not only the payload.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

from cristack.harness.sink.intake import Group, Piece, Request
from cristack.harness.sink.spans import (  # noqa: F401 - Event, flatten and kv are imported from here too
    KINDS,
    STATUS,
    Event,
    Span,
    Values,
    attributes,
    decode,
    flatten,
    kv,
)
from cristack.otel import otlpjson

DEFAULT_MAX_TRACES = 10_000
DEFAULT_MAX_SPANS = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_TRACE_SPANS = 10_000
DEFAULT_MAX_TRACE_BYTES = 5_000_000  # Tempo's max_bytes_per_trace

# What the Python objects around a kept span cost beyond its encoding (measured with tests/integration/
# test_sink_hostile.py's per-span figure): the bytes object's header, its slots in a run, its index entry.
SPAN_COST = 128
RUN_COST = 400  # a run's object, its lists and array, plus its share of the resource and scope it names
TRACE_COST = 600  # the trace's record, its key and its place in the ordered map
OP_COST = 200  # one (service, span name) pair in the operations index, plus the two strings
JSONL_LINE_SPANS = 1000  # a request of more spans goes to --jsonl as several lines of at most this many


@dataclass(slots=True)
class Operation:
    """A (service, span name) pair and how many kept spans carry it: the index behind /api/services and
    /api/services/{service}/operations, shared by those spans."""

    service: str
    name: str
    count: int = 0


@dataclass(slots=True)
class _Run:
    """Spans of one trace that came in one request under one resource and scope."""

    seq: int  # the request's arrival number
    group: Group
    positions: array  # each span's place in its request
    spans: list[bytes]
    ops: list[Operation]


@dataclass(slots=True)
class _Trace:
    runs: list[_Run] = field(default_factory=list)
    spans: int = 0
    bytes: int = TRACE_COST
    start: int = 0
    end: int = 0
    refused: int = 0  # spans refused once the trace was at its bound


@dataclass
class StoreStats:
    """What the store holds and what it let go to stay within its bounds."""

    traces: int
    spans: int
    bytes: int
    max_traces: int
    max_spans: int
    max_bytes: int
    dropped_traces: int
    dropped_spans: int  # spans of dropped traces plus spans refused by a full trace
    max_trace_spans: int = DEFAULT_MAX_TRACE_SPANS
    max_trace_bytes: int = DEFAULT_MAX_TRACE_BYTES
    truncated_traces: int = 0  # traces held that refused spans
    refused_spans: int = 0  # spans refused because their trace was at its bound (part of dropped_spans)


class SpanStore:
    """Thread-safe and bounded (see the module's docstring); ``add`` takes a whole request, the receivers hand
    over a checked ``intake.Request`` with ``take``."""

    def __init__(self, max_traces: int = DEFAULT_MAX_TRACES, jsonl: Path | None = None, *,
                 max_spans: int = DEFAULT_MAX_SPANS, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_trace_spans: int = DEFAULT_MAX_TRACE_SPANS, max_trace_bytes: int = DEFAULT_MAX_TRACE_BYTES
                 ) -> None:
        self.max_traces, self.max_spans, self.max_bytes = max_traces, max_spans, max_bytes
        # A trace never holds more than the whole store may.
        self.max_trace_spans = min(max_trace_spans, max_spans)
        self.max_trace_bytes = min(max_trace_bytes, max_bytes)
        self._traces: OrderedDict[bytes, _Trace] = OrderedDict()
        self._ops: dict[tuple[str, str], Operation] = {}
        self.span_count = self.byte_count = self.ops_bytes = 0
        self.dropped_traces = self.dropped_spans = self.refused_spans = self.truncated_traces = 0
        self._seq = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._jsonl = jsonl.open("a", buffering=1) if jsonl is not None else None
        self._jsonl_lock = threading.Lock()

    # Receiving ---------------------------------------------------------------------------------------------

    def add(self, request: ExportTraceServiceRequest) -> int:
        """A whole request (for callers that built one); the receivers use ``take``."""
        return self.take(Request(request.SerializeToString()))

    def take(self, request: Request) -> int:
        """Stores a checked request chunk by chunk, evicting as it goes, so that a large request never sits in
        memory as objects beside the store; returns how many of its spans were kept."""
        with self._changed:
            seq = self._seq
            self._seq += 1
        kept = 0
        with self._jsonl_lock:  # a request's lines stay together in the file
            lines = _JsonLines(self._jsonl) if self._jsonl is not None else None
            for group, pieces in request.chunks():
                with self._changed:
                    kept += self._store(seq, group, pieces)
                    self._changed.notify_all()
                if lines is not None:
                    lines.add(group, pieces)
            if lines is not None:
                lines.done()
        return kept

    def _store(self, seq: int, group: Group, pieces: list[Piece]) -> int:
        """One chunk into the store (under its lock): each span into its trace's run for this request unless the
        trace is at its bound, then whole old traces out until the store is within its own."""
        runs: dict[bytes, _Run] = {}
        traces, ops, service = self._traces, self._ops, group.service
        group_cost = RUN_COST + len(group.resource) + len(group.scope)
        kept = 0
        last = b""
        for position, trace_id, name, start, end, raw in pieces:
            trace = traces.get(trace_id)
            if trace is None:
                trace = traces[trace_id] = _Trace(start=start, end=end)
                self.byte_count += trace.bytes
            run = runs.get(trace_id)
            cost = len(raw) + SPAN_COST + (group_cost if run is None else 0)
            op = ops.get((service, name))
            if not self._fits(trace, cost, 0 if op is not None else OP_COST + len(service) + len(name)):
                self.truncated_traces += not trace.refused
                trace.refused += 1
                self.refused_spans += 1
                self.dropped_spans += 1
                continue
            if run is None:
                run = runs[trace_id] = _Run(seq, group, array("I"), [], [])
                trace.runs.append(run)
            if op is None:
                op = self._operation(service, name)
            op.count += 1
            run.positions.append(position)
            run.spans.append(raw)
            run.ops.append(op)
            trace.spans += 1
            trace.bytes += cost
            if start < trace.start:
                trace.start = start
            if end > trace.end:
                trace.end = end
            self.byte_count += cost
            kept += 1
            if trace_id != last:
                traces.move_to_end(trace_id)
                last = trace_id
        self.span_count += kept
        for trace_id in {p[1] for p in pieces} - runs.keys():
            if not traces[trace_id].spans:  # a new trace whose every span was refused
                self._forget(trace_id)
        if runs:
            self._evict(keep=last)
        return kept

    def _fits(self, trace: _Trace, cost: int, new_op: int) -> bool:
        """Whether one more span of ``cost`` fits its trace's bounds, and the store's once every other trace
        is gone (the operations index stays, so it counts against the trace)."""
        return (trace.spans < self.max_trace_spans and trace.bytes + cost <= self.max_trace_bytes
                and trace.bytes + cost + self.ops_bytes + new_op <= self.max_bytes)

    def _operation(self, service: str, name: str) -> Operation:
        """A new entry of the operations index (its count starts at 0)."""
        op = self._ops[(service, name)] = Operation(service, name)
        self.ops_bytes += OP_COST + len(service) + len(name)
        self.byte_count += OP_COST + len(service) + len(name)
        return op

    def _evict(self, keep: bytes) -> None:
        """Whole traces out, least recently updated first, until the store is within its bounds again; the
        trace being added to stays (it is within its own bounds, which are within the store's)."""
        while len(self._traces) > 1 and (len(self._traces) > self.max_traces or self.span_count > self.max_spans
                                         or self.byte_count > self.max_bytes):
            oldest = next(iter(self._traces))
            if oldest == keep:
                self._traces.move_to_end(keep)
                continue
            self.dropped_traces += 1
            self.dropped_spans += self._traces[oldest].spans
            self._forget(oldest)

    def _forget(self, trace_id: bytes) -> None:
        trace = self._traces.pop(trace_id)
        self.truncated_traces -= bool(trace.refused)
        self.span_count -= trace.spans
        self.byte_count -= trace.bytes
        for run in trace.runs:
            for op in run.ops:
                op.count -= 1
                if not op.count:
                    del self._ops[(op.service, op.name)]
                    self.ops_bytes -= OP_COST + len(op.service) + len(op.name)
                    self.byte_count -= OP_COST + len(op.service) + len(op.name)

    # Reading -----------------------------------------------------------------------------------------------

    def stats(self) -> StoreStats:
        with self._lock:
            return StoreStats(len(self._traces), self.span_count, self.byte_count, self.max_traces, self.max_spans,
                              self.max_bytes, self.dropped_traces, self.dropped_spans, self.max_trace_spans,
                              self.max_trace_bytes, self.truncated_traces, self.refused_spans)

    def spans(self) -> list[Span]:
        """Every span held, decoded (for callers in this process; the HTTP API reads the index instead)."""
        with self._lock:
            kept = [run for trace in self._traces.values() for run in trace.runs]
        return list(_decoded(kept))

    def trace(self, trace_id: str, max_values: int | None = None) -> list[Span]:
        """A held trace's spans, decoded ([] when it is not held); with ``max_values``, at most that many
        attribute values, events and items in all (spans.Values), for views of traces from anyone."""
        key = _trace_key(trace_id)
        with self._lock:
            trace = self._traces.get(key) if key is not None else None
            runs = list(trace.runs) if trace is not None else []
        return list(_decoded(runs, Decoder(max_values)))

    def trace_ids(self) -> list[str]:
        """Held traces, least recently updated first."""
        with self._lock:
            return [t.hex() for t in self._traces]

    def slice(self, trace_id: str, at: tuple[int, int], max_bytes: int
              ) -> tuple[list[tuple[Group, bytes]], tuple[int, int]] | None:
        """The spans of a held trace from ``at`` (run, span) on, as they arrived: as many as fit in ``max_bytes``
        (at least one), and where the next slice starts; None when the trace is not held (any more). Answers
        read a trace slice by slice, so that a slow reader holds a slice, not the trace."""
        key = _trace_key(trace_id)
        out: list[tuple[Group, bytes]] = []
        size = 0
        with self._lock:
            trace = self._traces.get(key) if key is not None else None
            if trace is None:
                return None
            r, i = at
            while r < len(trace.runs) and (not out or size < max_bytes):
                run = trace.runs[r]
                if i >= len(run.spans):
                    r, i = r + 1, 0
                    continue
                out.append((run.group, run.spans[i]))
                size += len(run.spans[i])
                i += 1
        return out, (r, i)

    def size(self, trace_id: str) -> int:
        """What a held trace costs in the store's bytes (0 when it is not held)."""
        key = _trace_key(trace_id)
        with self._lock:
            trace = self._traces.get(key) if key is not None else None
            return trace.bytes if trace is not None else 0

    def refused(self, trace_id: str) -> int:
        """How many spans of a held trace were refused because it was at its bound."""
        key = _trace_key(trace_id)
        with self._lock:
            trace = self._traces.get(key) if key is not None else None
            return trace.refused if trace is not None else 0

    def services(self) -> list[str]:
        with self._lock:
            return sorted({op.service for op in self._ops.values()})

    def operations(self, service: str) -> list[str]:
        with self._lock:
            return sorted(op.name for op in self._ops.values() if op.service == service)

    def find(self, service: str, operation: str = "", since_ns: float | None = None,
             limit: int = 20) -> list[str]:
        """Ids of traces, most recently updated first, with a span of ``service`` (named ``operation`` when given)
        that ended after ``since_ns`` (when given): at most ``limit``."""
        found: list[str] = []
        with self._lock:
            for trace_id in reversed(self._traces):
                trace = self._traces[trace_id]
                if since_ns is not None and trace.end < since_ns:
                    continue
                if any(op.service == service and (not operation or op.name == operation)
                       for run in trace.runs for op in run.ops):
                    found.append(trace_id.hex())
                    if len(found) >= limit:
                        break
        return found

    def names(self, trace_id: str) -> tuple[int, set[str]]:
        """A held trace's span count and span names, from the index (0 and nothing when it is not held)."""
        key = _trace_key(trace_id)
        with self._lock:
            trace = self._traces.get(key) if key is not None else None
            if trace is None:
                return 0, set()
            return trace.spans, {op.name for run in trace.runs for op in run.ops}

    def wait(self, predicate: Callable[[SpanStore], bool], timeout: float) -> bool:
        """Waits until ``predicate(self)`` holds or ``timeout`` passes; returns whether it held."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                self._lock.release()
                try:
                    ok = predicate(self)
                finally:
                    self._lock.acquire()
                if ok:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))

    def export_request(self) -> ExportTraceServiceRequest:
        """Everything still held, as one ExportTraceServiceRequest in the order it arrived (spans that came
        under the same resource and scope one after another share one ResourceSpans and ScopeSpans)."""
        with self._lock:
            kept = sorted(((run.seq, position, run.group, raw) for trace in self._traces.values()
                           for run in trace.runs for position, raw in zip(run.positions, run.spans, strict=True)),
                          key=lambda k: (k[0], k[1]))
        merged = ExportTraceServiceRequest()
        rs = ss = None
        resource = scope = None
        for _, _, group, raw in kept:
            if rs is None or group.resource != resource:
                rs, resource, scope = merged.resource_spans.add(), group.resource, None
                rs.MergeFromString(group.resource)
            if ss is None or group.scope != scope:
                ss, scope = rs.scope_spans.add(), group.scope
                ss.MergeFromString(group.scope)
            ss.spans.add().MergeFromString(raw)
        return merged

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()


class _JsonLines:
    """A request as OTLP JSON lines, as the Collector's file exporter writes what it receives: one line, or one
    per JSONL_LINE_SPANS spans for a large request, so that no line needs the whole request as objects."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self._line = ExportTraceServiceRequest()
        self._spans = 0
        self._group: Group | None = None
        self._scope_spans: Any = None

    def add(self, group: Group, pieces: list[Piece]) -> None:
        for piece in pieces:
            if self._spans >= JSONL_LINE_SPANS:
                self._flush()
            if group is not self._group:
                rs = self._line.resource_spans.add()
                rs.MergeFromString(group.resource)
                self._scope_spans = rs.scope_spans.add()
                self._scope_spans.MergeFromString(group.scope)
                self._group = group
            self._scope_spans.spans.add().MergeFromString(piece[-1])
            self._spans += 1

    def _flush(self) -> None:
        self._out.write(otlpjson.dumps(self._line) + "\n")
        self._line, self._spans, self._group = ExportTraceServiceRequest(), 0, None

    def done(self) -> None:
        if self._spans:
            self._flush()


def _trace_key(trace_id: str) -> bytes | None:
    """A trace id as the store keys it (16 bytes), from hex of up to 32 digits; None for anything else."""
    if not 0 < len(trace_id) <= 32:
        return None
    try:
        return bytes.fromhex(trace_id.rjust(32, "0"))
    except ValueError:
        return None


class Decoder:
    """Kept spans back into Spans, each resource and scope decoded once; with ``max_values``, at most that many
    values in all (spans.Values)."""

    def __init__(self, max_values: int | None = None) -> None:
        self._resources: dict[bytes, dict[str, Any]] = {}
        self._scopes: dict[bytes, str] = {}
        self._values = Values(max_values)

    def __call__(self, group: Group, raw: bytes) -> Span:
        res = self._resources.get(group.resource)
        if res is None:
            res = self._resources[group.resource] = attributes(
                ResourceSpans.FromString(group.resource).resource.attributes)
        scope = self._scopes.get(group.scope)
        if scope is None:
            scope = self._scopes[group.scope] = ScopeSpans.FromString(group.scope).scope.name
        return decode(raw, res, scope, self._values)


def _decoded(runs: Iterable[_Run], decoder: Decoder | None = None) -> Iterator[Span]:
    decoder = decoder or Decoder()
    for run in runs:
        for raw in run.spans:
            yield decoder(run.group, raw)


__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_SPANS", "Event", "Span", "SpanStore", "StoreStats",
           "flatten", "kv"]
