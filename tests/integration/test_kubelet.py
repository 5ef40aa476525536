"""fake-kubelet → fake-crio → fake-conmon as three real processes on real sockets."""

from __future__ import annotations

import json

import pytest

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.support.kubelet import (
    calls,
    containers,
    crio_received,
    manifest,
    pod_status,
    sandboxes,
    wait_for,
    wait_for_relists,
)
from tests.support.pace import allowance, timed


@pytest.mark.parametrize("policy, command, phase, restarts", [
    ("Never", '["sh", "-c", "exit 1"]', "Failed", False),
    ("OnFailure", '["sh", "-c", "exit 0"]', "Succeeded", False),
    ("OnFailure", '["sh", "-c", "exit 1"]', None, True),
    ("Always", '["sh", "-c", "exit 0"]', None, True),
])
def test_restart_policies(make_stack, policy, command, phase, restarts):
    stack = make_stack()
    manifest(stack, "rp", policy=policy, command=command)
    stack.start_runtime()
    stack.start_kubelet()
    if phase is not None:
        status = wait_for(f"phase {phase}", lambda: pod_status(stack, "rp").get("phase") == phase and
                          pod_status(stack, "rp"))
        assert status["containerStatuses"][0]["restartCount"] == 0
        # A pod in a terminal phase is torn down: its sandbox is stopped, and kept while the pod exists (the
        # real kubelet's GC removes sandboxes of deleted pods only; the recorded oneshot pod's stayed).
        wait_for("sandbox stopped", lambda: [sb.state for sb in sandboxes(stack, "rp")] == [pb.SANDBOX_NOTREADY])
        wait_for_relists(stack)  # each would have restarted the container, were the policy ignored
        assert pod_status(stack, "rp")["containerStatuses"][0]["restartCount"] == 0
    else:
        wait_for("two restarts", lambda: (pod_status(stack, "rp").get("containerStatuses") or [{}])[0]
                 .get("restartCount", 0) >= 2, timeout=20)
        # Restarts happen in the same sandbox, with growing back-off in between.
        assert len(sandboxes(stack, "rp")) == 1
        wait_for("CrashLoopBackOff", lambda: "CrashLoopBackOff" in json.dumps(pod_status(stack, "rp")), timeout=20,
                 interval=0.01)


def test_runonce_exit_codes(make_stack):
    ok = make_stack()
    manifest(ok, "fine", policy="Never", command='["echo", "hi"]')
    ok.start_runtime()
    assert ok.start_kubelet(runonce=True).popen.wait(30) == 0
    assert not sandboxes(ok, "fine"), "runonce tears the pod down"

    bad = make_stack()
    manifest(bad, "broken", policy="Never", command='["sh", "-c", "exit 7"]')
    bad.start_runtime()
    kubelet = bad.start_kubelet(runonce=True)
    assert kubelet.popen.wait(30) == 1
    assert "pod default/broken failed" in kubelet.log_text() and "exit code 7" in kubelet.log_text()


def test_crio_restart_while_kubelet_runs(make_stack):
    stack = make_stack()
    manifest(stack, "steady")
    stack.start_runtime()
    stack.start_kubelet()
    ctr = wait_for("running", lambda: [c for c in containers(stack, "steady") if c.state == pb.CONTAINER_RUNNING])
    stack.crio.kill()
    # The kubelet has tried to relist against the dead fake-crio (a relist whose ListPodSandbox fails
    # goes no further).
    tried = calls(stack.kubelet_calls, "pleg").count("ListPodSandbox")
    wait_for("relists against the dead fake-crio",
             lambda: calls(stack.kubelet_calls, "pleg").count("ListPodSandbox") >= tried + 2)
    from cristack.harness.procs import start
    from cristack.wire.endpoints import parse_endpoint

    before = crio_received(stack, "ListPodSandbox")
    stack.crio = start("fake-crio", stack.crio_args(), stack.base / "crio.log",
                       endpoint=parse_endpoint(str(stack.crio_socket)))
    # Several relists answered by the new fake-crio, each a chance to create a duplicate sandbox.
    wait_for("relists against the new fake-crio", lambda: crio_received(stack, "ListPodSandbox") >= before + 5,
             timeout=20)
    wait_for_relists(stack, 2)
    assert len(sandboxes(stack, "steady")) == 1, "no duplicate sandbox"
    now = [c for c in containers(stack, "steady") if c.state == pb.CONTAINER_RUNNING]
    assert [c.id for c in now] == [ctr[0].id], "the monitor kept the container; the kubelet adopted it"
    assert stack.kubelet.popen.poll() is None


def test_kubelet_restart_adopts_running_pods(make_stack):
    stack = make_stack()
    manifest(stack, "adopt")
    with timed() as up:
        stack.start_runtime()
    stack.start_kubelet()
    ctr = wait_for("running", lambda: [c for c in containers(stack, "adopt") if c.state == pb.CONTAINER_RUNNING])
    took = stack.kubelet.stop()
    assert took <= allowance(2.0, up.seconds), took
    stack.start_kubelet()
    wait_for("kubelet serving", lambda: pod_status(stack, "adopt").get("phase") == "Running")
    assert len(sandboxes(stack, "adopt")) == 1
    assert [c.id for c in containers(stack, "adopt")] == [ctr[0].id]


def test_runonce_result_file_names_each_pods_outcome_and_the_traces_of_its_syncs(make_stack, sink):
    """`fake-kubelet --runonce --result-file`: per pod its phase, whether it succeeded, the reason and message
    of a failure, and the trace of every sync, each of which the collector received."""
    stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint)
    manifest(stack, "good", policy="Never", command='["echo", "hi"]')
    manifest(stack, "bad", policy="Never", command='["sh", "-c", "exit 3"]')
    stack.start_runtime()
    assert stack.start_kubelet(runonce=True).popen.wait(60) == 1
    doc = json.loads(stack.result_file.read_text())
    pods = {p["pod"]: p for p in doc["pods"]}
    assert doc["exitCode"] == 1 and set(pods) == {"default/good", "default/bad"}
    good, bad = pods["default/good"], pods["default/bad"]
    assert (good["ok"], good["phase"], good["reason"]) == (True, "Succeeded", "")
    assert (bad["ok"], bad["phase"], bad["reason"]) == (False, "Failed", "Error")
    assert "exited with code 3" in bad["message"]
    for pod in (good, bad):
        functions = [s["function"] for s in pod["syncs"]]
        assert functions[0] == "syncPod" and "syncTerminatingPod" in functions, functions
        for s in pod["syncs"]:
            assert sink.store.wait(lambda st, t=s["traceId"]: bool(st.trace(t)), 10), s
