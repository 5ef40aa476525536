"""conmon-rs's span shapes: one root span per RPC (``create_container`` with ``container_id``
and ``uuid``), parented by the trace context that arrives in the request's metadata map; a
``promise`` child for the asynchronous part; and under it the supervision spans
(``read_loop``, ``watch`` → ``wait_for_exit_code``, ``write_exit_path``).

Like tracing-opentelemetry in conmon-rs, every span carries ``code.filepath``,
``code.namespace``, ``code.lineno``, ``thread.id``, ``thread.name`` and, when it ends,
``busy_ns`` and ``idle_ns``; events are named by their message, with ``level`` and ``target``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Status, StatusCode

from cristack.supervise import Hooks
from cristack.telemetry import error_status

SCOPE = "conmonrs"


def _code_attributes(depth: int) -> dict[str, Any]:
    frame = sys._getframe(depth)
    module = frame.f_globals.get("__name__", "")
    return {"code.filepath": frame.f_code.co_filename.rsplit("/site-packages/", 1)[-1],
            "code.namespace": module.replace(".", "::"), "code.lineno": frame.f_lineno,
            "thread.id": threading.get_native_id(), "thread.name": threading.current_thread().name}


class ConmonTracing:
    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self.tracer = (provider or trace.NoOpTracerProvider()).get_tracer(SCOPE)

    @contextlib.contextmanager
    def _span(self, name: str, fields: dict[str, Any], context: Any = None) -> Iterator[trace.Span]:
        attrs = {**_code_attributes(3), **{k: v for k, v in fields.items() if v is not None}}
        wall, cpu = time.monotonic_ns(), time.thread_time_ns()
        with self.tracer.start_as_current_span(name, context=context, attributes=attrs, record_exception=False,
                                               set_status_on_exception=False) as span:
            try:
                with error_status(span):
                    yield span
            finally:
                elapsed = time.monotonic_ns() - wall
                busy = min(elapsed, time.thread_time_ns() - cpu)
                span.set_attribute("busy_ns", busy)
                span.set_attribute("idle_ns", elapsed - busy)

    def root(self, name: str, metadata: Mapping[str, str], **fields: Any) -> contextlib.AbstractContextManager:
        """An RPC's span, child of the caller's context carried in ``metadata``."""
        fields.setdefault("uuid", str(uuid.uuid4()))
        return self._span(name, fields, propagate.extract(dict(metadata)))

    def span(self, name: str, **fields: Any) -> contextlib.AbstractContextManager:
        """A child of the current span."""
        return self._span(name, fields)


class SpanHooks(Hooks):
    """Supervision steps as conmon-rs spans and events."""

    def __init__(self, tracing: ConmonTracing) -> None:
        self.tracing = tracing

    def span(self, name: str, **fields: Any) -> contextlib.AbstractContextManager:
        return self.tracing._span(name, fields)

    def event(self, message: str, level: str = "DEBUG", **fields: Any) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(message, {"level": level, "target": "fake_conmon::supervise", **fields})
            if level == "ERROR":
                span.set_status(Status(StatusCode.ERROR, message))
