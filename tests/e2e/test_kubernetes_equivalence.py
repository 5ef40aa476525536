"""The StatefulSet we ship is the node we test: deploy/kubernetes/overlays/demo (and overlays/containerd, the same
on containerd) is rendered by the real kustomize and each of its three cristack-node pods' container runs here as
a local process, as the kubelet would start it
(the downward-API env of pods -0, -1 and -2, the ConfigMap's endpoint, $(VAR) expansion), with its ConfigMap
volume laid out as the kubelet lays it out (symlinks into ..data), its emptyDir a temp dir and the collector
Service's address pointing at the test's OTLP sink. Three distinct nodes' traces must arrive, with no pod IP
shared between nodes; an applied ConfigMap edit must reach every node's kubelet; SIGTERM must stop each pod
within its grace period."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest

from cristack.harness.procs import component_argv
from tests.conftest import require_tool
from tests.support.cri import ready_pod_ips
from tests.support.kubepod import LocalPod, service_addresses, write_configmap_volume
from tests.support.kustomize import REPO, find, objects, render

NODES = 3
STATEFULSET = "cristack-node"



def wait_for_line(log: Path, pattern: str, proc: subprocess.Popen, timeout: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, log.read_text(), re.M)
        if m:
            return m
        assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()}"
        time.sleep(0.2)
    raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n{log.read_text()}")


def starts_by_node(store) -> dict[str, set[str]]:  # noqa: ANN001 - the sink's SpanStore
    """host.name -> the pods whose start (a create syncPod) that node traced."""
    got: dict[str, set[str]] = defaultdict(set)
    for span in store.spans():
        if span.name == "syncPod" and span.attributes.get("k8s.pod.update_type") == "create":
            got[span.resource.get("host.name")].add(span.attributes.get("k8s.pod.name"))
    return got


def is_shim(service: str) -> bool:
    return service.startswith("containerd-shim-")


# Each overlay and the services every one of its nodes' traces must show.
OVERLAYS = {"overlays/demo": ({"kubelet", "crio", "conmonrs"}, False),
            "overlays/containerd": ({"kubelet", "containerd"}, True)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_pods_run_locally_as_three_distinct_nodes(sink, tmp_path, overlay):
    services, shims = OVERLAYS[overlay]
    objs = objects(render(require_tool("kustomize"), overlay))
    assert find(objs, "StatefulSet", STATEFULSET)["spec"]["replicas"] == NODES
    collector = service_addresses(objs, "otel-collector", 4317, sink.addresses.otlp_endpoint)
    # Not under tmp_path: the nodes' sockets live in their emptyDir, and a unix socket path has at most 107 bytes.
    short = Path(tempfile.mkdtemp(prefix="k8s-"))
    pods = [LocalPod(objs, STATEFULSET, i, short, services=collector) for i in range(NODES)]
    names = [p.name for p in pods]
    assert names == ["cristack-node-0", "cristack-node-1", "cristack-node-2"]
    shipped = set(find(objs, "ConfigMap", "cristack-manifests")["data"])  # nginx.yaml (pod web), hello.yaml
    assert shipped == {"nginx.yaml", "hello.yaml"}

    procs: list[tuple[subprocess.Popen, Path]] = []
    try:
        for pod in pods:
            argv = pod.argv()
            assert argv[:2] == ["cristack", "up"], argv
            assert f"--otlp-endpoint={sink.addresses.otlp_endpoint}" in argv, f"not the collector Service: {argv}"
            log = tmp_path / f"{pod.name}.log"
            env = {k: v for k, v in os.environ.items() if k not in ("TRACEPARENT", "TRACESTATE")}
            with log.open("w") as out:
                procs.append((subprocess.Popen(component_argv("cristack", *argv[1:]), stdout=out,
                                               stderr=subprocess.STDOUT, start_new_session=True,
                                               env={**env, **pod.local_env(), "COLUMNS": "200"}), log))
            # Nothing it writes may land outside its emptyDir (the root filesystem is read-only in the pod).
            assert pod.local_env()["TMPDIR"] == str(pod.mounts["/tmp"])

        # Each node names itself after its pod and takes its own /24 (the pod index) of the cluster CIDR.
        endpoints = {}
        for i, (pod, (proc, log)) in enumerate(zip(pods, procs, strict=True)):
            m = wait_for_line(log, rf"^  node: +{pod.name} \(pod CIDR (\S+)\)$", proc)
            assert m.group(1) == f"10.244.{i}.0/24"
            endpoints[pod.name] = wait_for_line(log, r"^  CRI endpoint: +(\S+)$", proc).group(1)
            wait_for_line(log, r" web/nginx running ", proc)

        ok = sink.store.wait(lambda st: all(starts_by_node(st)[n] >= {"web", "hello"} for n in names), 60)
        assert ok, dict(starts_by_node(sink.store))
        spans = sink.store.spans()
        assert {s.resource.get("host.name") for s in spans} == set(names), "every span comes from one of the pods"
        for name in names:
            seen = {s.service for s in spans if s.resource.get("host.name") == name}
            assert seen >= services and any(map(is_shim, seen)) == shims, (name, seen)

        ips = {name: ready_pod_ips(ep) for name, ep in endpoints.items()}
        every = [ip for node in ips.values() for ip in node.values()]
        assert all("web" in node for node in ips.values()), ips
        assert len(every) == len(set(every)), f"a pod IP is shared between nodes: {ips}"
        for i, name in enumerate(names):
            cidr = ipaddress.ip_network(f"10.244.{i}.0/24")
            assert all(ipaddress.ip_address(ip) in cidr for ip in ips[name].values()), (name, ips[name])

        # `kubectl apply -k` with a pod added: the kubelet updates each node's volume, the node starts the pod.
        extra = (REPO / "examples/manifests/nginx.yaml").read_text().replace("name: web", "name: extra")
        cm = find(objs, "ConfigMap", "cristack-manifests")["data"]
        for pod in pods:
            write_configmap_volume(pod.volume_dirs["manifests"], {**cm, "extra.yaml": extra})
        ok = sink.store.wait(lambda st: all("extra" in starts_by_node(st)[n] for n in names), 60)
        assert ok, dict(starts_by_node(sink.store))

        grace = find(objs, "StatefulSet", STATEFULSET)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        for proc, _ in procs:
            os.killpg(proc.pid, signal.SIGTERM)  # what the kubelet sends first
        for proc, log in procs:
            try:
                assert proc.wait(grace) == 0, log.read_text()
            except subprocess.TimeoutExpired:
                raise AssertionError(f"not stopped within the pod's {grace}s grace:\n{log.read_text()}") from None
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(short, ignore_errors=True)
