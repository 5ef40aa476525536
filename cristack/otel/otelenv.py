"""Tracing configured only by the standard ``OTEL_*`` environment variables, as a Go program built on the
OpenTelemetry Go SDK's OTLP exporters reads them (go.opentelemetry.io/otel/exporters/otlp/otlptrace
otlptracegrpc and otlptracehttp, internal/envconfig; sdk/trace's sampler from the environment). containerd v2
is such a program (pkg/tracing/plugin/otlp.go): no TOML setting, tracing skipped unless an endpoint is set.

- ``OTEL_SDK_DISABLED``: a Go bool; true turns tracing off, anything unparsable is an error.
- Endpoint: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is), else ``OTEL_EXPORTER_OTLP_ENDPOINT`` (for
  HTTP, ``/v1/traces`` appended). Neither set: tracing is skipped.
- Protocol: ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``: ``grpc`` or
  ``http/protobuf`` (the default); anything else is an error.
- Insecure: an ``http://`` endpoint, or ``OTEL_EXPORTER_OTLP_(TRACES_)INSECURE=true`` (gRPC).
- Sampler: ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (read by the Python SDK under the same names
  and values as Go's: ``parentbased_always_on`` by default).
- ``OTEL_TRACES_EXPORTER``: empty or ``otlp``; anything else is an error.
- Resource: the Go SDK's ``resource.Default()``: ``service.name`` and ``telemetry.sdk.*``, plus what
  ``OTEL_RESOURCE_ATTRIBUTES`` adds; no host.name, no process.pid (as containerd's recordings show).

``go_telemetry`` puts these together into a component's ``Telemetry``: containerd's (fake_containerd.tracing)
and its shim's (fake_containerd.shim.daemon, built with ``shim_tracing``, which loads the same plugin).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

from cristack.otel.telemetry import Telemetry, TracingSettings

GO_SDK_VERSION = "1.46.0"  # go.opentelemetry.io/otel/sdk as containerd v2.4.2 links it
GO_SDK = {"telemetry.sdk.language": "go", "telemetry.sdk.name": "opentelemetry",
          "telemetry.sdk.version": GO_SDK_VERSION}
HTTP_EXPORT_TIMEOUT_S = 5.0
GRPC = "grpc"
HTTP = "http/protobuf"
PROTOCOLS = (GRPC, HTTP)
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class OtelEnvError(ValueError):
    """An OTEL_* variable holds something the Go SDK would refuse; the message names the variable."""


@dataclass(frozen=True)
class OtlpTarget:
    """Where spans go: ``protocol`` grpc (``target`` host:port) or http/protobuf (``target`` a URL)."""

    protocol: str
    target: str
    insecure: bool


def go_bool(name: str, value: str) -> bool:
    """strconv.ParseBool's spellings."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise OtelEnvError(f"invalid value for {name}: strconv.ParseBool: parsing {value!r}: invalid syntax")


def disabled(env: Mapping[str, str]) -> bool:
    value = env.get("OTEL_SDK_DISABLED", "")
    return bool(value) and go_bool("OTEL_SDK_DISABLED", value)


def otlp_target(env: Mapping[str, str]) -> OtlpTarget | None:
    """The exporter's protocol and target from the environment, or None when no endpoint is set."""
    if env.get("OTEL_TRACES_EXPORTER", "") not in ("", "otlp"):
        raise OtelEnvError(f"unsupported traces exporter {env['OTEL_TRACES_EXPORTER']!r}: invalid argument")
    traces_ep = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
    generic_ep = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if not traces_ep and not generic_ep:
        return None
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "") or HTTP
    if protocol not in PROTOCOLS:
        raise OtelEnvError(f"OpenTelemetry protocol {protocol!r} : not implemented")
    insecure_var = ("OTEL_EXPORTER_OTLP_TRACES_INSECURE" if "OTEL_EXPORTER_OTLP_TRACES_INSECURE" in env
                    else "OTEL_EXPORTER_OTLP_INSECURE")
    insecure_env = env.get(insecure_var, "")
    insecure = bool(insecure_env) and go_bool(insecure_var, insecure_env)
    endpoint = traces_ep or generic_ep
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if not parts.hostname:
        raise OtelEnvError(f"invalid OTLP endpoint {endpoint!r}")
    insecure = insecure or parts.scheme == "http"
    if protocol == GRPC:
        port = parts.port or 4317
        return OtlpTarget(GRPC, f"{parts.hostname}:{port}", insecure)
    scheme = parts.scheme or ("http" if insecure else "https")
    port = parts.port or 4318
    path = parts.path if traces_ep else parts.path.rstrip("/") + "/v1/traces"
    return OtlpTarget(HTTP, f"{scheme}://{parts.hostname}:{port}{path or '/v1/traces'}", insecure)


def service_name(env: Mapping[str, str], default: str) -> str:
    """``OTEL_SERVICE_NAME``, or the program's default when it is empty (containerd sets ``containerd``)."""
    return env.get("OTEL_SERVICE_NAME", "") or default


def sampler(env: Mapping[str, str]) -> Sampler:
    """``OTEL_TRACES_SAMPLER`` and its argument as sdk/trace's samplerFromEnv reads them; an unknown name or a
    bad ratio falls back as Go's does (the default sampler, or a ratio of 1)."""
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    arg = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()

    def ratio() -> Sampler:
        try:
            value = float(arg) if arg else 1.0
        except ValueError:
            value = 1.0
        return TraceIdRatioBased(value if 0.0 <= value <= 1.0 else 1.0)

    samplers = {
        "always_on": lambda: ALWAYS_ON, "always_off": lambda: ALWAYS_OFF, "traceidratio": ratio,
        "parentbased_always_on": lambda: ParentBased(ALWAYS_ON),
        "parentbased_always_off": lambda: ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": lambda: ParentBased(ratio()),
    }
    return samplers.get(name, samplers["parentbased_always_on"])()


def go_resource(env: Mapping[str, str], default_service: str) -> Resource:
    """resource.Default() of the Go SDK, with the program's default service name."""
    detected = OTELResourceDetector().detect()
    return Resource(GO_SDK).merge(detected).merge(Resource({"service.name": service_name(env, default_service)}))


def go_telemetry(env: Mapping[str, str], default_service: str, log: logging.Logger,
                 stats_path: Path | None = None) -> Telemetry:
    """The tracer provider containerd's otlp plugin builds from ``env``: off unless an endpoint is set (said at
    info on ``log`` in the plugin loader's words), and off with the plugin's failure logged at error for a
    value the Go SDK would refuse (containerd runs on without the plugin)."""
    off = Telemetry(default_service, TracingSettings(False, ""))
    try:
        if disabled(env):
            log.info("skip loading plugin: tracing disabled by env OTEL_SDK_DISABLED=%s", env["OTEL_SDK_DISABLED"])
            return off
        target = otlp_target(env)
    except OtelEnvError as err:
        log.error("failed to load plugin io.containerd.tracing.processor.v1.otlp: %s", err)
        return off
    if target is None:
        log.info("skip loading plugin \"io.containerd.tracing.processor.v1.otlp\": tracing endpoint not configured")
        return off
    exporter = None  # gRPC: the library's OTLP/gRPC exporter
    if target.protocol == HTTP:
        from cristack.otel.otlphttp import HttpSpanExporter

        exporter = HttpSpanExporter(target.target, timeout=HTTP_EXPORT_TIMEOUT_S)
    return Telemetry(service_name(env, default_service), TracingSettings(True, target.target), exporter=exporter,
                     resource=go_resource(env, default_service), sampler=sampler(env), stats_path=stats_path)
