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
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from cristack.rpctrace import inject
from cristack.telemetry import error_status, tracer_without_scope
from fake_crio.faults import Faults

SERVER_PREFIX = "github.com/cri-o/cri-o/server.(*Server)."
INTERNAL_PREFIX = "github.com/cri-o/cri-o/internal/"


def span_name(func: str) -> str:
    if func.startswith("github.com/"):
        return func
    if "." in func:
        return INTERNAL_PREFIX + func
    return SERVER_PREFIX + func
CRIO_SCOPE = "crio"


class CrioTracing:
    def __init__(self, provider: trace.TracerProvider | None = None, faults: Faults | None = None) -> None:
        provider = provider or trace.NoOpTracerProvider()
        self.steps = tracer_without_scope(provider)
        self.crio = provider.get_tracer(CRIO_SCOPE)
        self.faults = faults or Faults()

    @contextlib.asynccontextmanager
    async def step(self, func: str, subject: str = "", *, fault_key: str = "",
                   attributes: dict[str, object] | None = None) -> AsyncIterator[trace.Span]:
        """A span for one of CRI-O's functions: ``runPodSandbox`` is a method of the server;
        a dotted name (``storage.(*runtimeService).CreateContainer``) lives in CRI-O's internal
        packages; a full path is taken as is. Injected faults for ``fault_key`` (default: the
        function) happen inside it, so the waterfall shows where they are. A failure marks it
        ERROR with the error's message (never a Python traceback)."""
        with self.steps.start_as_current_span(span_name(func), attributes=attributes, record_exception=False,
                                              set_status_on_exception=False) as span, error_status(span):
            if self.faults:
                await self.faults.apply(fault_key or func, subject)
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
            async with self.step(func, str(request)):
                return await handler(self, request, context)

        return wrapper

    return decorate
