"""Several nodes on one machine: each names itself in its spans (host.name) and hands out pod IPs
from its own pod CIDR. Two full stacks (kubelet, crio, conmon) and the OTLP sink on real sockets."""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict

import grpc
import pytest

from cristack.harness.stack import example
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.conftest import pod_config, start_crio
from tests.support.cri import ready_pod_ips
from tests.support.kubelet import wait_for

PODS = 3
POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default, uid: {uid}}}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
    - {{name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, "60"]}}
"""




def test_two_nodes_have_their_own_host_name_and_pod_ips(make_stack, sink):
    nodes = {"node-a": "10.244.1.0/24", "node-b": "10.244.2.0/24"}
    stacks = {}
    uids: dict[str, str] = {}  # pod uid -> node
    for name, cidr in nodes.items():
        stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint, node_name=name, pod_cidr=cidr)
        for i in range(PODS):
            uid = f"{name}-uid-{i}"
            (stack.manifests / f"p{i}.yaml").write_text(POD.format(name=f"p{i}", uid=uid))
            uids[uid] = name
        stack.start()
        stacks[name] = stack

    def ready(stack) -> dict[str, str] | None:
        got = ready_pod_ips(stack.crio_endpoint)
        return got if len(got) == PODS and all(got.values()) else None

    ips = {name: wait_for(f"{PODS} ready pods with IPs on {name}", lambda s=stack: ready(s), timeout=30)
           for name, stack in stacks.items()}
    for name, cidr in nodes.items():
        assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(cidr) for ip in ips[name].values()), ips
    # (IPs unique within one node under concurrent starts is the concurrency tests' business.)
    assert not set(ips["node-a"].values()) & set(ips["node-b"].values()), f"a pod IP repeats across nodes: {ips}"
    for stack in stacks.values():
        assert "UpdateRuntimeConfig" in stack.kubelet_calls.read_text().split(), "the kubelet hands over its podCIDR"

    def all_synced(store) -> bool:
        return {s.attributes.get("k8s.pod.uid") for s in store.spans() if s.name == "syncPod"} >= set(uids)

    assert sink.store.wait(all_synced, 20), "no syncPod span for some pod"
    spans = sink.store.spans()
    node_of_pid = {str(p.pid): name for name, st in stacks.items() for p in (st.crio, st.conmon)}
    by_trace = defaultdict(set)
    for span in spans:
        host = span.resource.get("host.name")
        assert host in nodes, f"{span.service} {span.name}: host.name {host!r}"
        by_trace[span.trace_id].add(host)
        if span.service in ("crio", "conmonrs"):
            assert host == node_of_pid[str(span.resource["process.pid"])], (span.service, span.name, host)
        if span.name == "syncPod":
            assert host == uids[span.attributes["k8s.pod.uid"]]
    assert {s.service for s in spans} == {"kubelet", "crio", "conmonrs"}
    update = "runtime.v1.RuntimeService/UpdateRuntimeConfig"
    handed = {(s.resource["host.name"], s.kind) for s in spans if s.name == update}
    assert handed == {(n, k) for n in nodes for k in ("CLIENT", "SERVER")}, "each kubelet tells its own crio"
    assert all(len(hosts) == 1 for hosts in by_trace.values()), "a trace never spans two nodes"


def test_otel_resource_attributes_names_the_host(make_stack, sink):
    stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint,
                       env={"OTEL_RESOURCE_ATTRIBUTES": "host.name=x,deployment.environment=lab"})
    stack.add_manifest(example("pods", "hello.yaml"))
    stack.start_runtime()
    assert stack.start_kubelet(runonce=True).popen.wait(30) == 0
    assert sink.store.wait(lambda st: {s.service for s in st.spans()} == {"kubelet", "crio", "conmonrs"}, 15)
    spans = sink.store.spans()
    assert {(s.resource.get("host.name"), s.resource.get("deployment.environment")) for s in spans} == {("x", "lab")}
    assert {s.resource["service.name"] for s in spans} == {"kubelet", "crio", "conmonrs"}


def test_crio_allocates_from_its_cni_range_and_ignores_update_runtime_config(tmp_path):
    nets = tmp_path / "net.d"
    nets.mkdir()
    (nets / "10-node.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "crio", "plugins": [
        {"type": "bridge", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.9.0/30"}]]}}]}))
    crio = start_crio(tmp_path, "--cni-config-dir", str(nets))
    try:
        rt = crio.runtime()
        # CRI-O takes pod IPs from CNI, not from the kubelet's pod CIDR: the call succeeds and changes nothing.
        rt.UpdateRuntimeConfig(pb.UpdateRuntimeConfigRequest(
            runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="192.168.0.0/24"))))
        first = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("a", "uid-a"))).pod_sandbox_id
        status = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=first)).status
        assert status.network.ip == "10.244.9.2", "a /30: .1 is the gateway, .2 the only pod address"
        with pytest.raises(grpc.RpcError) as err:
            rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("b", "uid-b")))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "no IP addresses available in range set: 10.244.9.1-10.244.9.2" in err.value.details()
        assert [s.id for s in rt.ListPodSandbox(pb.ListPodSandboxRequest()).items] == [first]
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=first))
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=first))
        again = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("b", "uid-b"))).pod_sandbox_id
        assert rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=again)).status.network.ip == "10.244.9.2"
    finally:
        crio.close()
