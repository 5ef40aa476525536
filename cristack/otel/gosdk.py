"""Tracer providers shaped like containerd's (pkg/tracing/plugin/otlp.go in containerd v2.4.2), for
fake-containerd and its shim: configured only by the standard ``OTEL_*`` environment, off unless an
OTLP endpoint is named, and a resource of ``service.name`` plus the Go SDK's ``telemetry.sdk.*`` and
nothing else (recorded: ``telemetry.sdk.{language=go,name=opentelemetry,version=1.46.0}``, no host,
no pid) but what ``OTEL_RESOURCE_ATTRIBUTES`` adds. The sampler is the SDK's reading of
``OTEL_TRACES_SAMPLER``/``_ARG`` (parent-based always-on when unset, as Go's). containerd sets
``OTEL_SERVICE_NAME`` to ``containerd`` when empty; its runc shim manager sets ``containerd-shim-<id>`` for the shim.

The provider is returned, never installed globally: each component instance gets its own.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from urllib.parse import unquote

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

GO_SDK_VERSION = "1.46.0"  # go.opentelemetry.io/otel/sdk as containerd v2.4.2 links it
EXPORT_TIMEOUT_MS = 1000

log = logging.getLogger(__name__)


def go_resource(service_name: str, environ: Mapping[str, str] = os.environ) -> Resource:
    """The Go SDK's ``resource.Default()`` as a provider built without a resource option gets it (the shim's):
    ``telemetry.sdk.*``, what ``OTEL_RESOURCE_ATTRIBUTES`` names (a node's ``host.name`` under cristack), and
    ``service.name``."""
    attrs: dict[str, str] = {}
    for item in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, eq, value = item.partition("=")
        if eq and key.strip():
            attrs[key.strip()] = unquote(value.strip())
    return Resource({"telemetry.sdk.language": "go", "telemetry.sdk.name": "opentelemetry",
                     "telemetry.sdk.version": GO_SDK_VERSION, **attrs, "service.name": service_name})


def otlp_endpoint(environ: Mapping[str, str] = os.environ) -> str | None:
    """The traces endpoint the environment names, or None (containerd's tracing plugins then skip)."""
    return environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


def env_provider(default_service: str, environ: Mapping[str, str] = os.environ,
                 exporter: SpanExporter | None = None) -> TracerProvider | None:
    """containerd's provider from the environment, or None when tracing is off (no endpoint, or
    ``OTEL_SDK_DISABLED=true``). ``exporter`` replaces the OTLP/gRPC one (tests)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    endpoint = otlp_endpoint(environ)
    if exporter is None:
        if endpoint is None:
            return None
        from cristack.otel.otlpwire import WireSpanExporter

        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol and protocol != "grpc":
            log.warning("OTLP protocol %r is not supported here; exporting over grpc to %s", protocol, endpoint)
        logging.getLogger("opentelemetry.exporter.otlp.proto.grpc.exporter").setLevel(logging.CRITICAL)
        exporter = WireSpanExporter(endpoint=endpoint, insecure=True, timeout=EXPORT_TIMEOUT_MS / 1000)
    provider = TracerProvider(resource=go_resource(environ.get("OTEL_SERVICE_NAME") or default_service, environ))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100,
                                                   export_timeout_millis=EXPORT_TIMEOUT_MS))
    return provider
