"""Trust boundaries and caps: oversized and concurrent requests, resource caps, host
binaries, path escapes, TCP exposure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from pathlib import Path

import grpc
import pytest

from cristack.containers.crilog import read_log
from cristack.containers.supervise import READ_CHUNK
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from tests.conftest import container_config, free_port, pod_config, start_crio
from tests.support.criops import wait_exited
from tests.support.pace import allowance, timed


def ready_pod(crio, name="lim"):
    rt = crio.runtime()
    crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    return rt, rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config(name, f"{name}-uid"))).pod_sandbox_id


def test_oversized_message_is_resource_exhausted(crio):
    rt = crio.runtime()
    big = pb.RunPodSandboxRequest(config=pod_config())
    big.config.annotations["blob"] = "x" * (17 * 1024 * 1024)
    with pytest.raises(grpc.RpcError) as err:
        rt.RunPodSandbox(big, timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rt.Version(pb.VersionRequest()).runtime_name == "cri-o"


def test_too_many_concurrent_calls_are_refused(tmp_path):
    crio = start_crio(tmp_path, "--max-concurrent-rpcs", "4")
    try:
        rt, sid = ready_pod(crio)
        cid = crio.runtime().CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=sid, config=container_config(command=["sleep", "60"]))).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid))

        async def flood() -> list[grpc.StatusCode]:
            async with grpc.aio.insecure_channel(crio.endpoint) as ch:
                stub = pbgrpc.RuntimeServiceStub(ch)

                async def one() -> grpc.StatusCode:
                    try:
                        await stub.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sleep", "1"], timeout=30))
                        return grpc.StatusCode.OK
                    except grpc.aio.AioRpcError as e:
                        return e.code()

                return await asyncio.gather(*(one() for _ in range(20)))

        codes = asyncio.run(flood())
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes and grpc.StatusCode.OK in codes
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert rt.Version(pb.VersionRequest()).runtime_name == "cri-o"
    finally:
        crio.close()


def test_container_cap(tmp_path):
    crio = start_crio(tmp_path, "--max-containers", "2")
    try:
        rt, sid = ready_pod(crio)
        for i in range(2):
            rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=container_config(f"c{i}")))
        with pytest.raises(grpc.RpcError) as err:
            rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=container_config("c3")))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_containers" in err.value.details()
    finally:
        crio.close()


def test_output_cap_kills_the_container_not_the_runtime(tmp_path):
    conf = tmp_path / "crio.conf"
    conf.write_text("[cristack]\nmax_log_bytes = 20000\n")
    crio = start_crio(tmp_path, config=conf)
    try:
        rt, sid = ready_pod(crio)
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=container_config(
            command=["seq", "1", "100000000"]))).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        status = wait_exited(rt, cid, timeout=20)
        assert status.exit_code == 137
        log = read_log(status.log_path)
        assert any("output exceeded 20000 bytes" in text for _, text in log)
        # The cap counts the log's bytes; the read that crosses it is still written, the next one kills. So the
        # container's own output in the log is at most the cap plus one read (in the file each of its lines
        # also carries a timestamp and tags, which is why the file itself may be several reads larger).
        output = sum(len(text.encode("utf-8", "surrogateescape")) + 1 for stream, text in log if stream == "stdout")
        assert os.path.getsize(status.log_path) > 20_000, "killed before its log reached the cap"
        assert output <= 20_000 + READ_CHUNK, output
        assert rt.Version(pb.VersionRequest()).runtime_name == "cri-o"
    finally:
        crio.close()


def test_exec_caps(tmp_path):
    conf = tmp_path / "crio.conf"
    conf.write_text("[cristack]\nmax_exec_seconds = 1\n")
    crio = start_crio(tmp_path, config=conf)
    try:
        rt, sid = ready_pod(crio)
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=container_config(
            command=["sleep", "60"]))).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        with timed() as quick:  # an exec's own cost on this machine now: the pace (tests/support/pace.py)
            rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["true"]))
        with timed() as took, pytest.raises(grpc.RpcError) as err:  # timeout 0 means "no timeout", but the cap holds
            rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sleep", "30"], timeout=0))
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.9 <= took.seconds <= allowance(1 + 1.0, quick.seconds), "at the 1 s cap, not the command's 30 s"
        with pytest.raises(grpc.RpcError) as err:
            rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["seq", "1", "10000000"], timeout=1))
        assert err.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["echo", "ok"])).stdout == b"ok\n"
    finally:
        crio.close()


@pytest.mark.parametrize(("command", "not_found"), [
    (["/usr/bin/touch", "{marker}"], False),  # touch is an applet: it runs, but inside the container's view
    (["sh", "-c", "/usr/bin/touch {marker}"], False),
    (["env", "PATH=/usr/bin:/bin", "touch", "{marker}"], False),
    (["python3", "-c", "open('{marker}', 'w')"], True),  # not an applet: never looked up on the host
    (["bash", "-c", "touch {marker}"], True),
])
def test_no_request_runs_a_host_binary(any_crio, tmp_path, command, not_found):
    """Whatever the command names, only built-in applets run: a program that is not one is not found (127); one
    that is runs as the applet, inside the container's own view, and cannot reach the host path."""
    marker = tmp_path / "pwned"
    rt, sid = ready_pod(any_crio)
    cfg = container_config(command=[c.format(marker=marker) for c in command])
    cfg.working_dir = "/usr/bin"
    cfg.envs.add(key="PATH", value="/usr/local/bin:/usr/bin:/bin")
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg)).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    status = wait_exited(rt, cid)
    assert (status.exit_code == 127) == not_found, status
    assert not marker.exists()
    out = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["/bin/sh", "-c", f"touch {marker}"])) \
        if status.state == pb.CONTAINER_RUNNING else None
    assert out is None or not marker.exists()


