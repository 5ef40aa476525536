"""fake-kubelet → fake-crio → fake-conmon as three real processes on real sockets."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from tests.support.pace import allowance, timed

POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 2
  containers:
    - name: main
      image: {image}
      imagePullPolicy: IfNotPresent
      command: {command}
"""


def manifest(stack, name: str, *, policy: str = "Always", image: str = "busybox",
             command: str = '["sleep", "60"]') -> Path:
    path = stack.manifests / f"{name}.yaml"
    path.write_text(POD.format(name=name, policy=policy, image=image, command=command))
    return path


def wait_for(what: str, fn, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def runtime(stack) -> pbgrpc.RuntimeServiceStub:
    return pbgrpc.RuntimeServiceStub(grpc.insecure_channel(stack.crio_endpoint))


def sandboxes(stack, name: str) -> list[pb.PodSandbox]:
    return [s for s in runtime(stack).ListPodSandbox(pb.ListPodSandboxRequest()).items if s.metadata.name == name]


def containers(stack, pod: str) -> list[pb.Container]:
    req = pb.ListContainersRequest(filter=pb.ContainerFilter(label_selector={"io.kubernetes.pod.name": pod}))
    return list(runtime(stack).ListContainers(req).containers)


def pods_api(stack) -> dict[str, dict]:
    port = stack.opts.kubelet_config["readOnlyPort"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/pods", timeout=5) as resp:
        items = json.load(resp)["items"]
    return {p["metadata"]["name"]: p for p in items}


def pod_status(stack, name: str) -> dict:
    try:
        return pods_api(stack).get(name, {}).get("status", {})
    except OSError:
        return {}


def calls(path: Path, op: str | None = None) -> list[str]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines()]
    return [m for o, m in rows if op is None or o == op]


def relists(stack) -> int:
    """PLEG relists the kubelet has begun: each is an unfiltered ListPodSandbox then ListContainers (a pod's
    refresh puts PodSandboxStatus between the two). A relist begins only after the previous one ended."""
    pleg = calls(stack.kubelet_calls, "pleg")
    return sum(1 for k in range(len(pleg) - 1) if pleg[k:k + 2] == ["ListPodSandbox", "ListContainers"])


def wait_for_relists(stack, n: int = 3, timeout: float = 20.0) -> None:
    """Waits until the kubelet has relisted ``n`` more times: whatever a relist sets off (a restart, a
    duplicate sandbox) has then had ``n`` chances to happen, so a test may assert that it did not."""
    start = relists(stack)
    wait_for(f"{n} more PLEG relists", lambda: relists(stack) >= start + n, timeout=timeout)


def crio_received(stack, method: str) -> int:
    """How many ``method`` calls fake-crio has received (its --record-calls file; a restarted fake-crio appends)."""
    return calls_plain(stack.crio_calls).count(method)


# The real kubelet's order (tests/data/real/kubelet/cri-calls-run1.txt, where the policy was Always and the
# pull came first): with IfNotPresent and the image absent, the image manager looks it up, pulls it, then
# looks it up twice (its ref, then the container config's image user).
START_ORDER = ["Version", "RunPodSandbox", "PodSandboxStatus", "ImageStatus", "PullImage", "ImageStatus",
               "ImageStatus", "CreateContainer", "StartContainer"]


def calls_plain(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def subsequence(wanted: list[str], seen: list[str]) -> bool:
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)


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
