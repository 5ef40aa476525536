"""fake-kubelet sees its static pod directory change as it happens (an inotify watch, as the real kubelet's
fsnotify watch in pkg/kubelet/config/file_linux.go), not only at its periodic listing (fileCheckFrequency,
20 s by default): here the period is a minute, so everything below happens through the watch."""

from __future__ import annotations

import os
from pathlib import Path

import grpc

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from tests.support.kubelet import wait_for

POD = ("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, uid: {name}-uid}}\n"
       "spec:\n  terminationGracePeriodSeconds: 1\n"
       "  containers: [{{name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, '600']}}]\n")


def ready(stack) -> set[str]:
    with grpc.insecure_channel(stack.crio_endpoint) as channel:
        items = pbgrpc.RuntimeServiceStub(channel).ListPodSandbox(pb.ListPodSandboxRequest()).items
    return {s.metadata.name for s in items if s.state == pb.SANDBOX_READY}


def test_a_manifest_added_renamed_in_or_removed_is_seen_at_once(make_stack) -> None:
    stack = make_stack(file_check_frequency="60s")
    (stack.manifests / "first.yaml").write_text(POD.format(name="first"))
    stack.start()
    wait_for("the pod present at start", lambda: ready(stack) == {"first"}, timeout=30)

    (stack.manifests / "added.yaml").write_text(POD.format(name="added"))  # created, written, closed
    wait_for("the added pod", lambda: ready(stack) == {"first", "added"}, timeout=15)

    # An atomic replace, as editors and ConfigMap volumes do it: written aside, then renamed in.
    tmp = stack.manifests / ".moved.yaml.tmp"
    tmp.write_text(POD.format(name="moved"))
    os.replace(tmp, stack.manifests / "moved.yaml")
    wait_for("the renamed-in pod", lambda: ready(stack) == {"first", "added", "moved"}, timeout=15)

    (stack.manifests / "first.yaml").unlink()
    wait_for("the removed pod gone", lambda: ready(stack) == {"added", "moved"}, timeout=15)


def test_a_directory_that_appears_later_is_watched_once_it_is_there(make_stack, tmp_path: Path) -> None:
    stack = make_stack(file_check_frequency="60s")
    later = tmp_path / "later"
    stack.manifests = later  # does not exist yet: the periodic listing finds nothing, the watch waits
    stack.start()
    wait_for("the kubelet's first relist", lambda: "ListPodSandbox" in stack.kubelet_calls.read_text()
             if stack.kubelet_calls.exists() else False, timeout=30)
    later.mkdir()
    (later / "late.yaml").write_text(POD.format(name="late"))
    wait_for("the pod of the directory made late", lambda: ready(stack) == {"late"}, timeout=20)
    (later / "later.yaml").write_text(POD.format(name="later"))
    wait_for("a pod added once the directory is watched", lambda: ready(stack) == {"late", "later"}, timeout=20)
