"""CreateContainer racing StopPodSandbox (issue #27): CRI-O holds each sandbox's StopMutex shared for a whole
CreateContainer and exclusive for stopPodSandbox, and refuses to create in a stopped sandbox
(server/container_create.go, server/sandbox_stop_linux.go, CRI-O v1.36.3). So a stop waits for the creations in
flight and then stops their containers, and no container is ever left created or running in a stopped sandbox.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from tests.component.conftest import InProcessCrio, start_crio, start_pod_crio
from tests.conftest import container_config, pod_config

CREATES = 8
TRIALS = 4
# Every creation waits inside createSandboxContainer (its name reserved, its container not yet made), so the
# stop below is sure to come while all of them are in flight.
FAULTS = """
[[fault]]
target = "createSandboxContainer"
latency_ms = 300
"""
HELD = "fault: createSandboxContainer delayed"


@pytest.fixture(params=["oci", "pod"])
def slow_creates(request, tmp_path: Path) -> Iterator[InProcessCrio]:
    faults = tmp_path / "faults.toml"
    faults.write_text(FAULTS)
    handle = (start_crio if request.param == "oci" else start_pod_crio)(tmp_path, "--faults", str(faults))
    yield handle
    handle.close()


def _held(crio: InProcessCrio) -> int:
    return crio.log_text().count(HELD)


async def _race(crio: InProcessCrio, sid: str, trial: int) -> tuple[list, object]:
    """CREATES CreateContainer calls at once; once every one of them is held inside its creation, one
    StopPodSandbox. Each result is the response or the AioRpcError."""
    before = _held(crio)
    async with grpc.aio.insecure_channel(crio.endpoint) as ch:
        stub = pbgrpc.RuntimeServiceStub(ch)
        creates = [asyncio.ensure_future(stub.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=sid, config=container_config(f"c{trial}-{i}", command=["sleep", "60"])), timeout=60))
            for i in range(CREATES)]
        deadline = time.monotonic() + 30
        while _held(crio) < before + CREATES:
            assert time.monotonic() < deadline, f"the creations never reached createSandboxContainer:\n" \
                                                f"{crio.log_text()[-3000:]}"
            await asyncio.sleep(0.01)
        stop = await stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=60)
        results = await asyncio.gather(*creates, return_exceptions=True)
    return results, stop


def test_a_sandbox_stopped_while_containers_are_created_has_none_left_to_start(slow_creates: InProcessCrio) -> None:
    crio = slow_creates
    rt = crio.runtime()
    crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    for trial in range(TRIALS):
        pod = pod_config(name=f"race{trial}", uid=f"uid-race-{trial}")
        sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod)).pod_sandbox_id
        results, _ = asyncio.run(_race(crio, sid, trial))
        created = [r.container_id for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        # The stop came while all were in flight: it waited for them, so every one was created...
        assert not refused, [getattr(e, "details", lambda e=e: repr(e))() for e in refused]
        assert len(created) == CREATES
        # ... and then stopped with its sandbox, before the stop answered.
        status = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
        assert status.state == pb.SANDBOX_NOTREADY
        listed = rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=sid)))
        assert sorted(c.id for c in listed.containers) == sorted(created)
        assert {c.state for c in listed.containers} == {pb.CONTAINER_EXITED}
        # None of them can be started in the stopped sandbox (CRI-O: "not in created state").
        for cid in created:
            with pytest.raises(grpc.RpcError) as err:
                rt.StartContainer(pb.StartContainerRequest(container_id=cid))
            assert err.value.code() == grpc.StatusCode.UNKNOWN and "not in created state" in err.value.details()
        # A creation after the stop is refused, in CRI-O's words.
        with pytest.raises(grpc.RpcError) as err:
            rt.CreateContainer(pb.CreateContainerRequest(
                pod_sandbox_id=sid, config=container_config(f"late{trial}", command=["sleep", "60"])))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert err.value.details() == f"CreateContainer failed as the sandbox was stopped: {sid}"
        # A second stop finds nothing running.
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        listed = rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=sid)))
        assert {c.state for c in listed.containers} == {pb.CONTAINER_EXITED}
