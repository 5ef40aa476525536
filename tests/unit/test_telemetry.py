"""Span shapes per component, checked with an in-memory exporter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind, StatusCode

from cristack.otel.exporter import QuietExporter
from cristack.otel.loghandler import SpanEventHandler
from cristack.otel.requestctx import REQUEST_ID, REQUEST_NAME
from cristack.otel.resource import resource_for
from cristack.otel.rpctrace import (
    ServerTracing,
    canonical_code_name,
    go_code_name,
    inject,
    server_peer_attributes,
    traced_unary_call,
)
from cristack.otel.sampler import TracingSettings, sampler_for
from cristack.otel.spans import current_span
from cristack.otel.telemetry import Telemetry
from cristack.wire.errors import NotFound, serve_errors
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from fake_conmon.tracing import ConmonTracing, SpanHooks
from fake_crio.tracing import CrioTracing
from fake_kubelet.kubelet import pod_span_factory
from fake_kubelet.manifests import parse_pod


@pytest.fixture
def memory():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def decision(settings: TracingSettings, parent_sampled: bool | None) -> Decision:
    ctx = None
    if parent_sampled is not None:
        flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if parent_sampled else 0)
        parent = trace.NonRecordingSpan(trace.SpanContext(1, 2, is_remote=True, trace_flags=flags))
        ctx = trace.set_span_in_context(parent)
    return sampler_for(settings).should_sample(ctx, 0xABC, "x").decision


@pytest.mark.parametrize("rate, always_on, parent, sampled", [
    (0, False, None, False), (None, False, None, False), (0, False, True, True), (0, False, False, False),
    (1_000_000, False, None, True), (1_000_000, False, False, False), (0, True, None, True),
])
def test_sampler_matrix(rate, always_on, parent, sampled) -> None:
    d = decision(TracingSettings(True, "x:1", rate, root_always_on=always_on), parent)
    assert (d == Decision.RECORD_AND_SAMPLE) is sampled


def test_ratio_sampler_is_about_the_rate() -> None:
    s = sampler_for(TracingSettings(True, "x:1", 100_000))
    hits = sum(s.should_sample(None, tid * 0x9E3779B97F4A7C15 % (1 << 128), "x").decision == Decision.RECORD_AND_SAMPLE
               for tid in range(1, 5001))
    assert 350 < hits < 650


def test_disabled_tracing_is_noop_but_passes_the_parent_on() -> None:
    tel = Telemetry("crio", TracingSettings(False, "127.0.0.1:4317"))
    assert not tel.enabled
    remote = trace.SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=trace.TraceFlags(1))
    token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(remote)))
    try:
        with tel.tracer("crio").start_as_current_span("x"):
            carrier = inject()
    finally:
        otel_context.detach(token)
    assert carrier["traceparent"] == f"00-{0x1234:032x}-{0x5678:016x}-01"


def test_crio_log_events(memory) -> None:
    provider, exporter = memory
    logger = logging.getLogger("test.crio.events")
    logger.addHandler(SpanEventHandler("crio"))
    logger.setLevel(logging.INFO)
    id_token, name_token = REQUEST_ID.set("req-1"), REQUEST_NAME.set("/runtime.v1.RuntimeService/X")
    try:
        with provider.get_tracer("t").start_as_current_span("step"):
            logger.info("Started container", extra={"fields": {"containerID": "abc"}})
            logger.debug("hidden below the level")
            logger.error("pull failed", extra={"error_type": "*errors.errorString"})
    finally:
        REQUEST_ID.reset(id_token)
        REQUEST_NAME.reset(name_token)
    span = exporter.get_finished_spans()[0]
    first, second = (e.attributes for e in span.events)
    assert [e.name for e in span.events] == ["log", "log"]
    assert dict(first) == {"log.severity": "INFO", "log.message": "Started container", "id": "req-1",
                           "name": "/runtime.v1.RuntimeService/X", "containerID": "abc"}
    assert second["log.severity"] == "ERROR" and second["exception.message"] == "pull failed"
    assert second["exception.type"] == "*errors.errorString"
    assert span.status.status_code == StatusCode.ERROR


def test_conmon_events_are_named_by_their_message(memory) -> None:
    provider, exporter = memory
    logger = logging.getLogger("fake_conmon.rpc")
    handler = SpanEventHandler("conmon")
    logger.addHandler(handler)
    try:
        with provider.get_tracer("t").start_as_current_span("s"):
            logger.warning("Got a create container request")
    finally:
        logger.removeHandler(handler)
    event = exporter.get_finished_spans()[0].events[0]
    assert event.name == "Got a create container request"
    assert dict(event.attributes) == {"level": "WARN", "target": "fake_conmon::rpc"}


def test_quiet_exporter_warns_once_per_outage(caplog) -> None:
    class Flaky:
        results = [SpanExportResult.FAILURE] * 3 + [SpanExportResult.SUCCESS]

        def export(self, spans):
            return self.results.pop(0)

        def shutdown(self):
            pass

    q = QuietExporter(Flaky(), "127.0.0.1:9", "crio")
    with caplog.at_level(logging.INFO, logger="cristack.otel.exporter"):
        for _ in range(4):
            q.export([object()])
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot export spans" in m for m in messages) == 1
    assert sum("works again (3 spans were dropped)" in m for m in messages) == 1


def test_kubelet_sync_span(memory) -> None:
    provider, exporter = memory
    pod = parse_pod(b"kind: Pod\nmetadata: {name: web, namespace: prod, uid: u-1}\n"
                    b"spec: {containers: [{name: c, image: busybox}]}\n", "web.yaml")
    span = pod_span_factory(provider.get_tracer("k8s.io/kubernetes/pkg/kubelet"))

    async def go() -> None:
        with provider.get_tracer("t").start_as_current_span("unrelated parent"):
            async with span("syncPod", pod, "create"):
                pass

    asyncio.run(go())
    sync = next(s for s in exporter.get_finished_spans() if s.name == "syncPod")
    assert sync.parent is None, "each sync is a trace of its own"
    assert dict(sync.attributes) == {"k8s.pod.uid": "u-1", "k8s.pod": "prod/web", "k8s.pod.name": "web",
                                     "k8s.namespace.name": "prod", "k8s.pod.update_type": "create"}


def test_crio_step_and_client_spans(memory) -> None:
    provider, exporter = memory
    tr = CrioTracing(provider)

    async def go() -> None:
        async with tr.step("pullImage"):
            with tr.client("CreateContainer") as metadata:
                assert metadata["traceparent"].startswith("00-")
            raise NotFound("manifest unknown")

    with pytest.raises(NotFound):
        asyncio.run(go())
    client, step = exporter.get_finished_spans()
    assert step.name == "github.com/cri-o/cri-o/server.(*Server).pullImage"
    # CRI-O's log.StartSpan asks for Tracer(""), which the Go SDK names after itself.
    assert step.instrumentation_scope.name == "go.opentelemetry.io/otel/sdk/tracer"
    # CRI-O never sets a status on a step: the error goes to the gRPC answer.
    assert step.status.status_code == StatusCode.UNSET
    assert not step.events, "no Python traceback in the trace"
    assert (client.name, client.kind, client.instrumentation_scope.name) == \
        ("conmonrs-client: CreateContainer", SpanKind.CLIENT, "crio")
    assert client.parent.span_id == step.context.span_id


def test_crio_monitor_life_spans_are_roots(memory) -> None:
    provider, exporter = memory
    tr = CrioTracing(provider)

    async def go() -> None:
        async with tr.step("runPodSandbox"):
            with tr.client("New", root=True):
                with tr.client("Version"):
                    pass

    asyncio.run(go())
    version, new, step = exporter.get_finished_spans()
    assert new.parent is None and new.context.trace_id != step.context.trace_id
    assert version.parent.span_id == new.context.span_id


def test_conmon_spans(memory) -> None:
    provider, exporter = memory
    tr = ConmonTracing(provider)
    parent = trace.SpanContext(0xAA, 0xBB, is_remote=True, trace_flags=trace.TraceFlags(1))
    carrier = {"traceparent": f"00-{0xAA:032x}-{0xBB:016x}-01", "cristack-monitor-env": "LOG_DRIVER=stdout"}
    with tr.rpc("create_container", carrier, container_id="c1"):
        tr.event("Got a create container request")
        with tr.promise("create_container"):
            hooks = SpanHooks(tr)
            with hooks.span("wait_for_exit_code"):
                hooks.event("Exited 0")
    wait, promise, root = exporter.get_finished_spans()
    assert root.parent.span_id == parent.span_id and root.context.trace_id == 0xAA
    assert root.attributes["container_id"] == "c1" and len(root.attributes["uuid"]) == 36
    # conmon-rs's own source locations, as tracing-opentelemetry writes them
    code = (root.attributes["code.file.path"], root.attributes["code.line.number"])
    assert code == ("conmon-rs/server/src/rpc.rs", 116)
    assert root.attributes["code.module.name"] == root.attributes["target"] == "conmonrs::rpc"
    assert root.attributes["thread.name"] == "tokio-rt-worker" and root.attributes["thread.id"] >= 1
    assert root.attributes["idle_ns"] >= 0 and root.attributes["busy_ns"] >= 0
    assert dict(root.events[0].attributes) == {
        "level": "DEBUG", "target": "conmonrs::rpc", "code.file.path": "conmon-rs/server/src/rpc.rs",
        "code.module.name": "conmonrs::rpc", "code.line.number": 122}
    assert promise.attributes["code.line.number"] == 204
    assert promise.parent.span_id == root.context.span_id and wait.parent.span_id == promise.context.span_id
    assert wait.events[0].name == "Exited 0" and wait.events[0].attributes["code.line.number"] == 455
    assert wait.attributes["code.line.number"] == 375


def test_conmon_records_only_with_a_log_driver(memory) -> None:
    provider, exporter = memory
    tr = ConmonTracing(provider)
    for env in ("HEAPTRACK_OUTPUT_PATH=/tmp", "LOG_DRIVER=stdout\nLOG_DRIVER=none", ""):
        with tr.rpc("version", {"cristack-monitor-env": env}), tr.promise("create_container"):
            pass
    assert not exporter.get_finished_spans()
    with tr.rpc("version", {}):  # a client that says nothing about its handler: traced
        pass
    with tr.rpc("version", {"cristack-monitor-env": "HEAPTRACK_BINARY_PATH=/x\nLOG_DRIVER=systemd"}):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["version", "version"]


def test_conmon_orphaned_spans_fault_hangs_rpcs_under_the_backend(memory) -> None:
    provider, exporter = memory
    tr = ConmonTracing(provider)
    md = {"traceparent": f"00-{0xAA:032x}-{0xBB:016x}-01", "cristack-faults": "other, conmonrs_orphaned_spans"}
    for _ in range(2):
        with tr.rpc("create_container", md), tr.promise("create_container"):
            pass
    promise, root, _, root2 = exporter.get_finished_spans()
    assert root.context.trace_id == root2.context.trace_id == tr.backend.trace_id != 0xAA
    assert root.parent.span_id == root2.parent.span_id == tr.backend.span_id
    assert promise.parent.span_id == root.context.span_id


@serve_errors("test", pbgrpc.RuntimeServiceServicer)
class _Servicer(pbgrpc.RuntimeServiceServicer):
    async def Version(self, request, context):
        return pb.VersionResponse(runtime_name="x")

    async def ContainerStatus(self, request, context):
        raise NotFound("no such container")


@contextlib.asynccontextmanager
async def traced_server(servicer, interceptor: ServerTracing, sock: str):
    """``servicer`` behind ``interceptor`` on ``sock``; yields a client stub."""
    server = grpc.aio.server(interceptors=[interceptor])
    pbgrpc.add_RuntimeServiceServicer_to_server(servicer, server)
    server.add_insecure_port(sock)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(sock) as ch:
            yield pbgrpc.RuntimeServiceStub(ch)
    finally:
        await server.stop(None)


async def traced_version(tracer, stub) -> None:
    """Version in the kubelet's CLIENT span."""
    await traced_unary_call(tracer, "runtime.v1.RuntimeService/Version", "/runtime.v1.RuntimeService/Version",
                            lambda md: stub.Version(pb.VersionRequest(), metadata=md), pb.VersionRequest())


