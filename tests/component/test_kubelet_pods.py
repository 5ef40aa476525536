"""fake-kubelet -> fake-crio -> fake-conmon in this process, on real sockets: the kubelet's CRI calls, its
manifests and its API."""

from __future__ import annotations

import json
import urllib.request

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.support.kubelet import (
    START_ORDER,
    calls,
    calls_plain,
    containers,
    manifest,
    pod_status,
    sandboxes,
    subsequence,
    wait_for,
)


def test_cri_call_order_matches_the_real_kubelet(make_stack):
    stack = make_stack()
    manifest(stack, "order")
    stack.start_runtime()
    stack.start_kubelet()
    wait_for("container running", lambda: [c for c in containers(stack, "order") if c.state == pb.CONTAINER_RUNNING])
    # The first syncPod: the kubelet's start order.
    assert calls(stack.kubelet_calls, "syncPod")[:9] == START_ORDER
    # PLEG: a relist, then only the status calls for the pod that changed (the relist listed it).
    def pod_refresh():
        pleg = calls(stack.kubelet_calls, "pleg")
        return [k for k in range(2, len(pleg) - 1) if pleg[k:k + 2] == ["PodSandboxStatus", "ContainerStatus"]]

    wait_for("PLEG to refresh the pod", pod_refresh)
    pleg = calls(stack.kubelet_calls, "pleg")
    assert pleg[:2] == ["ListPodSandbox", "ListContainers"]
    i = pod_refresh()[0]
    assert pleg[i - 2:i] == ["ListPodSandbox", "ListContainers"], "the status calls follow a relist"
    # fake-crio received the start sequence in that order.
    received = calls_plain(stack.crio_calls)
    assert subsequence(START_ORDER, received)

    (stack.manifests / "order.yaml").unlink()
    wait_for("sandbox removed", lambda: not sandboxes(stack, "order"))
    assert calls(stack.kubelet_calls, "syncTerminatingPod")[-6:] == [
        "StopContainer", "StopPodSandbox", "ListPodSandbox", "ListContainers", "PodSandboxStatus", "ContainerStatus"]
    assert calls(stack.kubelet_calls, "syncTerminatedPod") == [], "syncTerminatedPod makes no CRI calls"
    assert calls(stack.kubelet_calls, "gc")[-2:] == ["StopPodSandbox", "RemovePodSandbox"]

def test_image_pull_backoff_then_fixed_manifest(make_stack):
    stack = make_stack()
    path = manifest(stack, "img", image="registry.invalid/nope:1.0")
    stack.start_runtime()
    stack.start_kubelet()
    wait_for("ErrImagePull", lambda: "ErrImagePull" in json.dumps(pod_status(stack, "img")), interval=0.01)
    wait_for("ImagePullBackOff", lambda: "ImagePullBackOff" in json.dumps(pod_status(stack, "img")), interval=0.01)
    assert "no such host" in json.dumps(pod_status(stack, "img")) or \
        "Back-off pulling image" in json.dumps(pod_status(stack, "img"))
    pulls = calls(stack.kubelet_calls, "syncPod").count("PullImage")
    assert pulls >= 1
    manifest(stack, "img", image="busybox")  # the fix: an edited manifest is a new pod
    wait_for("fixed pod running", lambda: [c for c in containers(stack, "img") if c.state == pb.CONTAINER_RUNNING])
    wait_for("old sandbox gone", lambda: len(sandboxes(stack, "img")) == 1)
    assert path.exists()

def test_manifest_add_edit_remove(make_stack):
    stack = make_stack()
    stack.start_runtime()
    stack.start_kubelet()
    manifest(stack, "live")
    first = wait_for("sandbox", lambda: sandboxes(stack, "live"))
    manifest(stack, "live", command='["sleep", "61"]')  # edit: restart as a new pod
    second = wait_for("new sandbox only", lambda: [s for s in sandboxes(stack, "live") if s.id != first[0].id]
                      if len(sandboxes(stack, "live")) == 1 else None)
    assert second[0].metadata.uid != first[0].metadata.uid
    (stack.manifests / "live.yaml").write_text("kind: Pod\nmetadata: {name: broken}\n")  # malformed: pod goes away
    wait_for("removed", lambda: not sandboxes(stack, "live"))
    log = stack.kubelet.log_text()
    assert "live.yaml" in log and "spec: required" in log
    assert stack.kubelet.alive, "a bad manifest does not stop the kubelet"

def test_healthz(make_stack):
    stack = make_stack()
    stack.start_runtime()
    stack.start_kubelet()
    port = stack.opts.kubelet_config["readOnlyPort"]

    def healthz():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                return resp.read()
        except OSError:
            return None

    assert wait_for("healthz", healthz) == b"ok"
