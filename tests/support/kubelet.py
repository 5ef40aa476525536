"""Driving a stack's kubelet from a test (processes or in-process, ``tests.conftest.make_stack``): a static pod's
manifest, the pods' sandboxes and containers as fake-crio lists them, the kubelet's pod API, the CRI calls each
side recorded, and waiting for any of these without a fixed sleep."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import grpc

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc

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
