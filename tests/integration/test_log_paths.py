"""Log paths from requests: a relative log_directory is refused as CRI-O refuses it (unless --pod-logs-root
says where relative ones go), a log_path naming a directory is INVALID_ARGUMENT (not INTERNAL "Is a
directory"), a path too long for Linux is refused up front and never echoed whole; and the kubelet deletes
the logs of the containers it removes and the log directories of the pods it deleted."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.conftest import container_config, free_port, pod_config, start_crio
from tests.support.kubelet import containers, manifest, wait_for


def refusal(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(request)
    return err.value


def test_a_relative_log_directory_is_refused_unless_a_root_is_set(tmp_path: Path):
    crio = start_crio(tmp_path / "free", confine_logs=False)
    unique = f"ns_rel-{uuid.uuid4().hex[:8]}_uid"
    try:
        rt = crio.runtime()
        cfg = pod_config("rel", "rel-uid")
        cfg.log_directory = unique
        err = refusal(rt.RunPodSandbox, pb.RunPodSandboxRequest(config=cfg))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"is a relative path: {unique}" in err.details()
        assert not (Path("/var/log/pods") / unique).exists(), "nothing is created on the host"
    finally:
        crio.close()
    confined = start_crio(tmp_path / "rooted")  # --pod-logs-root: relative is below it, as before
    try:
        cfg = pod_config("rel", "rel-uid")
        cfg.log_directory = unique
        confined.runtime().RunPodSandbox(pb.RunPodSandboxRequest(config=cfg))
        assert (confined.logs_root / unique).is_dir()
    finally:
        confined.close()


@pytest.mark.parametrize("log_path", [".", "main/..", "sub", "./"])
def test_a_log_path_naming_a_directory_is_invalid_argument(crio, log_path: str):
    rt = crio.runtime()
    crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config())).pod_sandbox_id
    first = container_config("first", command=["true"])
    first.log_path = "sub/0.log"  # makes the directory "sub"
    rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=first))
    cfg = container_config(command=["true"])
    cfg.log_path = log_path
    err = refusal(rt.CreateContainer, pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "names a directory" in err.details(), err.details()
    cfg.log_path = "main/0.log"  # the same name is free again: the refusal gave it back
    rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg))


def test_paths_too_long_for_linux_are_refused_and_cut(crio):
    rt = crio.runtime()
    for long in ("a" * 300, "/".join(["abcdefgh"] * 600)):
        cfg = pod_config("long", "long-uid")
        cfg.log_directory = long
        err = refusal(rt.RunPodSandbox, pb.RunPodSandboxRequest(config=cfg))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "too long" in err.details()
        assert len(err.details()) < 1000
    crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config())).pod_sandbox_id
    cfg = container_config(command=["true"])
    cfg.log_path = "x" * (1024 * 1024)
    err = refusal(rt.CreateContainer, pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and len(err.details()) < 1000


def test_the_kubelet_deletes_the_logs_of_removed_containers_and_deleted_pods(make_stack):
    stack = make_stack()
    stack.start_runtime()
    stack.start_kubelet()
    path = manifest(stack, "crashy", command='["sh", "-c", "echo run; exit 1"]')
    logs = wait_for("the pod's log directory", lambda: next(stack.pod_logs.glob("default_crashy_*"), None))
    # The container GC keeps the newest dead container of (pod, name) and removes the others, logs first.
    wait_for("a third attempt", lambda: (logs / "main" / "2.log").exists(), timeout=30)
    wait_for("the first attempt's container removed",
             lambda: all(c.metadata.attempt != 0 for c in containers(stack, "crashy")), timeout=30)
    assert not (logs / "main" / "0.log").exists(), "its log went with it"
    path.unlink()
    wait_for("the deleted pod's log directory removed", lambda: not logs.exists(), timeout=30)
    assert not containers(stack, "crashy")


def test_container_logs_are_streamed_not_held_whole(make_stack):
    """/containerLogs serves the CRI log as the kubelet's ReadLogs does (file order, one record at a time,
    chunked), so a container's 64 MiB log no longer costs the kubelet four times that and a blocked loop."""
    import http.client

    port = free_port()
    stack = make_stack()
    stack.opts.kubelet_config["port"] = port
    stack.start_runtime()
    stack.start_kubelet()
    manifest(stack, "talker", policy="Never", command='["seq", "1", "20000"]')
    wait_for("the pod's log", lambda: any(
        p.stat().st_size > 0 for p in stack.pod_logs.glob("default_talker_*/main/0.log")), timeout=30)
    wait_for("the container exited", lambda: containers(stack, "talker")
             and containers(stack, "talker")[0].state == pb.CONTAINER_EXITED, timeout=30)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/containerLogs/default/talker/main")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    body = resp.read().decode()
    assert body == "".join(f"{i}\n" for i in range(1, 20001))
