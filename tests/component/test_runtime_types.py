"""Containers really run, under runtime type oci (fake-crio supervises) and pod (fake-conmon does)."""

from __future__ import annotations

import time

import grpc
import pytest

from cristack.containers.crilog import read_log
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.conftest import container_config, pod_config
from tests.support.criops import start_pod, wait_exited
from tests.support.pace import allowance, timed

STOP_TIMEOUT_S = 10


def wait_log(path: str, text: str, timeout: float = 10.0) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    lines: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        try:
            lines = read_log(path)
        except FileNotFoundError:
            lines = []
        if any(text in t for _, t in lines):
            return lines
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}: {lines}")


@pytest.mark.parametrize("command, code, reason, line", [
    (["echo", "hi"], 0, "Completed", ("stdout", "hi")),
    (["sh", "-c", "echo failing; exit 1"], 1, "Error", ("stdout", "failing")),
    (["no-such-command", "x"], 127, "Error",
     ("stderr", 'exec: "no-such-command": executable file not found in $PATH')),
])
def test_exit_codes_and_log_lines(any_crio, command, code, reason, line):
    rt, cid = start_pod(any_crio, command)
    status = wait_exited(rt, cid)
    assert (status.exit_code, status.reason) == (code, reason)
    assert line in read_log(status.log_path)


def test_sigterm_stops_nginx_gracefully(any_crio):
    rt, cid = start_pod(any_crio, ["nginx", "-g", "daemon off;"], env={"NGINX_INTERVAL": "0.05"})
    path = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.log_path
    wait_log(path, "GET / HTTP/1.1")
    with timed() as took:
        rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=STOP_TIMEOUT_S))
    # It exited on SIGTERM (status 0; a SIGKILL at the timeout would say 137), before the timeout came.
    assert took.seconds < STOP_TIMEOUT_S, "nginx exits on SIGTERM without waiting for the timeout"
    status = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert (status.state, status.exit_code) == (pb.CONTAINER_EXITED, 0)
    assert any("SIGTERM" in t for _, t in read_log(path))


def test_sigkill_after_timeout_for_a_container_that_ignores_sigterm(any_crio):
    with timed() as start:  # the machine's pace for the budget (tests/support/pace.py)
        rt, cid = start_pod(any_crio, ["stubborn"])
    path = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.log_path
    wait_log(path, "ignoring SIGTERM")
    with timed() as took:
        rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1))
    status = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert status.exit_code == 137
    # Never before the timeout; after it, as soon as the SIGKILL is done (1 s of slack, plus the machine's pace).
    assert 0.9 <= took.seconds <= allowance(1 + 1.0, start.seconds), took.seconds


def test_exec_sync_with_and_without_timeout(any_crio):
    rt, cid = start_pod(any_crio, ["sleep", "60"], env={"WHO": "container"})
    with timed() as answered:  # an exec's own cost on this machine now: the pace (tests/support/pace.py)
        out = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo $WHO; false"]))
    assert (out.stdout, out.exit_code) == (b"container\n", 1)
    with timed() as took, pytest.raises(grpc.RpcError) as err:
        rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sleep", "30"], timeout=1))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # At its 1 s deadline, not at the end of the 30 s command.
    assert 0.9 <= took.seconds <= allowance(1 + 1.0, answered.seconds), took.seconds
    # The container itself is unaffected.
    assert rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state == pb.CONTAINER_RUNNING


def test_reopen_log_after_rotation(any_crio):
    rt, cid = start_pod(any_crio, ["nginx"], env={"NGINX_INTERVAL": "0.05"})
    path = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.log_path
    wait_log(path, "GET /")
    import os

    os.rename(path, path + ".1")
    rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid))
    wait_log(path, "GET /")


def test_stop_right_after_start_is_never_lost(any_crio):
    """A container stopped a moment after it started (before its process made its own session)
    still gets the signal: the stop returns promptly every time."""
    rt = any_crio.runtime()
    any_crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    pod = pod_config(name="quick", uid="quick-uid")
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod)).pod_sandbox_id
    for i in range(25):
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=container_config(
            f"c{i}", command=["sleep", "600"]))).container_id
        with timed() as start:  # the container's start: the machine's pace now (tests/support/pace.py)
            rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        with timed() as stop:
            rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
        # A lost signal would hold the stop until the call's deadline; a delivered one ends it at once.
        assert stop.seconds <= allowance(2.0, start.seconds), (i, stop.seconds)
        assert rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state == pb.CONTAINER_EXITED
