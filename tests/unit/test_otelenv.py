"""Tracing from the OTEL_* environment alone, as containerd v2 reads it, and the OTLP/HTTP exporter."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from cristack.harness.sink.receiver import Sink
from cristack.otel import otelenv
from cristack.otel.loghandler import SpanEventHandler
from cristack.otel.otlphttp import HttpSpanExporter
from fake_containerd.shim.daemon import shim_telemetry
from fake_containerd.tracing import containerd_telemetry


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
     otelenv.OtlpTarget("http/protobuf", "http://127.0.0.1:4318/v1/traces", True)),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector:9999/custom"},
     otelenv.OtlpTarget("http/protobuf", "https://collector:9999/custom", False)),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:5555", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
      "OTEL_EXPORTER_OTLP_INSECURE": "true"}, otelenv.OtlpTarget("grpc", "127.0.0.1:5555", True)),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
     otelenv.OtlpTarget("grpc", "collector:4317", False)),
])
def test_the_endpoint_and_protocol_come_from_the_go_sdks_variables(env: dict, expected) -> None:
    assert otelenv.otlp_target(env) == expected


@pytest.mark.parametrize("env, words", [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "not implemented"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1", "OTEL_TRACES_EXPORTER": "zipkin"}, "unsupported traces exporter"),
    ({"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"),
])
def test_values_the_go_sdk_refuses_are_errors(env: dict, words: str) -> None:
    with pytest.raises(otelenv.OtelEnvError, match=words):
        otelenv.disabled(env) or otelenv.otlp_target(env)


def test_the_sampler_follows_otel_traces_sampler() -> None:
    s = otelenv.sampler({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    assert isinstance(s, TraceIdRatioBased) and s.rate == 0.25
    assert isinstance(otelenv.sampler({}), ParentBased)


def test_containerd_traces_only_with_an_endpoint_and_names_itself() -> None:
    telemetry, env = containerd_telemetry({})
    assert not telemetry.enabled and "OTEL_SERVICE_NAME" not in env
    telemetry, env = containerd_telemetry({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
    try:
        assert telemetry.enabled and env["OTEL_SERVICE_NAME"] == "containerd"
        attrs = dict(telemetry.provider.resource.attributes)
        assert attrs["service.name"] == "containerd" and attrs["telemetry.sdk.language"] == "go"
        assert "host.name" not in attrs and "process.pid" not in attrs
    finally:
        telemetry.shutdown(0.1)
    off, _ = containerd_telemetry({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1", "OTEL_SDK_DISABLED": "true"})
    assert not off.enabled


def test_containerd_runs_untraced_past_a_value_the_go_sdk_refuses(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        telemetry, env = containerd_telemetry({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1",
                                               "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    assert not telemetry.enabled and "OTEL_SERVICE_NAME" not in env
    assert "failed to load plugin io.containerd.tracing.processor.v1.otlp: OpenTelemetry protocol 'http/json'" \
        in caplog.text


def test_the_shim_reads_the_environment_containerd_handed_down(monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """The shim_tracing build loads containerd's own otlp plugin: the same variables, its own service name."""
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    telemetry = shim_telemetry("abc")
    assert telemetry is not None
    provider = telemetry.provider
    assert isinstance(provider, TracerProvider)
    try:
        assert dict(provider.resource.attributes) == {"service.name": "containerd-shim-abc", **otelenv.GO_SDK}
    finally:
        provider.shutdown()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert shim_telemetry("abc") is None
    monkeypatch.setenv("OTEL_SDK_DISABLED", "maybe")
    with caplog.at_level(logging.ERROR):
        assert shim_telemetry("abc") is None
    assert "OTEL_SDK_DISABLED" in caplog.text


def test_spans_reach_an_otlp_http_receiver() -> None:
    sink = Sink()
    addresses = sink.start()
    try:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(HttpSpanExporter(f"http://{addresses.http}/v1/traces")))
        with provider.get_tracer("t").start_as_current_span("over-http"):
            pass
        names = [s.name for rs in sink.store.export_request().resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert names == ["over-http"]
    finally:
        sink.stop()


def test_log_lines_become_events_named_by_their_message_with_logrus_levels() -> None:
    provider = TracerProvider()
    logger = logging.getLogger("test.containerd.style")
    logger.addHandler(SpanEventHandler("containerd"))
    logger.setLevel(logging.DEBUG)
    with provider.get_tracer("t").start_as_current_span("s") as span:
        logger.warning("connecting to shim %s", "abc", extra={"fields": {"version": 3, "protocol": "ttrpc"}})
    event = span.events[0]
    assert event.name == "connecting to shim abc"
    assert dict(event.attributes) == {"version": 3, "protocol": "ttrpc", "level": "warning"}
    assert span.status.is_unset