def test_grpc_client_and_server_spans(memory, tmp_path) -> None:
    provider, exporter = memory
    sock = f"unix://{tmp_path}/s.sock"

    async def go() -> None:
        interceptor = ServerTracing(provider.get_tracer("otelgrpc"), provider.get_tracer("crio"))
        async with traced_server(_Servicer(), interceptor, sock) as stub:
            tracer = provider.get_tracer("kubelet-cri")
            await traced_version(tracer, stub)
            with pytest.raises(grpc.aio.AioRpcError):
                await traced_unary_call(tracer, "runtime.v1.RuntimeService/ContainerStatus",
                                        "/runtime.v1.RuntimeService/ContainerStatus",
                                        lambda md: stub.ContainerStatus(pb.ContainerStatusRequest(container_id="x"),
                                                                        metadata=md),
                                        pb.ContainerStatusRequest(container_id="x"))

    asyncio.run(go())
    spans = {(s.name, s.kind): s for s in exporter.get_finished_spans()}
    client = spans[("runtime.v1.RuntimeService/Version", SpanKind.CLIENT)]
    server = spans[("runtime.v1.RuntimeService/Version", SpanKind.SERVER)]
    internal = spans[("/runtime.v1.RuntimeService/Version", SpanKind.INTERNAL)]
    assert server.parent.span_id == client.context.span_id
    assert internal.parent.span_id == server.context.span_id
    # otelgrpc v0.65.0 (the kubelet's) on the client, v0.66.0 (CRI-O's) on the server.
    assert dict(client.attributes) == {"rpc.system.name": "grpc", "rpc.method": "runtime.v1.RuntimeService/Version",
                                       "rpc.response.status_code": "OK"}
    assert [e.attributes["rpc.message.type"] for e in client.events] == ["SENT", "RECEIVED"]
    assert set(client.events[0].attributes) == {"rpc.message.type", "rpc.message.id", "rpc.message.compressed_size",
                                                "rpc.message.uncompressed_size"}
    assert dict(server.attributes) == {"rpc.system.name": "grpc", "rpc.method": "runtime.v1.RuntimeService/Version",
                                       "rpc.response.status_code": "OK", "server.address": "@"}
    assert not server.events, "CRI-O does not ask otelgrpc for message events"
    failed_client = spans[("runtime.v1.RuntimeService/ContainerStatus", SpanKind.CLIENT)]
    failed_server = spans[("runtime.v1.RuntimeService/ContainerStatus", SpanKind.SERVER)]
    assert failed_client.attributes["rpc.response.status_code"] == "NotFound"
    assert failed_client.status.status_code == StatusCode.ERROR
    assert failed_client.status.description == "no such container"
    assert [e.attributes["rpc.message.type"] for e in failed_client.events] == ["SENT"]
    assert failed_server.attributes["rpc.response.status_code"] == "NOT_FOUND"
    assert "server.address" not in failed_server.attributes, "no response headers went out"
    assert failed_server.status.status_code == StatusCode.UNSET, "NOT_FOUND is the caller's problem"


