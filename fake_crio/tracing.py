"""CRI-O's span shapes on the crio side of the trace (as CRI-O 1.36.3 records them).

- ``step("runPodSandbox")``: CRI-O's ``log.StartSpan`` (internal/log/log.go): an INTERNAL span
  named after the Go function that opened it, from ``TracerProvider().Tracer("")``, which the
  Go SDK reports under its default scope ``go.opentelemetry.io/otel/sdk/tracer``. CRI-O never
  sets a status on these spans; only a log line at error level does (the otellogrus hook).
- ``client(...)``: the conmon-rs Go client's CLIENT span ``conmonrs-client: <Method>`` (scope
  ``crio``, vendor/github.com/containers/conmon-rs/pkg/client/client.go), whose context goes to
  the monitor inside the request's ``metadata`` map. ``New``, ``startServer``,
  ``waitUntilServerUp``, ``Shutdown`` and the start-up ``Version`` polls start from
  ``context.Background()``/``context.TODO()`` and are therefore roots of their own.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from cristack.otel.rpctrace import inject
from cristack.otel.spans import current_span
from fake_crio.faults import Faults

CRIO_MODULE = "github.com/cri-o/cri-o/"
SERVER_METHOD = CRIO_MODULE + "server.(*Server)."
# What the Go SDK names a tracer asked for with an empty name (CRI-O's log.StartSpan does).
STEP_SCOPE = "go.opentelemetry.io/otel/sdk/tracer"
CRIO_SCOPE = "crio"
# Mock-only keys of the conmon.v1 request metadata map, read by fake-conmon.


def span_name(func: str) -> str:
    """``runPodSandbox`` is a method of CRI-O's server; ``server.x`` or ``internal/...`` is a
    path inside CRI-O's module; anything starting with a host name is taken as is."""
    if "/" in func and "." in func.split("/", 1)[0]:
        return func  # a full Go import path (github.com/...)
    if func.startswith(("server.", "internal/")):
        return CRIO_MODULE + func
    return SERVER_METHOD + func


class CrioTracing:
    def __init__(self, provider: trace.TracerProvider | None = None, faults: Faults | None = None) -> None:
        provider = provider or trace.NoOpTracerProvider()
        self.steps = provider.get_tracer(STEP_SCOPE)
        self.crio = provider.get_tracer(CRIO_SCOPE)
        self.faults = faults if faults is not None else Faults()  # (an empty Faults is falsy)

    @contextlib.asynccontextmanager
    async def step(self, func: str, subject: str = "", *, fault_key: str = "",
                   attributes: dict[str, object] | None = None) -> AsyncIterator[trace.Span]:
        """A span for one of CRI-O's functions (see ``span_name``). Injected faults for
        ``fault_key`` (default: the function as given) happen inside it, so the waterfall shows
        where they are. Like CRI-O, the span's status stays unset when the step fails: the
        error travels to the gRPC answer (and the SERVER span), not to the step."""
        with current_span(self.steps, span_name(func), attributes=attributes) as span:
            if self.faults:
                await self.faults.apply(fault_key or func, subject)
            yield span

    @contextlib.contextmanager
    def client(self, method: str, *, root: bool = False) -> Iterator[dict[str, str]]:
        """A ``conmonrs-client: <method>`` span; yields the metadata map to send. ``root``: the
        client started it from a background context, so it begins a trace of its own."""
        ctx = otel_context.Context() if root else None
        with self.crio.start_as_current_span(f"conmonrs-client: {method}", context=ctx, kind=SpanKind.CLIENT):
            yield inject()


def step_span(func: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wraps a whole CRI handler of the server (``handler(self, request)``) in ``step(func)``: CRI-O's handlers
    open their span first thing."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        async def wrapper(self: Any, request: Any) -> Any:
            # The request as text is only a fault's subject: not worth rendering on every call.
            async with self.step(func, str(request) if self.tracing.faults else ""):
                return await handler(self, request)

        return wrapper

    return decorate
