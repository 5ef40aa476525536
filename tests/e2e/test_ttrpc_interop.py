"""Our ttrpc against the real one: tools/ttrpc-peer is github.com/containerd/ttrpc v1.2.9 (what containerd
v2.4.2 links) with containerd's own generated Events service. Both directions, with metadata, a deadline,
error statuses and the oversized-message refusal, compared with what the Go side says."""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, empty_pb2, struct_pb2, timestamp_pb2, wrappers_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cristack.otel.ttrpctrace import client_interceptor
from cristack.wire.pb.containerd.events import task_pb2 as events_pb2
from cristack.wire.pb.containerd.services.ttrpc.events.v1 import events_pb2 as ttrpc_events_pb2
from cristack.wire.pb.containerd.types import event_pb2
from cristack.wire.pb.ttrpc import request_pb2
from cristack.wire.ttrpc import CallContext, Client, Method, Server, TtrpcError
from cristack.wire.ttrpc.channel import HEADER, MESSAGE_LENGTH_MAX, MessageType, oversized
from tests.conftest import require_tool

pytestmark = pytest.mark.e2e
ECHO = "cristack.interop.v1.Echo"


def _lines(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> Iterator[dict[str, Any]]:
    """The peer's JSON lines as they come; fails the test if none comes within ``timeout``. The pipe is
    unbuffered on our side, so select sees every line that is not read yet."""
    assert proc.stdout is not None
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        assert ready, "ttrpc-peer said nothing"
        line = proc.stdout.readline()
        if not line:
            return
        yield json.loads(line)


@pytest.fixture
def go_server(tmp_path: Path) -> Iterator[tuple[Path, Iterator[dict[str, Any]]]]:
    peer = require_tool("ttrpc-peer")
    sock = tmp_path / "go.sock"
    proc = subprocess.Popen([peer, "serve", str(sock)], stdout=subprocess.PIPE, bufsize=0)
    try:
        lines = _lines(proc)
        assert next(lines) == {"listening": str(sock)}
        yield sock, lines
    finally:
        proc.terminate()
        proc.wait(10)


def test_python_client_calls_go_server(go_server: tuple[Path, Iterator[dict[str, Any]]]) -> None:
    sock, lines = go_server
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def scenario() -> dict[str, Any]:
        client = await Client.connect(sock, interceptor=client_interceptor(provider))
        try:
            echoed = await client.call(ECHO, "Echo", wrappers_pb2.StringValue(value="hello from python"),
                                       struct_pb2.Struct, metadata={"X-Cristack": "from-python",
                                                                    "containerd-namespace-ttrpc": "k8s.io"},
                                       timeout=30)
            errors = {}
            for name, service, method in (("Fail", ECHO, "Fail"), ("Nope", ECHO, "Nope"),
                                          ("NoService", "no.Such", "Echo")):
                with pytest.raises(TtrpcError) as err:
                    await client.call(service, method, wrappers_pb2.StringValue(value="x"), empty_pb2.Empty)
                errors[name] = (err.value.code, err.value.message)
            # containerd's typeurl names a protobuf event by its full name alone.
            ev = any_pb2.Any(type_url="containerd.events.TaskStart",
                             value=events_pb2.TaskStart(container_id="c1", pid=42).SerializeToString())
            env = event_pb2.Envelope(timestamp=timestamp_pb2.Timestamp(seconds=1_800_000_000), namespace="k8s.io",
                                     topic="/tasks/start", event=ev)
            await client.call("containerd.services.events.ttrpc.v1.Events", "Forward",
                              ttrpc_events_pb2.ForwardRequest(envelope=env), empty_pb2.Empty, timeout=5)
            return {"echo": dict(echoed.items()), "errors": errors}
        finally:
            await client.close()

    out = asyncio.run(scenario())
    (span_echo, *_rest) = exporter.get_finished_spans()
    traceparent = f"00-{span_echo.context.trace_id:032x}-{span_echo.context.span_id:016x}-"
    echo = out["echo"]
    assert echo["value"] == "hello from python" and echo["deadline"] is True
    assert echo["md:x-cristack"] == "from-python" and echo["md:containerd-namespace-ttrpc"] == "k8s.io"
    assert echo["md:traceparent"].startswith(traceparent)
    assert out["errors"] == {"Fail": (grpc.StatusCode.NOT_FOUND, "no such thing: x"),
                             "Nope": (grpc.StatusCode.UNIMPLEMENTED, "method Nope"),
                             "NoService": (grpc.StatusCode.UNIMPLEMENTED, "service no.Such")}
    served = [next(lines), next(lines)]
    assert served[0]["served"] == "Echo" and served[0]["metadata"]["x-cristack"] == ["from-python"]
    forward_span = exporter.get_finished_spans()[-1]
    assert forward_span.name == "containerd.services.events.ttrpc.v1.Events/Forward"
    (sent_traceparent,) = served[1].pop("metadata")["traceparent"]
    assert sent_traceparent.startswith(f"00-{forward_span.context.trace_id:032x}-{forward_span.context.span_id:016x}-")
    assert served[1] == {"served": "Forward", "namespace": "k8s.io", "topic": "/tasks/start",
                         "type_url": "containerd.events.TaskStart", "timestamp": "2027-01-15T08:00:00Z"}


def test_go_server_refuses_an_oversized_message_as_we_do(go_server: tuple[Path, Iterator[dict[str, Any]]]) -> None:
    sock, _ = go_server

    async def scenario() -> request_pb2.Response:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        length = MESSAGE_LENGTH_MAX + 1
        writer.write(HEADER.pack(length, 1, MessageType.REQUEST, 0) + b"\0" * length)
        await writer.drain()
        size, sid, mtype, _flags = HEADER.unpack(await asyncio.wait_for(reader.readexactly(10), 30))
        assert (sid, mtype) == (1, MessageType.RESPONSE)
        resp = request_pb2.Response()
        resp.ParseFromString(await reader.readexactly(size))
        writer.close()
        return resp

    resp = asyncio.run(scenario())
    ours = oversized(MESSAGE_LENGTH_MAX + 1)
    assert (resp.status.code, resp.status.message) == (ours.code_value, ours.message)


def test_go_client_calls_python_server(tmp_path: Path) -> None:
    peer = require_tool("ttrpc-peer")
    seen: list[CallContext] = []

    async def echo(ctx: CallContext, req: wrappers_pb2.StringValue) -> struct_pb2.Struct:
        seen.append(ctx)
        out = struct_pb2.Struct()
        out.update({"value": req.value, "deadline": ctx.deadline is not None,
                    **{f"md:{k}": v for k, v in ctx.metadata.items()}})
        return out

    async def fail(ctx: CallContext, req: wrappers_pb2.StringValue) -> empty_pb2.Empty:
        raise TtrpcError(grpc.StatusCode.NOT_FOUND, f"no such thing: {req.value}")

    async def scenario() -> list[dict[str, Any]]:
        server = Server()
        server.register(ECHO, {"Echo": Method(wrappers_pb2.StringValue, echo),
                               "Fail": Method(wrappers_pb2.StringValue, fail)})
        await server.listen(tmp_path / "py.sock")
        try:
            proc = await asyncio.create_subprocess_exec(peer, "call", str(tmp_path / "py.sock"),
                                                        stdout=subprocess.PIPE)
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0
            return [json.loads(line) for line in out.decode().splitlines()]
        finally:
            await server.close()

    results = {r["call"]: r for r in asyncio.run(scenario())}
    assert results["Echo"]["code"] == 0
    assert results["Echo"]["result"] == {"value": "hello from go", "deadline": True, "md:x-cristack": "from-go"}
    assert seen[0].deadline is not None  # the Go client's context deadline arrived as timeout_nano
    assert results["Fail"] == {"call": "Fail", "code": 5, "message": "no such thing: x"}
    assert results["Nope"] == {"call": "Nope", "code": 12, "message": "method Nope"}
    assert results["NoService"] == {"call": "NoService", "code": 12, "message": "service no.Such"}


def test_containerd_task_client_calls_our_shim(tmp_path: Path) -> None:
    """containerd's own generated task v3 client (api v1.12.0) against fake-containerd-shim-runc-v2's service."""
    import os

    from cristack.wire.pb.containerd.runtime.task.v3 import shim_pb2
    from fake_containerd.shim.daemon import ShimDaemon
    from tests.support.shimtest import EventsSink, write_bundle

    peer = require_tool("ttrpc-peer")
    sink = EventsSink()
    sb = "c" * 64

    async def scenario() -> list[dict[str, Any]]:
        events = sink.server()
        await events.listen(tmp_path / "ctd.ttrpc")
        daemon = ShimDaemon("k8s.io", sb, f"unix://{tmp_path / 'ctd.ttrpc'}", tmp_path / "work")
        await daemon.start(path=tmp_path / "shim.sock")
        client = await Client.connect(tmp_path / "shim.sock")
        try:
            bundle = write_bundle(tmp_path / "bundles", sb, ["/pause"], sandbox=sb)
            create = shim_pb2.CreateTaskRequest(id=sb, bundle=str(bundle))
            await client.call("containerd.task.v3.Task", "Create", create, shim_pb2.CreateTaskResponse,
                              metadata={"containerd-namespace-ttrpc": "k8s.io"})
            proc = await asyncio.create_subprocess_exec(peer, "task", str(tmp_path / "shim.sock"), sb,
                                                        stdout=subprocess.PIPE)
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            return [json.loads(line) for line in out.decode().splitlines()]
        finally:
            await client.close()
            await daemon.stop()
            await events.close()

    results = {r["call"]: r for r in asyncio.run(scenario())}
    assert results["Connect"]["code"] == 0 and results["Connect"]["shim_pid"] == os.getpid()
    state = results["State"]
    assert (state["code"], state["id"], state["status"]) == (0, sb, "CREATED")
    assert state["pid"] == results["Connect"]["task_pid"] > 0
