"""Opening and failing spans on the paths every call takes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode


@contextlib.contextmanager
def current_span(tracer: trace.Tracer, name: str, *, context: otel_context.Context | None = None,
                 kind: trace.SpanKind = trace.SpanKind.INTERNAL,
                 attributes: dict[str, Any] | None = None) -> Iterator[trace.Span]:
    """``tracer.start_as_current_span(..., record_exception=False, set_status_on_exception=False)`` in one
    context-manager layer instead of the API's three (its decorator, the tracer's generator, ``use_span``):
    the span is current inside the block and ends when the block does, raised or not, with no exception event
    and no status set (the callers set statuses as the Go code they stand for does). Used on the paths every CRI
    call takes, where a relist makes thousands of spans."""
    span = tracer.start_span(name, context, kind, attributes, record_exception=False, set_status_on_exception=False)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        otel_context.detach(token)
        span.end()


@contextlib.contextmanager
def error_status(span: trace.Span) -> Iterator[trace.Span]:
    """Marks ``span`` ERROR with the error's message if the block raises (no traceback event)."""
    try:
        yield span
    except Exception as err:
        span.set_status(Status(StatusCode.ERROR, str(err) or type(err).__name__))
        raise
