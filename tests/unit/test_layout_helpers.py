"""The library pieces the component layout stands on: a component's log handler records only on its own
provider's spans, the readers-writer lock CRI-O's sandbox stop takes, and the servicer that only adapts a core."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cristack.otel.loghandler import attached
from cristack.otel.sampler import TracingSettings
from cristack.otel.telemetry import Telemetry
from cristack.rwlock import RWLock
from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from cristack.wire.servicer import servicer_for, snake

ON = TracingSettings(True, "in-memory", 1_000_000)


def test_two_components_in_one_process_each_get_their_own_log_events() -> None:
    crio_spans, kubelet_spans = InMemorySpanExporter(), InMemorySpanExporter()
    crio = Telemetry("crio", ON, exporter=crio_spans, quiet=False)
    kubelet = Telemetry("kubelet", ON, exporter=kubelet_spans, quiet=False)
    logger = logging.getLogger("test.two.components")
    logger.setLevel(logging.DEBUG)
    with attached(crio.log_events("crio", logging.INFO)):
        with crio.tracer("t").start_as_current_span("crio step"):
            logger.info("Creating container")
            logger.debug("below crio's level")
        with kubelet.tracer("t").start_as_current_span("syncPod"):
            logger.info("not crio's span")
    crio.shutdown(budget=5)
    kubelet.shutdown(budget=5)
    [step] = crio_spans.get_finished_spans()
    assert [e.attributes["log.message"] for e in step.events] == ["Creating container"]
    [sync] = kubelet_spans.get_finished_spans()
    assert list(sync.events) == []
    # Detached once the component's run ends: nothing left on the root logger.
    assert not any(type(h).__name__ == "SpanEventHandler" for h in logging.getLogger().handlers)


def test_tracing_off_has_no_log_handler() -> None:
    assert Telemetry("crio", TracingSettings(False, "")).log_events("crio") is None


def test_rwlock_readers_share_and_a_writer_waits_for_them_and_holds_back_new_readers() -> None:
    async def go() -> list[str]:
        lock, order = RWLock(), []
        first_in, release = asyncio.Event(), asyncio.Event()

        async def reader(name: str, hold: asyncio.Event | None = None) -> None:
            async with lock.read():
                order.append(f"{name} in")
                if hold is not None:
                    first_in.set()
                    await hold.wait()
                order.append(f"{name} out")

        async def writer() -> None:
            async with lock.write():
                order.append("writer")

        r1 = asyncio.create_task(reader("r1", release))
        await first_in.wait()
        w = asyncio.create_task(writer())
        await asyncio.sleep(0)  # the writer is waiting now
        r2 = asyncio.create_task(reader("r2"))
        await asyncio.sleep(0)
        assert lock.readers == 1 and order == ["r1 in"], order  # r2 waits behind the writer
        release.set()
        await asyncio.gather(r1, w, r2)
        return order

    assert asyncio.run(go()) == ["r1 in", "r1 out", "writer", "r2 in", "r2 out"]


def test_rwlock_a_cancelled_writer_lets_the_readers_behind_it_in() -> None:
    async def go() -> None:
        lock, release = RWLock(), asyncio.Event()

        async def hold() -> None:
            async with lock.read():
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        writer = asyncio.create_task(lock.write().__aenter__())
        await asyncio.sleep(0)
        waiting = asyncio.create_task(hold())
        await asyncio.sleep(0)
        assert lock.readers == 1
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await asyncio.sleep(0)
        assert lock.readers == 2  # the reader behind the writer got in
        release.set()
        await asyncio.gather(holder, waiting)

    asyncio.run(go())


class Core:
    """A core as servicer_for serves it: snake-case methods of messages, errors raised."""

    async def version(self, request: pb.VersionRequest) -> pb.VersionResponse:
        return pb.VersionResponse(runtime_name="core")

    async def container_status(self, request: pb.ContainerStatusRequest) -> pb.ContainerStatusResponse:
        raise NotFound(f"no container {request.container_id!r}")

    async def stream_containers(self, request: pb.StreamContainersRequest):
        for i in range(2):
            yield pb.StreamContainersResponse(containers=[pb.Container(id=f"c{i}")])


def test_snake() -> None:
    assert [snake(n) for n in ("RunPodSandbox", "ImageFsInfo", "ExecSync", "Version")] == \
        ["run_pod_sandbox", "image_fs_info", "exec_sync", "version"]


def test_servicer_for_adapts_answers_errors_and_streams_and_names_what_is_missing(tmp_path) -> None:
    service = servicer_for(pbgrpc.RuntimeServiceServicer, Core, "core-test")

    async def go() -> None:
        server = grpc.aio.server()
        pbgrpc.add_RuntimeServiceServicer_to_server(service(Core()), server)
        server.add_insecure_port(f"unix://{tmp_path}/s.sock")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"unix://{tmp_path}/s.sock") as ch:
                stub = pbgrpc.RuntimeServiceStub(ch)
                assert (await stub.Version(pb.VersionRequest())).runtime_name == "core"
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.ContainerStatus(pb.ContainerStatusRequest(container_id="x"))
                assert (err.value.code(), err.value.details()) == (grpc.StatusCode.NOT_FOUND, "no container 'x'")
                streamed = [c.id async for r in stub.StreamContainers(pb.StreamContainersRequest())
                            for c in r.containers]
                assert streamed == ["c0", "c1"]
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.RunPodSandbox(pb.RunPodSandboxRequest())
                assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
                assert err.value.details() == "core-test does not implement RunPodSandbox"
        finally:
            await server.stop(None)

    asyncio.run(go())
