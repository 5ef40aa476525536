"""CRI calls the tests make again and again: a container run to its start, its exit awaited, an error's code."""

from __future__ import annotations

import time

import grpc
import pytest

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.conftest import container_config, pod_config


def wait_exited(rt, cid: str, timeout: float = 10.0) -> pb.ContainerStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
        if status.state == pb.CONTAINER_EXITED:
            return status
        time.sleep(0.05)
    raise AssertionError(f"container {cid} did not exit within {timeout}s")


def code_of(call, request) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call(request)
    assert err.value.details(), "every error carries a message"
    return err.value.code()


def run_container(crio, command, *, pod=None, name="main"):
    rt, img = crio.runtime(), crio.images()
    img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    pod = pod or pod_config()
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod)).pod_sandbox_id
    cid = rt.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=sid, config=container_config(name, command=command), sandbox_config=pod)).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    return rt, sid, cid


def start_pod(crio, command, name="c", env=None, uid="u1"):
    rt = crio.runtime()
    crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    pod = pod_config(name=f"pod-{name}", uid=f"{uid}-{name}")
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod)).pod_sandbox_id
    cfg = container_config(name, command=command)
    for k, v in (env or {}).items():
        cfg.envs.add(key=k, value=v)
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg, sandbox_config=pod)).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    return rt, cid
