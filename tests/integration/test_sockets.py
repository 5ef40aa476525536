"""A live socket is never taken over: a second fake-crio or fake-conmon on the same path refuses to start
(exit 2, CRI-O's "already existing connection"), a stale one is replaced, and a server that stops removes
only its own socket file. Real processes on real sockets."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from cristack.harness.procs import component_argv, start
from cristack.wire.endpoints import parse_endpoint
from cristack.wire.errors import EXIT_CONFIG
from cristack.wire.pb.conmon.v1 import conmon_pb2 as cpb
from cristack.wire.pb.conmon.v1 import conmon_pb2_grpc as cgrpc
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from tests.conftest import start_conmon, start_crio


def crio_version(sock: Path) -> str:
    with grpc.insecure_channel(f"unix://{sock}") as ch:
        return pbgrpc.RuntimeServiceStub(ch).Version(pb.VersionRequest(), timeout=5).runtime_name


def conmon_answers(sock: Path) -> bool:
    with grpc.insecure_channel(f"unix://{sock}") as ch:
        cgrpc.ConmonStub(ch).Version(cpb.VersionRequest(), timeout=5)
    return True


def run_second(name: str, args: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(component_argv(name, *args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def inode(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_dev, st.st_ino


def test_a_second_crio_on_a_live_socket_refuses_and_the_first_keeps_it(tmp_path: Path):
    first = start_crio(tmp_path / "a")
    try:
        before = inode(first.socket)
        # Same socket, same state directories: it must neither serve nor touch the first one's state.
        second = run_second("fake-crio", first.args)
        assert second.returncode == EXIT_CONFIG, second.stderr
        assert f"{first.socket}: already existing connection (pid {first.proc.popen.pid} serves it)" \
            in second.stderr and "Traceback" not in second.stderr
        assert inode(first.socket) == before
        assert crio_version(first.socket) == "cri-o"
    finally:
        first.close()
    assert not first.socket.exists(), "the first removes its own socket on exit"


def test_a_second_conmon_on_a_live_socket_refuses(tmp_path: Path):
    first = start_conmon(tmp_path / "a")
    try:
        before = inode(first.socket)
        second = run_second("fake-conmon", [*first.args[:-2], "--runtime-dir", str(tmp_path / "other")])
        assert second.returncode == EXIT_CONFIG, second.stderr
        assert "already existing connection" in second.stderr and "Traceback" not in second.stderr
        assert inode(first.socket) == before and conmon_answers(first.socket)
    finally:
        first.proc.stop()


def test_a_foreign_server_on_the_path_is_not_taken_over(tmp_path: Path):
    """A server that is not ours (a real CRI-O, say) only answers on the socket: the dial finds it."""
    sock = tmp_path / "run" / "crio.sock"
    sock.parent.mkdir(parents=True)
    foreign = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    foreign.bind(str(sock))
    foreign.listen(1)
    try:
        result = run_second("fake-crio", ["--listen", f"unix://{sock}", "--root", str(tmp_path / "root"),
                                          "--runroot", str(tmp_path / "runroot")])
        assert result.returncode == EXIT_CONFIG and "a server answers on it" in result.stderr, result.stderr
        assert sock.exists()
    finally:
        foreign.close()


def test_a_stale_socket_is_replaced(tmp_path: Path):
    sock = tmp_path / "a" / "run" / "crio.sock"
    sock.parent.mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock))
    dead.close()  # the file stays behind, as after a SIGKILL
    crio = start_crio(tmp_path / "a")
    try:
        assert crio_version(crio.socket) == "cri-o"
    finally:
        crio.close()


def test_on_exit_a_server_removes_only_its_own_socket(tmp_path: Path):
    """The issue's sequence: someone else's socket now sits at our path (here put there by hand, as the old
    second fake-crio did); SIGTERM to us must leave it."""
    crio = start_crio(tmp_path / "a")
    crio.socket.unlink()
    successor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    successor.bind(str(crio.socket))
    successor.listen(1)
    try:
        crio.close()
        assert crio.socket.exists(), "fake-crio removed a socket that was not its own"
    finally:
        successor.close()


@pytest.mark.parametrize("trial", range(3))
def test_two_started_at_once_one_serves(tmp_path: Path, trial: int):
    sock = tmp_path / "run" / "crio.sock"
    results: list[subprocess.Popen] = []
    barrier = threading.Barrier(2)

    def launch(i: int) -> None:
        args = ["--listen", f"unix://{sock}", "--root", str(tmp_path / f"root{i}"),
                "--runroot", str(tmp_path / f"runroot{i}")]
        barrier.wait()
        results.append(subprocess.Popen(component_argv("fake-crio", *args), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        deadline = time.monotonic() + 30
        while all(p.poll() is None for p in results) and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = [p for p in results if p.poll() is not None]
        assert len(refused) == 1, "exactly one of the two exits"
        _, err = refused[0].communicate()
        assert refused[0].returncode == EXIT_CONFIG, err
        server = next(p for p in results if p is not refused[0])
        assert f"pid {server.pid} serves it" in err or "a server answers on it" in err, err
        assert crio_version(sock) == "cri-o" and server.poll() is None
    finally:
        for p in results:
            if p.poll() is None:
                p.terminate()
            p.communicate(timeout=10)
    assert not sock.exists(), "the server that served removed its socket"
    assert not list(sock.parent.iterdir()), "nor left its private name behind"


def test_the_harness_does_not_take_a_refused_start_for_a_started_one(tmp_path: Path):
    """``procs.start`` waits until the endpoint serves: a live server already there must not pass for the
    new process, which refuses the socket and exits."""
    first = start_crio(tmp_path / "a")
    try:
        with pytest.raises(RuntimeError, match="something already serves on"):
            start("fake-crio", first.args, tmp_path / "second.log", endpoint=parse_endpoint(str(first.socket)))
        assert crio_version(first.socket) == "cri-o"
    finally:
        first.close()
