"""`fake-kubelet --runonce` as the real kubelet's (pkg/kubelet/runonce.go): it syncs each static pod until all its
containers run (or the pod has finished), then exits 0, leaving the pods to the runtime; the README's example
with the long-running nginx pod therefore returns at once. The mock-only --runonce-teardown (what cristack demo
and the harness use) stops them first."""

from __future__ import annotations

import subprocess

import grpc

from cristack.harness.procs import component_argv
from cristack.harness.stack import example
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc


def runonce(stack, *extra: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001 - a harness Stack
    argv = component_argv("fake-kubelet", *stack.kubelet_args(runonce=False), "--runonce", *extra)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def running(stack) -> tuple[list[str], list[str]]:  # noqa: ANN001
    """Names of the ready sandboxes and running containers fake-crio holds."""
    with grpc.insecure_channel(stack.crio_endpoint) as ch:
        rt = pbgrpc.RuntimeServiceStub(ch)
        pods = rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(
            state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY))), timeout=5).items
        ctrs = rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(
            state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))), timeout=5).containers
    return [p.metadata.name for p in pods], [c.metadata.name for c in ctrs]


def test_runonce_returns_once_the_pods_run_and_leaves_them_running(make_stack) -> None:
    stack = make_stack()
    stack.add_manifest(example("manifests", "nginx.yaml"))  # the README's example: restartPolicy Always
    stack.start_runtime()
    proc = runonce(stack)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--runonce: pod default/web running" in proc.stderr
    assert running(stack) == (["web"], ["nginx"]), "the real kubelet exits with its pods still running"


def test_runonce_teardown_stops_them_first(make_stack) -> None:
    stack = make_stack()
    stack.add_manifest(example("manifests", "nginx.yaml"))
    stack.start_runtime()
    proc = runonce(stack, "--runonce-teardown")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert running(stack) == ([], [])
