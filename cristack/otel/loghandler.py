"""Log records as span events, in each component's own style, and trace ids on text log lines.

A component's handler records only on the spans of its own tracer provider, so several components can run in
one process (the in-process test tier) with one handler each on the root logger, and each span gets the events
of the component that made it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Status, StatusCode

from cristack.otel.requestctx import REQUEST_ID, REQUEST_NAME
from cristack.wording import cut

# The most of a log record's message that a log line or a span event carries: a request can hold megabytes of one
# field (an image name, a label), and a debug line that echoes it whole would put megabytes into every log line and
# span event that repeats it. Past this, the message is cut and says how long it was (cristack.wording.cut).
MAX_MESSAGE = 16 * 1024

# logrus's Level.String() for each logging level (TRACE is below DEBUG).
LOGRUS_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error",
                 logging.CRITICAL: "fatal"}


class SpanEventHandler(logging.Handler):
    """Adds each log record as an event on the current span, in a component's style.

    - ``crio``: event ``log`` with ``log.severity``, ``log.message``, ``id`` and ``name`` (the
      request id and method); an error adds ``exception.type``/``exception.message`` and sets
      the span status to ERROR, as CRI-O's log hook does.
    - ``conmon``: the event is named by the message, with ``level`` and ``target`` (conmon-rs's
      tracing-opentelemetry layer).
    - ``containerd``: the event is named by the message, with the line's fields and ``level`` (logrus's
      name for it: ``info``, ``warning``, ...), and never a status (containerd/log/otel v0.1.0's hook).
    - ``plain``: event ``log`` with ``log.severity`` and ``log.message``.

    ``resource``: only spans with this resource (one tracer provider's) get events; None: any span.
    """

    SEVERITY = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN",
                logging.ERROR: "ERROR", logging.CRITICAL: "FATAL"}

    def __init__(self, style: str, level: int = logging.NOTSET, resource: Resource | None = None) -> None:
        super().__init__(level)
        self.style = style
        self.resource = resource

    def emit(self, record: logging.LogRecord) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        if self.resource is not None and getattr(span, "resource", None) is not self.resource:
            return  # another component's span (in-process)
        try:
            message = cut(record.getMessage(), MAX_MESSAGE)
        except Exception:  # noqa: BLE001 - a bad format string must not break the caller
            return
        severity = self.SEVERITY.get(record.levelno, record.levelname)
        # Structured fields (logging's extra={"fields": {...}}) become attributes, as logrus
        # fields do in CRI-O and tracing fields in conmon-rs.
        fields = {k: v for k, v in (getattr(record, "fields", None) or {}).items()
                  if isinstance(v, (str, bool, int, float))}
        if self.style == "containerd":
            span.add_event(message, {**fields, "level": LOGRUS_LEVELS.get(record.levelno, "trace")})
            return
        if self.style == "conmon":
            span.add_event(message, {"level": "TRACE" if record.levelno < logging.DEBUG else severity,
                                     "target": record.name.replace(".", "::"), **fields})
            return
        attrs: dict[str, object] = {"log.severity": severity, "log.message": message, **fields}
        if self.style == "crio":
            attrs["id"] = REQUEST_ID.get()
            attrs["name"] = REQUEST_NAME.get()
        if record.levelno >= logging.ERROR:
            attrs["exception.type"] = getattr(record, "error_type", "") or "error"
            attrs["exception.message"] = message
            span.set_status(Status(StatusCode.ERROR, message))
        span.add_event("log", attrs)


class TraceIdFilter(logging.Filter):
    """Gives each record ``trace`` = `` trace_id=... span_id=...`` when a span is current."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace = (f" trace_id={trace.format_trace_id(ctx.trace_id)} span_id={trace.format_span_id(ctx.span_id)}"
                        if ctx.is_valid else "")
        return True


@contextlib.contextmanager
def attached(handler: logging.Handler | None) -> Iterator[None]:
    """``handler`` on the root logger while the block runs (nothing with None): a component's span events
    for as long as the component runs."""
    if handler is None:
        yield
        return
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
