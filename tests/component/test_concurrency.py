"""Concurrent CRI calls, as the kubelet makes them when it starts static pods side by side: names and
pod IPs are reserved before a handler's first await, so concurrent creations never share an IP and a
true duplicate answers ALREADY_EXISTS naming the sandbox or container that holds the name. With runtime
type pod the first calls also race the monitor connection (a cold channel to fake-conmon)."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from tests.component.conftest import InProcessCrio
from tests.conftest import container_config, pod_config


async def _gather(endpoint: str, calls) -> list:  # noqa: ANN001 - a function of the stub, returning a coroutine
    """Runs every call at once on one channel; each result is the response or the AioRpcError."""
    async with grpc.aio.insecure_channel(endpoint) as ch:
        stub = pbgrpc.RuntimeServiceStub(ch)
        return await asyncio.gather(*(call(stub) for call in calls), return_exceptions=True)


def _split(results: list) -> tuple[list, list[grpc.aio.AioRpcError]]:
    ok = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, grpc.aio.AioRpcError) for e in errors), errors
    return ok, errors


def _one_wins(results: list, reserved_by: str) -> object:
    """Of identical concurrent calls exactly one succeeds (returned); each of the others answers ALREADY_EXISTS
    naming the holder of the name: ``reserved_by`` (a regular expression) up to the holder's id."""
    ok, errors = _split(results)
    assert len(ok) == 1, [e.details() for e in errors]
    holder = ok[0].pod_sandbox_id if isinstance(ok[0], pb.RunPodSandboxResponse) else ok[0].container_id
    assert [e.code() for e in errors] == [grpc.StatusCode.ALREADY_EXISTS] * (len(results) - 1)
    for e in errors:
        assert re.fullmatch(rf"{reserved_by} {holder}, which (already exists|is being created)", e.details()), \
            e.details()
    return holder


def test_fifty_concurrent_sandboxes_get_fifty_ids_and_ips(any_crio: InProcessCrio) -> None:
    configs = [pod_config(name=f"p{i}", uid=f"uid-{i}") for i in range(50)]
    results = asyncio.run(_gather(any_crio.endpoint, [
        lambda stub, cfg=cfg: stub.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=60)
        for cfg in configs]))
    ok, errors = _split(results)
    assert not errors, [e.details() for e in errors]
    ids = {r.pod_sandbox_id for r in ok}
    assert len(ids) == 50
    rt = any_crio.runtime()
    ips = [rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.network.ip for sid in ids]
    assert len(set(ips)) == 50 and all(ips), sorted(ips)


def test_ten_identical_run_pod_sandbox_calls_make_one_sandbox(any_crio: InProcessCrio) -> None:
    # The first calls this fake-crio serves: with runtime type pod its monitor channel is still cold.
    cfg = pod_config(name="twin", uid="uid-twin")
    results = asyncio.run(_gather(any_crio.endpoint, [
        lambda stub: stub.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=60)] * 10))
    holder = _one_wins(results, r"error reserving pod name k8s_twin_default_uid-twin_0 for id [0-9a-f]{64}: name "
                                r"is reserved by pod sandbox")
    listed = any_crio.runtime().ListPodSandbox(pb.ListPodSandboxRequest()).items
    assert [s.id for s in listed] == [holder]


def test_a_failed_creation_gives_its_name_back(any_crio: InProcessCrio) -> None:
    rt = any_crio.runtime()
    bad = pod_config(name="retry", uid="uid-retry")
    bad.log_directory = "../outside"
    with pytest.raises(grpc.RpcError) as err:
        rt.RunPodSandbox(pb.RunPodSandboxRequest(config=bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config(name="retry", uid="uid-retry"))).pod_sandbox_id
    cfg = container_config(name="main", image="never-pulled:1")
    with pytest.raises(grpc.RpcError) as err:
        rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    any_crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=container_config(
        name="main", command=["sleep", "60"]))).container_id
    assert rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.metadata.name == "main"


def test_ten_identical_create_container_calls_make_one_container(any_crio: InProcessCrio) -> None:
    rt = any_crio.runtime()
    any_crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    sandbox = pod_config(name="ctrs", uid="uid-ctrs")
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox)).pod_sandbox_id
    # A restarted fake-crio: with runtime type pod, the creations race its new monitor connection.
    any_crio.restart()
    cfg = container_config(name="main", command=["sleep", "60"])
    request = pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg, sandbox_config=sandbox)
    results = asyncio.run(_gather(any_crio.endpoint, [
        lambda stub: stub.CreateContainer(request, timeout=60)] * 10))
    holder = _one_wins(results, r"error reserving ctr name k8s_main_ctrs_default_uid-ctrs_0 for id [0-9a-f]{64}: name "
                                r"is reserved by container")
    rt = any_crio.runtime()
    listed = rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=sid))).containers
    assert [c.id for c in listed] == [holder]
    # Different names in the same sandbox, all at once: all of them are created.
    results = asyncio.run(_gather(any_crio.endpoint, [
        lambda stub, i=i: stub.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=sid, config=container_config(name=f"c{i}", command=["sleep", "60"]),
            sandbox_config=sandbox), timeout=60) for i in range(10)]))
    ok, errors = _split(results)
    assert not errors and len({r.container_id for r in ok}) == 10, [e.details() for e in errors]
