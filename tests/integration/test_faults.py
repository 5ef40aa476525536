"""Faults: nothing lost, nothing hangs. A monitor or runtime killed mid-work, a kubelet
restarted, a collector that is down, flapping or never answers, a state dir full or
read-only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import grpc
import pytest

from cristack.harness.procs import start
from cristack.wire.endpoints import parse_endpoint
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.conftest import container_config, pod_config, start_crio
from tests.support.kubelet import containers, manifest, pod_status, sandboxes, wait_for, wait_for_relists
from tests.support.pace import allowance, timed


def restart_crio(stack, *extra: str) -> None:
    stack.crio = start("fake-crio", [*stack.crio_args(), *extra], stack.base / "crio.log",
                       endpoint=parse_endpoint(str(stack.crio_socket)))


def test_monitor_killed_kubelet_restarts_the_container_on_a_new_monitor(make_stack):
    stack = make_stack()
    manifest(stack, "keep", policy="Always")
    stack.start_runtime()
    stack.start_kubelet()
    first = wait_for("running", lambda: [c for c in containers(stack, "keep") if c.state == pb.CONTAINER_RUNNING])
    stack.conmon.kill()
    wait_for("reported exited", lambda: [c for c in containers(stack, "keep")
                                         if c.id == first[0].id and c.state == pb.CONTAINER_EXITED])
    stack.conmon = start("fake-conmon", stack.conmon_args(), stack.base / "conmon.log",
                         endpoint=parse_endpoint(str(stack.conmon_socket)))
    again = wait_for("restarted on the new monitor", lambda: [
        c for c in containers(stack, "keep") if c.state == pb.CONTAINER_RUNNING and c.id != first[0].id], timeout=30)
    assert again[0].metadata.attempt >= 1
    assert len(sandboxes(stack, "keep")) == 1


def test_crio_killed_mid_run_pod_sandbox_converges(make_stack, tmp_path):
    faults = tmp_path / "faults.toml"
    faults.write_text('seed = 1\n[[fault]]\ntarget = "runPodSandbox"\nlatency_ms = 3000\n')
    stack = make_stack(crio_args=["--faults", str(faults)])
    manifest(stack, "slowpod", policy="Always")
    stack.start_runtime()
    stack.start_kubelet()
    # fake-crio logs (at debug) when the fault's delay begins: from then on it is inside runPodSandbox.
    wait_for("RunPodSandbox in flight", lambda: "fault: runPodSandbox delayed" in stack.crio.log_text())
    stack.crio.kill()  # SIGKILL in the middle of RunPodSandbox
    state = stack.base / "crio-root"
    for path in state.rglob("*.json"):
        json.loads(path.read_text())  # no half-written file is ever read back
    restart_crio(stack)  # without the fault
    running = wait_for("pod running", lambda: [c for c in containers(stack, "slowpod")
                                                if c.state == pb.CONTAINER_RUNNING], timeout=40)
    wait_for_relists(stack, 5)  # chances for the kubelet to (wrongly) start the pod again
    ready = [s for s in sandboxes(stack, "slowpod") if s.state == pb.SANDBOX_READY]
    assert len(ready) == 1, "no duplicate sandbox"
    assert running[0].pod_sandbox_id == ready[0].id
    assert not [p for p in state.rglob(".*tmp*")]


class BlackHole:
    """A TCP port that accepts connections and never answers (a hung collector)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.conns: list[socket.socket] = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                return

    def close(self) -> None:
        self.stop = True
        self.sock.close()
        for c in self.conns:
            c.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_collector_that_never_answers_blocks_nothing(make_stack):
    hole = BlackHole()
    try:
        stack = make_stack(otlp_endpoint=hole.endpoint)
        for i in range(15):
            manifest(stack, f"p{i}", policy="Never", command='["echo", "hi"]')
        with timed() as up:
            stack.start_runtime()
        with timed() as ran:
            assert stack.start_kubelet(runonce=True).popen.wait(60) == 0
        assert ran.seconds < allowance(30, up.seconds), ran.seconds
        stack.start_kubelet()
        wait_for_relists(stack, 5)  # working against the hung collector for a while: its spans pile up
        sizes = {name: rss_mb(getattr(stack, name).pid) for name in ("crio", "conmon", "kubelet")}
        assert all(v < 150 for v in sizes.values()), sizes
        took = stack.stop()
        assert max(took.values()) <= allowance(2.0, up.seconds), took
    finally:
        hole.close()


def test_collector_flapping(make_stack):
    from cristack.harness.sink.receiver import Sink
    from tests.conftest import free_port

    grpc_port, http_port = free_port(), free_port()
    stack = make_stack(otlp_endpoint=f"127.0.0.1:{grpc_port}")
    with timed() as up:
        stack.start_runtime()
    stack.start_kubelet()
    for i in range(6):
        if i % 2 == 1:  # the collector is down: the pod starts all the same, its spans are lost
            manifest(stack, f"flap{i}", policy="Never", command='["echo", "hi"]')
            wait_for(f"flap{i} ran", lambda i=i: pod_status(stack, f"flap{i}").get("phase") == "Succeeded")
            continue
        sink = Sink()
        sink.start(f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}")
        # The exporters are back once the kubelet's and crio's garbage-collection spans (every 0.3 s) arrive.
        back = sink.store.wait(lambda st: {"kubelet", "crio"} <= {s.service for s in st.spans()}, 15)
        assert back, "the exporters reconnected to the restarted collector"
        manifest(stack, f"flap{i}", policy="Never", command='["echo", "hi"]')
        got = sink.store.wait(lambda st, i=i: any(s.attributes.get("k8s.pod.name") == f"flap{i}"
                                                  for s in st.spans()), 15)
        sink.stop()
        assert got, f"spans of flap{i}, sent while the collector was up, arrived"
    for i in range(6):
        wait_for(f"flap{i} ran", lambda i=i: pod_status(stack, f"flap{i}").get("phase") == "Succeeded")
    took = stack.stop()
    assert max(took.values()) <= allowance(2.0, up.seconds), took


def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tiny tmpfs for the state dir")


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)


def test_state_dir_full_or_read_only(tmp_path):
    _root()
    root = tmp_path / "root"
    _mount_tmpfs(root, "256k")
    crio = None
    try:
        crio = start_crio(tmp_path, "--root", str(root))
        rt = crio.runtime()
        crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
        sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("before", "u0"))).pod_sandbox_id
        filler = root / "filler"
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        with pytest.raises(grpc.RpcError) as err:
            for i in range(20):  # the first write that does not fit fails
                rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config(f"full{i}", f"u{i + 1}")))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "No space left on device" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=container_config(
                command=["sleep", "30"])))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert rt.ListContainers(pb.ListContainersRequest()).containers == [], "not recorded, not created"
        filler.unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        with pytest.raises(grpc.RpcError) as err:
            rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("ro", "u-ro")))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "Read-only file system" in err.value.details()
        assert rt.Version(pb.VersionRequest()).runtime_name == "cri-o"
        subprocess.run(["mount", "-o", "remount,rw", str(root)], check=True)
        crio.restart(kill=True)
        names = sorted(p.metadata.name for p in crio.runtime().ListPodSandbox(pb.ListPodSandboxRequest()).items)
        assert "before" in names and "ro" not in names
        for path in root.rglob("*.json"):
            json.loads(path.read_text())
    finally:
        if crio is not None:
            crio.close()
        subprocess.run(["umount", "-l", str(root)], check=False)
