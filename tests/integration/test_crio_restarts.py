"""fake-crio and fake-conmon restarted, gracefully and with SIGKILL, as real processes: what they keep and what
they report for the containers they could not see end."""

from __future__ import annotations

import time

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.conftest import pod_config, start_pod_crio
from tests.support.criops import run_container, start_pod, wait_exited


def test_restart_keeps_pods_and_containers(crio):
    rt, sid, cid = run_container(crio, ["echo", "persisted"])
    wait_exited(rt, cid)
    crio.restart(kill=True)
    rt = crio.runtime()
    assert [p.id for p in rt.ListPodSandbox(pb.ListPodSandboxRequest()).items] == [sid]
    status = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert status.state == pb.CONTAINER_EXITED and status.exit_code == 0
    assert crio.images().ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="busybox"))).image.id
    # A running oci container cannot outlive its supervisor: after a restart it is reported exited.
    # Killed outright, fake-crio never saw the exit: the container is reported lost.
    _, _, running = run_container(crio, ["sleep", "60"], pod=pod_config("p2", "u2"))
    crio.restart(kill=True)
    status = crio.runtime().ContainerStatus(pb.ContainerStatusRequest(container_id=running)).status
    assert status.state == pb.CONTAINER_EXITED
    assert status.reason == "ContainerLost" and "restart" in status.message
    # Stopped gracefully, fake-crio kills its oci containers and records their exit.
    _, _, running = run_container(crio, ["sleep", "60"], pod=pod_config("p3", "u3"))
    crio.restart()
    status = crio.runtime().ContainerStatus(pb.ContainerStatusRequest(container_id=running)).status
    assert (status.state, status.exit_code) == (pb.CONTAINER_EXITED, 137)


def test_monitor_killed_mid_run_then_restarted(tmp_path):
    crio = start_pod_crio(tmp_path)
    conmon = crio.conmon
    try:
        rt, cid = start_pod(crio, ["sleep", "60"])
        assert rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state == pb.CONTAINER_RUNNING
        conmon.proc.kill()
        # fake-crio notices at its next monitor probe (its health cache lasts MONITOR_HEALTH_TTL_S).
        deadline = time.monotonic() + 15
        while (status := rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status).state \
                != pb.CONTAINER_EXITED and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status.state == pb.CONTAINER_EXITED
        assert status.reason == "ContainerLost" and "monitor" in status.message
        # fake-crio keeps serving, and a new monitor serves new containers.
        assert rt.Version(pb.VersionRequest()).runtime_name == "cri-o"
        conmon.restart()
        rt, cid2 = start_pod(crio, ["echo", "back"], name="again")
        assert wait_exited(rt, cid2).exit_code == 0
        # The old container stays exited: the new monitor never knew it. Asked after fake-crio has probed
        # the new monitor (conmon logs each probe, a Version request, at debug), it is still exited. A
        # running container's status is what makes fake-crio probe its monitor.
        rt, running = start_pod(crio, ["sleep", "60"], name="probe")
        probes = conmon.proc.log_text().count("Got a version request")
        deadline = time.monotonic() + 15
        while conmon.proc.log_text().count("Got a version request") <= probes and time.monotonic() < deadline:
            rt.ContainerStatus(pb.ContainerStatusRequest(container_id=running))
            time.sleep(0.05)
        assert conmon.proc.log_text().count("Got a version request") > probes, "fake-crio never probed the monitor"
        assert rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state == pb.CONTAINER_EXITED
    finally:
        crio.close()


def test_pod_containers_survive_a_crio_restart(tmp_path):
    crio = start_pod_crio(tmp_path)
    try:
        rt, cid = start_pod(crio, ["sleep", "60"])
        crio.restart(kill=True)
        rt = crio.runtime()
        assert rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state == pb.CONTAINER_RUNNING
        rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=2))
        assert rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.exit_code == 143
    finally:
        crio.close()
