"""Slow is not dead: a container monitor that stops answering for a while (paused, overloaded) loses
no container. fake-crio answers from the last known state, in time, and declares a container lost only
when the monitor's socket refuses connections or a different monitor instance answers."""

from __future__ import annotations

import os
import signal
import time

import grpc

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from tests.support.kubelet import containers, manifest, pod_status, sandboxes, wait_for
from tests.support.pace import allowance, timed

PAUSE_S = 10.0


def slowest_status(rt, cid: str, seconds: float, one_container=lambda: True) -> list[float]:  # noqa: ANN001
    """Asks ContainerStatus every 0.2 s for ``seconds``; each answer must be the running container, and the
    kubelet must have made no second one. Returns how long each answer took."""
    took = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with timed() as t:
            status = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=30).status
        took.append(t.seconds)
        assert status.state == pb.CONTAINER_RUNNING and status.reason != "ContainerLost", status
        assert one_container(), "no second container"
        time.sleep(0.2)
    return took


def test_a_paused_monitor_loses_no_container_under_the_kubelet(make_stack) -> None:
    stack = make_stack()
    manifest(stack, "patient", command='["sleep", "600"]')
    stack.start()
    running = wait_for("running", lambda: [c for c in containers(stack, "patient") if c.state == pb.CONTAINER_RUNNING])
    cid = running[0].id
    rt = pbgrpc.RuntimeServiceStub(grpc.insecure_channel(stack.crio_endpoint))
    pid = int(rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=True)).info["info"]
              .split('"pid": ')[1].split(",")[0])
    assert stack.conmon is not None
    # The machine's pace for the budget (tests/support/pace.py): the slowest of the same calls, monitor awake.
    awake = max(slowest_status(rt, cid, 1.0))
    os.kill(stack.conmon.pid, signal.SIGSTOP)
    try:
        # The kubelet relists every 0.1 s throughout: every answer must be prompt and unchanged. Within 1 s (it
        # waits PROBE_WAIT_S for the monitor, then answers what it knew), plus the machine's pace.
        slowest = max(slowest_status(rt, cid, PAUSE_S, lambda: [c.id for c in containers(stack, "patient")] == [cid]))
        assert slowest <= allowance(1.0, awake), f"ContainerStatus took {slowest:.2f} s while the monitor was paused"
    finally:
        os.kill(stack.conmon.pid, signal.SIGCONT)
    os.kill(pid, 0)  # the container's process kept running
    # After SIGCONT the monitor answers again: an exec goes through it, and the pod is as it was.
    out = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["echo", "back"], timeout=10), timeout=15)
    assert out.exit_code == 0 and out.stdout == b"back\n"
    assert len(sandboxes(stack, "patient")) == 1
    assert [(c.id, c.state) for c in containers(stack, "patient")] == [(cid, pb.CONTAINER_RUNNING)]
    status = wait_for("pod running", lambda: pod_status(stack, "patient").get("phase") == "Running"
                      and pod_status(stack, "patient"))
    assert [s["restartCount"] for s in status["containerStatuses"]] == [0], status
    assert "ContainerLost" not in (stack.base / "crio.log").read_text()
    # And the monitor's state converges: the container stopping now is seen as an ordinary exit.
    os.kill(pid, signal.SIGKILL)
    wait_for("exited", lambda: rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state
             == pb.CONTAINER_EXITED)
    final = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert final.reason != "ContainerLost" and final.exit_code == 137, final