def test_resources_are_what_each_real_component_sets(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    assert dict(resource_for("kubelet", "rk-node").attributes) == {"service.name": "kubelet", "host.name": "rk-node"}
    assert set(resource_for("crio").attributes) == {"service.name", "host.name", "process.pid"}
    assert set(resource_for("conmonrs").attributes) == {"service.name", "host.name", "process.pid",
                                                        "telemetry.sdk.name", "telemetry.sdk.language",
                                                        "telemetry.sdk.version"}
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=demo,service.name=other")
    attrs = dict(resource_for("kubelet", "n").attributes)
    assert attrs["deployment.environment"] == "demo" and attrs["service.name"] == "kubelet"


@pytest.mark.parametrize("service", ["kubelet", "crio", "conmonrs"])
def test_host_name_from_the_environment_wins(monkeypatch, service: str) -> None:
    """Nodes on one machine share its hostname: OTEL_RESOURCE_ATTRIBUTES names each one, over the
    hostname and over the kubelet's --hostname-override; service.name stays the component's."""
    node = "node-a" if service == "kubelet" else None  # only the kubelet has a --hostname-override
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "host.name=node-b,service.name=other,rack=r1")
    attrs = dict(resource_for(service, node).attributes)
    assert attrs["host.name"] == "node-b" and attrs["service.name"] == service and attrs["rack"] == "r1"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "rack=r1")
    assert resource_for(service, node).attributes["host.name"] == (node or socket.gethostname())


