"""otelttrpc-shaped spans (cristack.otel.ttrpctrace) against the real containerd v2.4.2 + shim_tracing shim
recording (tests/data/real/containerd/, copied from ground-truth/containerd/): span names, kinds, scope and
version, attribute keys, values and types, statuses, and the parent edge containerd CLIENT -> shim SERVER."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from cristack.otel.ttrpctrace import client_interceptor, server_interceptor
from cristack.wire.errors import NotFound
from cristack.wire.pb.containerd.runtime.task.v3 import shim_pb2
from cristack.wire.pb.containerd.services.ttrpc.events.v1 import events_pb2
from cristack.wire.ttrpc import MD, CallContext, Client, Closed, Method, Server, TtrpcError

REAL = Path(__file__).resolve().parents[1] / "data/real/containerd"
TASK = "containerd.task.v3.Task"
EVENTS = "containerd.services.events.ttrpc.v1.Events"


def _recorded(name: str) -> Iterator[dict[str, Any]]:
    with (REAL / name).open() as f:
        for line in f:
            yield json.loads(line)


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _shape(span: ReadableSpan) -> tuple[str, str, str, str, dict[str, Any], int]:
    """A span as the recording's fields: scope, version, name, kind, attributes, status code."""
    scope = span.instrumentation_scope
    assert scope is not None
    return (scope.name, scope.version or "", span.name, span.kind.name, dict(span.attributes or {}),
            span.status.status_code.value)


def _recorded_shape(s: dict[str, Any]) -> tuple[str, str, str, str, dict[str, Any], int]:
    return s["scope"], s["scope_version"], s["name"], s["kind"], s["attributes"], s["status"]


@contextlib.asynccontextmanager
async def _pair(tmp_path: Path, handlers: dict[str, Any], service: str = TASK, *, client_provider: TracerProvider,
                server_provider: TracerProvider) -> AsyncIterator[tuple[Server, Client]]:
    """A traced ttrpc server with ``handlers`` and a traced client connected to it, both closed at the end."""
    server = Server(interceptor=server_interceptor(server_provider))
    server.register(service, handlers)
    await server.listen(tmp_path / "shim.sock")
    try:
        client = await Client.connect(tmp_path / "shim.sock", interceptor=client_interceptor(client_provider))
        try:
            yield server, client
        finally:
            await client.close()
    finally:
        await server.close()


def test_task_call_spans_match_the_recording(tmp_path: Path) -> None:
    """A Create from containerd to the shim: CLIENT and SERVER spans as recorded, the SERVER one the child."""
    recorded = {(s["kind"], s["name"]): s for s in _recorded("spans-lifecycle-shimtracing.jsonl")
                if s["name"] == f"{TASK}/Create"}
    containerd, c_spans = _provider()
    shim, s_spans = _provider()
    seen: list[MD] = []

    async def create(ctx: CallContext, req: shim_pb2.CreateTaskRequest) -> shim_pb2.CreateTaskResponse:
        seen.append(ctx.metadata)
        return shim_pb2.CreateTaskResponse(pid=42)

    async def scenario() -> None:
        async with _pair(tmp_path, {"Create": Method(shim_pb2.CreateTaskRequest, create)},
                         client_provider=containerd, server_provider=shim) as (server, client):
            tracer = containerd.get_tracer("test")
            with tracer.start_as_current_span("container.NewTask"):
                out = await client.call(TASK, "Create", shim_pb2.CreateTaskRequest(id="c1"),
                                        shim_pb2.CreateTaskResponse,
                                        metadata={"containerd-namespace-ttrpc": "k8s.io"})
            assert out.pid == 42

    asyncio.run(scenario())
    client_span = next(s for s in c_spans.get_finished_spans() if s.kind == SpanKind.CLIENT)
    (server_span,) = s_spans.get_finished_spans()
    assert _shape(client_span) == _recorded_shape(recorded[("CLIENT", f"{TASK}/Create")])
    assert _shape(server_span) == _recorded_shape(recorded[("SERVER", f"{TASK}/Create")])
    # Attribute order as otelttrpc sets them (the recording keeps it).
    assert list(client_span.attributes or {}) == list(recorded[("CLIENT", f"{TASK}/Create")]["attributes"])
    assert server_span.parent is not None and server_span.parent.is_remote
    assert server_span.parent.span_id == client_span.context.span_id
    assert server_span.context.trace_id == client_span.context.trace_id
    # The metadata on the wire: the namespace kept, the context as a lower-case traceparent, nothing empty.
    md = seen[0]
    assert md.first("containerd-namespace-ttrpc") == "k8s.io"
    version, trace_id, span_id, flags = (md.first("traceparent") or "").split("-")
    assert (version, trace_id, span_id) == ("00", f"{client_span.context.trace_id:032x}",
                                            f"{client_span.context.span_id:016x}")
    assert int(flags, 16) & 1  # sampled
    assert sorted(md.keys()) == ["containerd-namespace-ttrpc", "traceparent"]


