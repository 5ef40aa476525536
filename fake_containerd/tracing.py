"""containerd v2.4.2's tracing: how it is switched on and the shapes of the spans it makes.

Switched on only by the environment (pkg/tracing/plugin/otlp.go, docs/tracing.md): the otlp processor and the
tracing plugin skip themselves unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT`` is set; the
protocol is ``http/protobuf`` unless ``grpc`` is asked for; ``OTEL_SERVICE_NAME`` defaults to ``containerd``;
the sampler comes from ``OTEL_TRACES_SAMPLER`` (the Go SDK's default: parent-based always-on). The resource is
the Go SDK's default one (``resource.Default()``: ``service.name`` and ``telemetry.sdk.*``, plus what
``OTEL_RESOURCE_ATTRIBUTES`` adds): no host.name, no process.pid, as recorded.

Scopes, as recorded (tests/data/real/containerd/):

- otelgrpc v0.71.0: the SERVER span of each CRI call (cristack.otel.rpctrace with the socket path as
  ``server.address``);
- the Go SDK's default tracer (an empty name, reported as ``go.opentelemetry.io/otel/sdk/tracer``): containerd's
  own INTERNAL spans, from pkg/tracing ``StartSpan`` (``span``/``root`` here);
- otelhttp v0.71.0: the registry requests' CLIENT spans (``remotes.docker.resolver.HTTPRequest``);
- otelttrpc: the shim calls and Events/Forward (cristack.otel.ttrpctrace, given this provider).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from cristack.otel import otelenv
from cristack.otel.rpctrace import OTELGRPC_SCOPE
from cristack.otel.spans import current_span
from cristack.otel.stats import stats_path_from_env
from cristack.otel.telemetry import Telemetry

log = logging.getLogger(__name__)

SERVICE = "containerd"
OTELGRPC_VERSION = "0.71.0"  # containerd v2.4.2 go.mod
OTELHTTP_SCOPE = "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
OTELHTTP_VERSION = "0.71.0"
STEP_SCOPE = "go.opentelemetry.io/otel/sdk/tracer"  # what the Go SDK names an empty tracer name
NAMESPACE = "k8s.io"  # the CRI plugin's containerd namespace (tracing.WithNamespace sets it as an attribute)


def containerd_telemetry(env: Mapping[str, str] | None = None) -> tuple[Telemetry, dict[str, str]]:
    """The tracer provider containerd's plugins would build from ``env`` (default: this process's), and the
    environment its shims inherit (``OTEL_SERVICE_NAME`` set to containerd's name, as the plugin sets it in its
    own environment); tracing off, the failure logged, for a value the Go SDK would refuse."""
    env = dict(os.environ if env is None else env)
    # The harness's span counts (cristack.otel.stats, mock-only: cristack load and the scenarios read them).
    telemetry = otelenv.go_telemetry(env, SERVICE, log, stats_path_from_env())
    if telemetry.enabled and not env.get("OTEL_SERVICE_NAME"):
        env["OTEL_SERVICE_NAME"] = SERVICE
    return telemetry, env


class ContainerdTracing:
    """The tracers containerd's code uses, from one tracer provider (injected: tests give their own)."""

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self.provider = provider or trace.NoOpTracerProvider()
        self.grpc = self.provider.get_tracer(OTELGRPC_SCOPE, OTELGRPC_VERSION)
        self.http = self.provider.get_tracer(OTELHTTP_SCOPE, OTELHTTP_VERSION)
        # pkg/tracing asks for an empty tracer name, which the Go SDK reports under its own default name.
        self.steps = self.provider.get_tracer(STEP_SCOPE)

    @contextlib.contextmanager
    def span(self, name: str, attributes: dict[str, Any] | None = None, *,
             namespace: bool = False) -> Iterator[trace.Span]:
        """pkg/tracing StartSpan: an INTERNAL span under the current one (``namespace``: WithNamespace)."""
        attrs = dict(attributes or {})
        if namespace:
            attrs["namespace"] = NAMESPACE
        with current_span(self.steps, name, attributes=attrs) as span:
            yield span

    @contextlib.contextmanager
    def root(self, name: str, attributes: dict[str, Any] | None = None) -> Iterator[trace.Span]:
        """A span started from a background context (a goroutine's ``context.Background()``): a root."""
        with current_span(self.steps, name, context=otel_context.Context(), attributes=attributes) as span:
            yield span

    @contextlib.contextmanager
    def background(self) -> Iterator[None]:
        """Runs the block with no current span, as code handed ``context.Background()`` does: what it calls
        starts roots of its own."""
        token = otel_context.attach(otel_context.Context())
        try:
            yield
        finally:
            otel_context.detach(token)


def add_event(name: str, attributes: dict[str, Any] | None = None) -> None:
    """span.AddEvent on the current span (tracing.SpanFromContext(ctx).AddEvent)."""
    trace.get_current_span().add_event(name, attributes or {})


def record_error(err: BaseException, type_name: str = "*status.Error") -> None:
    """span.RecordError(err) as the Go SDK records it: an ``exception`` event with the Go type and message."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event("exception", {"exception.type": type_name, "exception.message": str(err)})


