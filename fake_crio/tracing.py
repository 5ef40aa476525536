"""CRI-O's span shapes on the crio side of the trace.

- ``step("runPodSandbox")``: CRI-O's ``log.StartSpan``: an INTERNAL span named after the Go
  function that opened it (``github.com/cri-o/cri-o/server.(*Server).runPodSandbox``), with
  an empty instrumentation scope.
- ``client(...)``: the conmon-rs Go client's CLIENT span ``conmonrs-client: <Method>`` (scope
  ``crio``), whose context goes to the monitor inside the request's ``metadata`` map.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from cristack.rpctrace import inject
from cristack.telemetry import error_status, tracer_without_scope

SERVER_PREFIX = "github.com/cri-o/cri-o/server.(*Server)."
CRIO_SCOPE = "crio"


class CrioTracing:
    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        provider = provider or trace.NoOpTracerProvider()
        self.steps = tracer_without_scope(provider)
        self.crio = provider.get_tracer(CRIO_SCOPE)

    @contextlib.contextmanager
    def step(self, func: str) -> Iterator[trace.Span]:
        """A span for one of CRI-O's server functions. A failure marks it ERROR with the error's
        message (never a Python traceback)."""
        with self.steps.start_as_current_span(SERVER_PREFIX + func, record_exception=False,
                                              set_status_on_exception=False) as span, error_status(span):
            yield span

    @contextlib.contextmanager
    def client(self, method: str) -> Iterator[dict[str, str]]:
        """A ``conmonrs-client: <method>`` span; yields the metadata map to send."""
        with self.crio.start_as_current_span(f"conmonrs-client: {method}", kind=SpanKind.CLIENT):
            yield inject()


def step_span(func: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wraps a whole CRI handler in ``step(func)`` (for handlers that open their own span)."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        async def wrapper(self: Any, request: Any, context: Any) -> Any:
            with self.step(func):
                return await handler(self, request, context)

        return wrapper

    return decorate
