"""The same questions asked of both CRI runtimes cristack runs: a pod's start through fake-crio (and conmon-rs)
and through fake-containerd (and the pod's shim, containerd-shim-runc-v2's stand-in). Each runtime's pod runs
once per module; every test runs on both:

    pytest examples/pytest/test_both_runtimes.py
    pytest examples/pytest/test_both_runtimes.py --trace-backend jaeger

To run a whole suite on one runtime instead, use ``--cristack-runtime containerd`` (or ``CRISTACK_RUNTIME``): then
``run_pod()`` and ``cri_stack()`` start fake-containerd, and the ``cristack_runtime`` fixture names it.
"""

import pytest

from cristack.harness.assertions import expect, pod_start, pod_uid

SERVICE = {"crio": "crio", "containerd": "containerd"}
# Who runs the containers, and the span of the runtime's call to it that their spans hang under.
MONITOR = {"crio": ('service="conmonrs" name="create_container"',
                    'service="crio" name="conmonrs-client: CreateContainer"'),
           "containerd": ('service=~"^containerd-shim-" name="containerd.task.v3.Task/Create"',
                          'service="containerd" kind=client name="containerd.task.v3.Task/Create"')}


@pytest.fixture(scope="module", params=["crio", "containerd"])
def runtime(request):
    return request.param


@pytest.fixture(scope="module")
def trace(run_pod, trace_backend, runtime):
    uid = run_pod(runtime=runtime)  # examples/pods/hello.yaml: two containers, one with a terminal
    return trace_backend.wait_for_trace(pod_start(runtime=runtime), match=pod_uid(uid), timeout=60)


def test_every_cri_call_reaches_the_runtime(trace, runtime):
    calls = expect(trace, 'span[service="kubelet" kind=client] child of span[name="syncPod"]')
    calls.count(at_least=5).where('rpc.response.status_code="OK"', 'rpc.method=~"^runtime\\.v1\\."')
    expect(trace, f'span[service="{SERVICE[runtime]}" kind=server] child of span[service="kubelet" kind=client]') \
        .count(len(calls.matched))


def test_the_context_reaches_the_process_that_runs_the_containers(trace, runtime):
    child, parent = MONITOR[runtime]
    # hello's two containers and, on containerd, the pod's sandbox (its pause process, a task of the shim too).
    expect(trace, f"span[{child}] child of span[{parent}]").count(2 if runtime == "crio" else 3)


def test_one_process_runs_the_pods_containers(trace, runtime):
    """conmon-rs serves the node (one here); containerd starts a shim per pod, its service named for the pod's
    sandbox id (``containerd-shim-<id>``)."""
    child, _ = MONITOR[runtime]
    services = {s.service for s in expect(trace, f"span[{child}]").exists().matched}
    assert len(services) == 1, services