def test_symlink_out_of_the_log_root_is_refused(crio, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    crio.logs_root.mkdir(parents=True, exist_ok=True)
    (crio.logs_root / "sneaky").symlink_to(outside)
    rt = crio.runtime()
    cfg = pod_config("sym", "sym-uid")
    cfg.log_directory = "sneaky/pod"
    with pytest.raises(grpc.RpcError) as err:
        rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("ok", "ok-uid"))).pod_sandbox_id
    cfg = container_config()
    cfg.log_path = "../sneaky/escape.log"
    with pytest.raises(grpc.RpcError) as err:
        rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(outside.iterdir()) == []


def test_tcp_listener_off_loopback_warns(tmp_path):
    from cristack.harness.procs import start
    from cristack.wire.endpoints import parse_endpoint

    port = free_port()
    proc = start("fake-crio", ["--listen", f"0.0.0.0:{port}", "--root", str(tmp_path / "r"), "--runroot",
                               str(tmp_path / "rr"), "--pod-logs-root", str(tmp_path / "p")], tmp_path / "crio.log",
                 endpoint=parse_endpoint(f"127.0.0.1:{port}"))
    try:
        assert "not loopback: anyone who can reach it can drive it" in proc.log_text()
    finally:
        proc.stop()
    proc = start("fake-crio", ["--listen", f"127.0.0.1:{port}", "--root", str(tmp_path / "r"), "--runroot",
                               str(tmp_path / "rr"), "--pod-logs-root", str(tmp_path / "p")],
                 tmp_path / "crio2.log", endpoint=parse_endpoint(f"127.0.0.1:{port}"))
    try:
        assert "not loopback" not in proc.log_text()
    finally:
        proc.stop()


def test_default_socket_dir_is_private(tmp_path):
    from cristack.harness.procs import start
    from cristack.wire.endpoints import parse_endpoint

    env = {"XDG_RUNTIME_DIR": str(tmp_path / "xdg")}
    sock = tmp_path / "xdg" / f"cristack-{os.getuid()}" / "crio.sock"
    # The socket's mode from the first moment it exists, not only once the server is up: a client (this
    # test, the kubelet) may find it before the server has finished starting.
    first_seen: list[int] = []
    stop_watch = threading.Event()

    def watch() -> None:
        while not stop_watch.is_set() and not first_seen:
            with contextlib.suppress(FileNotFoundError):
                first_seen.append(sock.stat().st_mode & 0o777)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    proc = start("fake-crio", ["--root", str(tmp_path / "r"), "--runroot", str(tmp_path / "rr")],
                 tmp_path / "crio.log", endpoint=parse_endpoint(str(sock)), env=env)
    # On a busy machine the watcher may be scheduled only after the server is up: let it see the file, rather
    # than stopping it when start() returns and failing on an empty list (it failed 3 runs in 5 under load).
    watcher.join(10)
    stop_watch.set()
    try:
        assert oct(sock.parent.stat().st_mode & 0o777) == "0o700"
        assert [oct(m) for m in first_seen] == ["0o660"], "the socket was born with another mode"
        assert oct(sock.stat().st_mode & 0o777) == "0o660"
    finally:
        proc.stop()
    assert Path(sock).exists() is False


