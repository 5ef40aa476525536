"""conmon-rs v0.8.0's span shapes, as its tracing-opentelemetry layer exports them.

One span per RPC (``version``; ``create_container``/``exec_sync_container`` with
``container_id`` and ``uuid``) and a ``promise`` child for its asynchronous part; under it
the supervision spans: ``stdout``/``stderr`` (``read_loop`` for a terminal), ``watch`` →
``cgroup_handling`` → ``oom_handling_cgroup_v1``, ``wait_for_exit_code``,
``write_exit_path`` per exit file, and ``watch_grandchild``. Every span carries
``code.file.path``, ``code.module.name``, ``code.line.number`` (conmon-rs's own source
locations, see ``sites``), ``thread.id``, ``thread.name``, ``target`` and, when it ends,
``busy_ns``/``idle_ns``; events are named by their message with ``level``, ``target`` and the
code.* keys. conmon-rs records every level into spans (its ``--log-level`` filters only its
log output), so the events do not depend on CRI-O's log level.

What reaches the monitor in each request's metadata map decides how it traces:

- ``traceparent``/``tracestate``: the caller's context; our RPC span is its child (what
  conmon-rs intends; 0.8.0 itself fails to do it, see ``conmonrs_orphaned_spans``).
- ``cristack-monitor-env``: the runtime handler's ``monitor_env`` entries, one per line.
  conmon-rs installs its tracing only when CRI-O gives it a log driver, which CRI-O takes
  from ``LOG_DRIVER=...`` there; without one (or with ``LOG_DRIVER=none``) nothing of the
  request, or of the container it creates, is recorded. A request without the key (a
  direct API client, an older fake-crio) traces as if a log driver were set.
- ``cristack-faults``: comma-separated workshop faults; ``conmonrs_orphaned_spans``
  reproduces 0.8.0's real behaviour: the RPC span hangs under the monitor's long-lived,
  never-exported ``backend`` span, so all of one monitor's spans share one trace of their
  own whose root's parent is missing.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from cristack.containers.monitor_metadata import FAULTS_KEY, MONITOR_ENV_KEY
from cristack.containers.supervise import Hooks
from cristack.otel.spans import error_status
from fake_conmon.sites import SPANS, event_site

SCOPE = "conmonrs"
ORPHAN_FAULT = "conmonrs_orphaned_spans"
# conmon-rs runs its async work on tokio's worker threads; our event loop plays that part.
THREAD_NAME = "tokio-rt-worker"

_thread_numbers: dict[int, int] = {}


def _thread_id() -> int:
    """A small per-process thread number, like the Rust ``ThreadId`` tracing-opentelemetry writes."""
    return _thread_numbers.setdefault(threading.get_ident(), len(_thread_numbers) + 1)


def log_driver(metadata: Mapping[str, str]) -> str | None:
    """The log driver CRI-O would hand conmon-rs for this request: the last ``LOG_DRIVER=``
    of the monitor env (as CRI-O's loop keeps the last), "none" when there is none, or None
    when the request says nothing about its handler's monitor env."""
    env = metadata.get(MONITOR_ENV_KEY)
    if env is None:
        return None
    driver = "none"
    for entry in env.split("\n"):
        key, sep, value = entry.partition("=")
        if sep and key.strip() == "LOG_DRIVER":
            driver = value.strip()
    return driver


def exports(metadata: Mapping[str, str]) -> bool:
    """Whether conmon-rs would have a tracing subscriber for this request's handler."""
    return log_driver(metadata) not in ("none", "")


def faults(metadata: Mapping[str, str]) -> set[str]:
    return {f.strip() for f in metadata.get(FAULTS_KEY, "").split(",") if f.strip()}


def _unsampled_context() -> otel_context.Context:
    # A valid parent that is not sampled: every span below it stays unrecorded, even under
    # conmon-rs's ParentBased(AlwaysOn) sampler.
    ctx = SpanContext(random.getrandbits(128) or 1, random.getrandbits(64) or 1, is_remote=False,
                      trace_flags=TraceFlags(TraceFlags.DEFAULT))
    return trace.set_span_in_context(NonRecordingSpan(ctx))


class ConmonTracing:
    """Opens conmon-rs-shaped spans and events on a tracer named ``conmonrs``."""

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self.tracer = (provider or trace.NoOpTracerProvider()).get_tracer(SCOPE)
        # conmon-rs's ``backend`` span: entered for the process's whole life, never ended, so
        # never exported. Only the orphaned-spans fault makes it a parent.
        self.backend = SpanContext(random.getrandbits(128) or 1, random.getrandbits(64) or 1, is_remote=False,
                                   trace_flags=TraceFlags(TraceFlags.SAMPLED))

    @contextlib.contextmanager
    def _span(self, name: str, site_key: str, fields: Mapping[str, Any],
              context: otel_context.Context | None = None) -> Iterator[trace.Span]:
        site = SPANS.get(site_key)  # a subclass (the Kata agent) may name spans conmon-rs has not
        attrs: dict[str, Any] = {**(site.attributes() if site else {}), "thread.id": _thread_id(),
                                 "thread.name": THREAD_NAME, "target": site.target if site else SCOPE}
        attrs.update({k: v for k, v in fields.items() if v is not None})
        wall, cpu = time.monotonic_ns(), time.thread_time_ns()
        with self.tracer.start_as_current_span(name, context=context, attributes=attrs, record_exception=False,
                                               set_status_on_exception=False) as span:
            try:
                with error_status(span):
                    yield span
            finally:
                elapsed = time.monotonic_ns() - wall
                busy = max(0, min(elapsed, time.thread_time_ns() - cpu))
                span.set_attribute("busy_ns", busy)
                span.set_attribute("idle_ns", elapsed - busy)

    def parent_context(self, metadata: Mapping[str, str]) -> otel_context.Context:
        """Where an RPC's span goes, from the request's metadata (see the module docstring)."""
        if not exports(metadata):
            return _unsampled_context()
        if ORPHAN_FAULT in faults(metadata):
            return trace.set_span_in_context(NonRecordingSpan(self.backend))
        return propagate.extract(dict(metadata))

    def rpc(self, name: str, metadata: Mapping[str, str], **fields: Any) -> contextlib.AbstractContextManager:
        """An RPC's span (``version``, ``create_container``, ...) with a fresh ``uuid``."""
        fields = {**fields, "uuid": str(uuid.uuid4())}
        return self._span(name, name, fields, self.parent_context(metadata))

    def promise(self, rpc: str) -> contextlib.AbstractContextManager:
        """The ``promise`` span an RPC's asynchronous part runs in."""
        return self._span("promise", f"{rpc}.promise", {})

    def span(self, name: str, **fields: Any) -> contextlib.AbstractContextManager:
        """A child of the current span, at the location conmon-rs opens ``name``."""
        return self._span(name, name, fields)

    @staticmethod
    def event(message: str, span: trace.Span | None = None, **fields: Any) -> None:
        """An event named by its message, at the level and location conmon-rs writes it."""
        span = span or trace.get_current_span()
        if not span.is_recording():
            return
        site = event_site(message)
        level = site.level if site else "DEBUG"
        attrs: dict[str, Any] = {"level": level, "target": site.target if site else SCOPE, **fields}
        if site:
            attrs.update(site.attributes())
        span.add_event(message, attrs)
        if level == "ERROR":
            span.set_status(Status(StatusCode.ERROR, message))


class SpanHooks(Hooks):
    """The supervision steps of ``cristack.containers.supervise`` as conmon-rs spans and events."""

    def __init__(self, tracing: ConmonTracing) -> None:
        self.tracing = tracing

    def span(self, name: str, **fields: Any) -> contextlib.AbstractContextManager[Any]:
        return self.tracing.span(name, **fields)

    def event(self, message: str, on: Any = None, **fields: Any) -> None:
        self.tracing.event(message, on, **fields)