def test_not_found_is_an_answer_to_the_client_and_a_code_to_the_server(tmp_path: Path) -> None:
    """Recorded: the shim's Kill SERVER span has code 5 and no ERROR; containerd's CLIENT span code 0."""
    recorded = [s for s in _recorded("spans-lifecycle-shimtracing.jsonl")
                if s["name"] == f"{TASK}/Kill" and s["kind"] == "SERVER" and s["attributes"]["rpc.ttrpc.status_code"]]
    assert recorded, "the recording has a NOT_FOUND Kill"
    containerd, c_spans = _provider()
    shim, s_spans = _provider()

    async def kill(ctx: CallContext, req: shim_pb2.KillRequest) -> empty_pb2.Empty:
        raise NotFound("process already finished")

    async def scenario() -> None:
        async with _pair(tmp_path, {"Kill": Method(shim_pb2.KillRequest, kill)},
                         client_provider=containerd, server_provider=shim) as (server, client):
            with pytest.raises(TtrpcError):
                await client.call(TASK, "Kill", shim_pb2.KillRequest(id="c1", exec_id="e1", signal=9), empty_pb2.Empty)

    asyncio.run(scenario())
    (server_span,) = s_spans.get_finished_spans()
    (client_span,) = c_spans.get_finished_spans()
    assert _shape(server_span) == _recorded_shape(recorded[0])
    parent = next(s for s in _recorded("spans-lifecycle-shimtracing.jsonl") if s["span_id"] == recorded[0]["parent_id"])
    assert _shape(client_span) == _recorded_shape(parent)


def test_shutdown_racing_the_shims_exit_is_the_recorded_error(tmp_path: Path) -> None:
    """spans-lifecycle.jsonl: one Task/Shutdown CLIENT span ERROR "ttrpc: closed", status code 2."""
    (recorded,) = [s for s in _recorded("spans-lifecycle.jsonl") if s["name"] == f"{TASK}/Shutdown" and s["status"]]
    containerd, c_spans = _provider()
    shim, _ = _provider()
    holder: dict[str, Server] = {}

    async def shutdown(ctx: CallContext, req: shim_pb2.ShutdownRequest) -> empty_pb2.Empty:
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(holder["s"].close()))
        await asyncio.Event().wait()  # the process is gone before it answers
        return empty_pb2.Empty()

    async def scenario() -> None:
        async with _pair(tmp_path, {"Shutdown": Method(shim_pb2.ShutdownRequest, shutdown)},
                         client_provider=containerd, server_provider=shim) as (server, client):
            holder["s"] = server
            with pytest.raises(Closed):
                await client.call(TASK, "Shutdown", shim_pb2.ShutdownRequest(id="c1"), empty_pb2.Empty)

    asyncio.run(scenario())
    (client_span,) = c_spans.get_finished_spans()
    assert _shape(client_span) == _recorded_shape(recorded)
    assert client_span.status.description == recorded["status_message"] == "ttrpc: closed"


def test_events_forward_without_context_is_a_root_server_span(tmp_path: Path) -> None:
    """The shim forwards its events with no trace context: containerd's Events/Forward spans are roots."""
    recorded = next(s for s in _recorded("spans-lifecycle-shimtracing.jsonl") if s["name"] == f"{EVENTS}/Forward")
    containerd, c_spans = _provider()

    async def forward(ctx: CallContext, req: events_pb2.ForwardRequest) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    async def scenario() -> None:
        server = Server(interceptor=server_interceptor(containerd))
        server.register(EVENTS, {"Forward": Method(events_pb2.ForwardRequest, forward)})
        await server.listen(tmp_path / "ctd.sock")
        client = await Client.connect(tmp_path / "ctd.sock")  # the shim's publisher: no interceptor
        try:
            await client.call(EVENTS, "Forward", events_pb2.ForwardRequest(), empty_pb2.Empty,
                              metadata={"containerd-namespace-ttrpc": "k8s.io"}, timeout=5)
        finally:
            await client.close()
            await server.close()

    asyncio.run(scenario())
    (span,) = c_spans.get_finished_spans()
    assert span.parent is None
    assert _shape(span) == _recorded_shape(recorded)


def test_server_faults_mark_the_server_span_error(tmp_path: Path) -> None:
    """UNIMPLEMENTED out of a handler (the runc shim's answer for what it cannot do) is a server fault:
    ERROR with the message and code 12; an unknown method never reaches the interceptor, as upstream."""
    shim, s_spans = _provider()
    containerd, _ = _provider()

    async def pause(ctx: CallContext, req: shim_pb2.PauseRequest) -> empty_pb2.Empty:
        raise TtrpcError(grpc.StatusCode.UNIMPLEMENTED, "pause is not supported")

    async def scenario() -> None:
        async with _pair(tmp_path, {"Pause": Method(shim_pb2.PauseRequest, pause)},
                         client_provider=containerd, server_provider=shim) as (server, client):
            with pytest.raises(TtrpcError):
                await client.call(TASK, "Pause", shim_pb2.PauseRequest(id="c1"), empty_pb2.Empty)
            with pytest.raises(TtrpcError):
                await client.call(TASK, "Resume", shim_pb2.ResumeRequest(id="c1"), empty_pb2.Empty)

    asyncio.run(scenario())
    (span,) = s_spans.get_finished_spans()
    assert span.name == f"{TASK}/Pause"
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "pause is not supported")
    assert (span.attributes or {})["rpc.ttrpc.status_code"] == 12