def test_status_code_spellings() -> None:
    assert go_code_name(grpc.StatusCode.NOT_FOUND) == "NotFound"
    assert go_code_name(grpc.StatusCode.CANCELLED) == "Canceled"
    assert go_code_name(grpc.StatusCode.DEADLINE_EXCEEDED) == "DeadlineExceeded"
    assert canonical_code_name(grpc.StatusCode.NOT_FOUND) == "NOT_FOUND"
    assert server_peer_attributes("ipv4:127.0.0.1:5555") == {"server.address": "127.0.0.1", "server.port": 5555}
    assert server_peer_attributes("unix:") == {"server.address": "@"}


def test_calls_of_one_method_each_get_their_own_parent_and_request_id(memory, tmp_path) -> None:
    """The interceptor's wrapped handler is made once per method: what belongs to a call (the caller's trace
    context, the request id) must still come from that call."""
    provider, exporter = memory
    sock = f"unix://{tmp_path}/s.sock"
    request_ids: list[str] = []

    class Servicer(pbgrpc.RuntimeServiceServicer):
        async def Version(self, request, context):
            request_ids.append(REQUEST_ID.get())
            return pb.VersionResponse(runtime_name="x")

    async def go() -> None:
        async with traced_server(Servicer(), ServerTracing(provider.get_tracer("otelgrpc")), sock) as stub:
            tracer = provider.get_tracer("kubelet-cri")
            for _ in range(3):  # three traces of their own
                with tracer.start_as_current_span("sync", context=otel_context.Context()):
                    await traced_version(tracer, stub)

    asyncio.run(go())
    spans = exporter.get_finished_spans()
    clients = {s.context.span_id: s for s in spans if s.kind == SpanKind.CLIENT}
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    assert len(servers) == 3
    assert {s.parent.span_id for s in servers} == set(clients), "each server span under its own caller"
    assert all(s.context.trace_id == clients[s.parent.span_id].context.trace_id for s in servers)
    assert len(set(request_ids)) == 3 and all(request_ids)


def test_current_span_ends_a_failed_block_without_status_or_exception_event(memory) -> None:
    provider, exporter = memory
    tracer = provider.get_tracer("t")
    with pytest.raises(ValueError), current_span(tracer, "outer", kind=SpanKind.SERVER, attributes={"a": 1}) as outer:
        assert trace.get_current_span() is outer
        with current_span(tracer, "inner"):
            raise ValueError("boom")
    assert trace.get_current_span() is trace.INVALID_SPAN, "the context is restored"
    inner, outer_span = exporter.get_finished_spans()
    assert inner.parent.span_id == outer_span.context.span_id
    assert outer_span.kind == SpanKind.SERVER and dict(outer_span.attributes) == {"a": 1}
    for span in (inner, outer_span):
        assert span.end_time is not None
        assert span.status.status_code == StatusCode.UNSET and not span.events
