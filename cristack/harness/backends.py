"""Where assertions read traces from: one small class per backend, all answering ``traces()`` with
the same ``Span`` model, so that one assertion file runs unchanged against each.

- ``SinkBackend``: the embedded sink's in-process store.
- ``JaegerBackend``: any Jaeger HTTP query API (``/api/services``, ``/api/traces``): a real Jaeger, or
  the query subset ``cristack sink``/``up`` serve.
- ``FileBackend``: a Collector ``file`` exporter's output: JSON lines, each line one OTLP/JSON
  ``TracesData`` (the shape of an ``ExportTraceServiceRequest``), read to the OTLP/JSON encoding rules
  (``cristack.otel.otlpjson``): trace and span ids are hex strings, enums are integers (enum names, which
  older writers used, are accepted too), 64-bit integers may be strings or numbers.

``FileExportWriter`` writes that same format (the fileexporter's default ``format: json``), so a test
without a Collector can let cristack's sink stand in for one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cristack.harness.assertions import Expected, Match, Trace, wait_for_trace
from cristack.harness.sink.store import Span, SpanStore, flatten
from cristack.harness.tracequery import JaegerQuery
from cristack.otel import otlpjson


class BackendError(RuntimeError):
    """A backend that cannot be read (bad file line, unreachable API) with what and where."""


class Backend:
    """Base class: ``traces()`` returns every trace the backend holds now (a list of span lists);
    ``otlp_endpoint`` is where to send spans so that they land here (None: unknown)."""

    otlp_endpoint: str | None = None

    def traces(self) -> list[list[Span]]:
        raise NotImplementedError

    def wait_for_trace(self, expected: Expected, *, match: Match = None, timeout: float = 30.0) -> Trace:
        """``cristack.harness.assertions.wait_for_trace`` on this backend."""
        return wait_for_trace(self, expected, match=match, timeout=timeout, poll=self.poll)

    poll: float = 0.1


@dataclass
class SinkBackend(Backend):
    """The embedded sink's store, read in process."""

    store: SpanStore
    otlp_endpoint: str | None = None

    def traces(self) -> list[list[Span]]:
        return [t for t in (self.store.trace(i) for i in self.store.trace_ids()) if t]

    def __str__(self) -> str:
        return f"the embedded sink ({self.otlp_endpoint or 'in process'})"


@dataclass
class JaegerBackend(Backend):
    """A Jaeger query API at ``url`` (e.g. http://127.0.0.1:16686). Jaeger finds traces by service, so
    ``traces()`` asks for each of ``services`` (default: every service Jaeger knows) and merges."""

    url: str
    otlp_endpoint: str | None = None
    services: Sequence[str] | None = None
    operation: str = ""  # only traces holding a span of this name (Jaeger's own filter)
    limit: int = 100
    lookback: str = "1h"
    poll: float = 0.25

    @classmethod
    def kubelet_syncs(cls, url: str, otlp_endpoint: str | None = None) -> JaegerBackend:
        """Only the kubelet's ``syncPod`` traces: a pod's start is one, and the relists (a trace each, every
        period) would otherwise push it out of the newest ``limit``."""
        return cls(url, otlp_endpoint, services=("kubelet",), operation="syncPod")

    def traces(self) -> list[list[Span]]:
        query = JaegerQuery(self.url)
        try:
            services = list(self.services) if self.services is not None else query.services()
            merged: dict[str, list[Span]] = {}
            for service in services:
                for spans in query.traces(service, self.operation, limit=self.limit, lookback=self.lookback):
                    if spans and len(spans) > len(merged.get(spans[0].trace_id, [])):
                        merged[spans[0].trace_id] = spans
        except OSError as err:
            raise BackendError(f"Jaeger query API at {self.url}: {err}") from None
        return list(merged.values())

    def __str__(self) -> str:
        return f"Jaeger at {self.url}"


@dataclass
class FileBackend(Backend):
    """A Collector ``file`` exporter's JSON lines at ``path``, re-read on every call (the Collector
    appends as it exports). A file that does not exist yet holds no traces."""

    path: Path
    otlp_endpoint: str | None = None

    def traces(self) -> list[list[Span]]:
        try:
            text = Path(self.path).read_text()
        except FileNotFoundError:
            return []
        except OSError as err:
            raise BackendError(f"{self.path}: {err.strerror}") from None
        by_trace: dict[str, list[Span]] = {}
        lines = text.split("\n")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                if n == len(lines):  # the exporter may be half-way through its last line
                    break
                raise BackendError(f"{self.path}:{n}: not JSON: {err.msg}") from None
            try:
                spans = spans_from_otlp_json(data)
            except otlpjson.OtlpJsonError as err:
                raise BackendError(f"{self.path}:{n}: not an OTLP/JSON TracesData line: {err}") from None
            for s in spans:
                by_trace.setdefault(s.trace_id, []).append(s)
        return list(by_trace.values())

    def __str__(self) -> str:
        return f"the file export {self.path}"


# -- OTLP/JSON (cristack.otel.otlpjson keeps the specification's encoding rules in one place)


def spans_from_otlp_json(data: dict[str, Any]) -> list[Span]:
    """The spans of one OTLP/JSON ``TracesData``/``ExportTraceServiceRequest`` object."""
    return flatten(otlpjson.from_dict(data))


def otlp_json_line(request: Any) -> str:
    """One ``ExportTraceServiceRequest`` as the Collector's fileexporter writes it: one compact line of OTLP/JSON."""
    return otlpjson.dumps(request)


@dataclass
class FileExportWriter:
    """Appends every request a sink receives to ``path`` as the Collector's fileexporter would:
    plug it in as ``SpanStore.on_request``-style hook with ``write(request)``."""

    path: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, request: Any) -> None:
        line = otlp_json_line(request) + "\n"
        with self._lock, Path(self.path).open("a") as f:
            f.write(line)