def test_components_raise_the_open_files_soft_limit_to_the_hard_limit(tmp_path):
    """Each live container costs its monitor a few descriptors: a soft limit of 1024 would run out near 330."""
    import resource
    import subprocess

    from cristack.harness.procs import component_argv
    from cristack.wire.endpoints import parse_endpoint, serving

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    sock = tmp_path / "conmon.sock"
    proc = subprocess.Popen(component_argv("fake-conmon", "--listen", f"unix://{sock}", "--runtime-dir",
                                           str(tmp_path / "c")),
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not serving(parse_endpoint(str(sock))):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        soft = row.split()[3]
        assert soft == (str(hard) if hard != resource.RLIM_INFINITY else soft) and int(soft) > 256, row
    finally:
        proc.terminate()
        proc.wait(5)



def start_with_fd_limit(name: str, args: list[str], base: Path, sock: Path, limit: int):
    """Component ``name`` with RLIMIT_NOFILE soft = hard = ``limit`` (so it cannot raise it), serving on ``sock``."""
    import subprocess
    import sys

    from cristack.harness.procs import Proc, component_argv
    from cristack.wire.endpoints import parse_endpoint, serving

    argv = [sys.executable, "-c", "import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); os.execv(sys.argv[1], sys.argv[1:])",
            *component_argv(name, *args)]
    log = base / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not serving(parse_endpoint(str(sock))):
        assert popen.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return Proc(name, popen, log, parse_endpoint(str(sock)), argv)


@pytest.mark.parametrize("runtime_type", ["oci", "pod"])
def test_out_of_file_descriptors_is_resource_exhausted_and_only_fails_that_call(tmp_path, runtime_type):
    """With the descriptors of a low hard limit used up by live containers (in fake-crio's own monitor for runtime
    type oci, in fake-conmon for pod), creating or starting one more answers RESOURCE_EXHAUSTED naming the cause
    (not INTERNAL); the runtime keeps serving, the running containers keep running, and once some are removed
    the next one starts."""
    from tests.conftest import POD_RUNTIME_CONF, CrioHandle

    limit = 160  # far fewer descriptors than this many live containers need
    sock = tmp_path / "run" / "crio.sock"
    args = ["--listen", f"unix://{sock}", "--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "runroot"),
            "--pod-logs-root", str(tmp_path / "pods"), "--pull-latency-ms", "1"]
    conmon = None
    if runtime_type == "pod":
        conmon_sock = tmp_path / "run" / "conmon.sock"
        conmon = start_with_fd_limit("fake-conmon", ["--listen", f"unix://{conmon_sock}", "--runtime-dir",
                                                     str(tmp_path / "conmon")], tmp_path, conmon_sock, limit)
        conf = tmp_path / "crio.conf"
        conf.write_text(POD_RUNTIME_CONF.format(socket=conmon_sock))
        args += ["--config", str(conf)]
        crio_proc = start_with_fd_limit("fake-crio", args, tmp_path, sock, 4096)
    else:
        crio_proc = start_with_fd_limit("fake-crio", args, tmp_path, sock, limit)
    crio = CrioHandle(tmp_path, crio_proc, args, sock, tmp_path / "pods", tmp_path / "calls.txt")
    monitor = conmon or crio_proc
    try:
        rt, sid = ready_pod(crio)
        started: list[str] = []
        failure = None
        for i in range(limit):
            try:
                cid = rt.CreateContainer(pb.CreateContainerRequest(
                    pod_sandbox_id=sid, config=container_config(name=f"c{i}", command=["sleep", "600"])),
                    timeout=30).container_id
                rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
                started.append(cid)
            except grpc.RpcError as err:
                failure = err
                break
        assert failure is not None, f"{len(started)} containers started under a limit of {limit} descriptors"
        assert failure.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (failure.code(), failure.details())
        assert "Too many open files" in failure.details()
        assert started and rt.Version(pb.VersionRequest()).runtime_name == "cri-o"
        for cid in started[:5]:  # give some back
            rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
            rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=30)
        cid = rt.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=sid, config=container_config(name="again", command=["sleep", "600"])),
            timeout=30).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=30)
        assert rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state == pb.CONTAINER_RUNNING
        for cid in started[5:]:  # the ones still running kept running
            state = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state
            assert state == pb.CONTAINER_RUNNING, cid
        assert "Traceback" not in monitor.log_text()
    finally:
        crio.close()
        if conmon is not None:
            conmon.stop()
