"""fake-kubelet keeps its promises when things around it go wrong: it stops at once in every state, a runtime
that never comes up ends in one clear line, its loops outlive any error, and a static pod directory it cannot
read keeps the pods it already has."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from cristack.harness.procs import component_argv
from fake_kubelet.periodic import keep_running
from tests.support.kubelet import containers, manifest, wait_for
from tests.support.pace import allowance, timed


def kubelet_config(tmp_path: Path, **extra: object) -> Path:
    doc = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
           "containerRuntimeEndpoint": f"unix://{tmp_path}/nobody/crio.sock", "staticPodPath": str(tmp_path / "pods"),
           "port": 0, **extra}
    (tmp_path / "pods").mkdir(exist_ok=True)
    path = tmp_path / "kubelet-config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_stops_within_2s_while_waiting_for_a_runtime_that_is_not_there(tmp_path: Path, sig) -> None:
    """Within 2 s; on a loaded machine, plus how long that machine just took to start it (tests/support/pace.py)."""
    with timed() as start:
        proc = subprocess.Popen(component_argv("fake-kubelet", "--config", str(kubelet_config(tmp_path))),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if "not ready" in line:
                break
    budget = allowance(2.0, start.seconds)
    proc.send_signal(sig)
    with timed() as took:
        out = proc.communicate(timeout=budget + 10)[0]
    assert took.seconds <= budget, f"{took.seconds:.2f} s to exit (budget {budget:.1f} s)"
    assert proc.returncode == 0 and "Traceback" not in out and "AioRpcError" not in out


def test_a_runtime_that_never_comes_up_ends_in_one_clear_line(tmp_path: Path) -> None:
    cfg = kubelet_config(tmp_path, runtimeRequestTimeout="1s")
    proc = subprocess.run(component_argv("fake-kubelet", "--config", str(cfg), "--runonce"), capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fake-kubelet: the container runtime at unix://{tmp_path}/nobody/crio.sock did not "
                           "answer within 1s (UNAVAILABLE: "), proc.stderr
    assert proc.stderr.count("did not answer") == 1
    assert "Traceback" not in proc.stderr + proc.stdout and "AioRpcError" not in proc.stderr


def test_a_loop_outlives_any_error_and_says_so_once_per_distinct_error(caplog) -> None:
    results = iter([ValueError("bad"), ValueError("bad"), KeyError("other"), None, RuntimeError("again")])
    calls = []
    seven = asyncio.Event()

    async def tick() -> None:
        calls.append(1)
        if len(calls) >= 7:
            seven.set()
        outcome = next(results, None)
        if outcome is not None:
            raise outcome

    async def main() -> None:
        task = asyncio.create_task(keep_running(0.001, tick, "test loop"))
        await seven.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger="fake_kubelet.periodic"):
        asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["test loop failed: ValueError: bad", "test loop failed: KeyError: 'other'",
                        "test loop works again", "test loop failed: RuntimeError: again", "test loop works again"]


def test_an_unreadable_static_pod_directory_keeps_the_pods_it_had(make_stack) -> None:
    stack = make_stack()
    manifest(stack, "keeper")
    stack.start()
    first = wait_for("keeper running", lambda: [c for c in containers(stack, "keeper") if c.state == 1])[0]
    moved = stack.manifests.with_name("manifests.away")
    stack.manifests.rename(moved)
    stack.manifests.write_text("not a directory\n")  # iterdir fails: ENOTDIR
    wait_for("the error logged", lambda: "cannot read static pod directory" in stack.logs()["kubelet"])
    stack.manifests.unlink()
    moved.rename(stack.manifests)
    log = stack.logs()["kubelet"]
    assert log.count("cannot read static pod directory") == 1 and "keeping the 1 pod it had" in log
    assert "terminating" not in log
    running = [c for c in containers(stack, "keeper") if c.state == 1]
    assert [c.id for c in running] == [first.id]


def test_container_gc_skips_a_container_another_loop_removed_first() -> None:
    """The pod container deletor and GC race for a deleted pod's dead containers: GC must go on, as the
    kubelet's does, instead of failing the whole pass (and --runonce with it)."""
    import grpc
    from opentelemetry import trace

    from cristack.wire.pb.runtime.v1 import api_pb2 as pb
    from fake_kubelet.cri import UID_LABEL
    from fake_kubelet.periodic import RuntimeLoops

    class Gone(grpc.aio.AioRpcError):
        def __init__(self) -> None:
            super().__init__(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone", None)

    def dead(cid: str) -> pb.Container:
        return pb.Container(id=cid, state=pb.CONTAINER_EXITED, labels={UID_LABEL: "deleted-uid"},
                            metadata=pb.ContainerMetadata(name=cid))

    removed: list[str] = []

    class Cri:
        async def call(self, method: str, request, **_: object):  # noqa: ANN001
            if method == "ListContainers":
                return pb.ListContainersResponse(containers=[dead("a"), dead("b")])
            if method == "ListPodSandbox":
                return pb.ListPodSandboxResponse()
            if method == "ContainerStatus" and request.container_id == "a":
                raise Gone()
            if method == "ContainerStatus":
                return pb.ContainerStatusResponse(status=pb.ContainerStatus(id=request.container_id))
            if method == "RemoveContainer":
                removed.append(request.container_id)
            return None

    tracer = trace.NoOpTracer()
    loops = RuntimeLoops(Cri(), "node", tracer, tracer, lambda: set(), lambda: {"deleted-uid"})
    asyncio.run(loops.container_gc())
    assert removed == ["b"]
