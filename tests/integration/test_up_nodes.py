"""`cristack up --nodes 3` and `cristack demo --nodes 2 --spread`: several independent nodes on one machine,
each named in its spans (host.name), each handing out pod IPs from its own block of the cluster CIDR, all
tracing to one endpoint. Real processes on real sockets; the OTLP sink in the test."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from cristack.harness.cli import main
from cristack.harness.procs import component_argv
from tests.integration.test_up_events import POD, Lines
from tests.support.cri import ready_pod_ips

NODES = 3



def test_up_with_three_nodes_gives_each_its_name_and_pod_cidr(tmp_path: Path, sink) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for name in ("web", "db"):
        (manifests / f"{name}.yaml").write_text(POD.format(name=name, policy="Always", ctr="main", cmd="sleep 600"))
    proc = subprocess.Popen(component_argv("cristack", "up", "--nodes", str(NODES), "--manifests", str(manifests),
                                           "--otlp-endpoint", sink.addresses.otlp_endpoint),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "COLUMNS": "80"})
    out = Lines(proc)
    try:
        nodes = {}
        for i in range(1, NODES + 1):
            m = out.wait(rf"^  node-{i}: pod CIDR (\S+), CRI endpoint (\S+)$")
            nodes[f"node-{i}"] = (ipaddress.ip_network(m.group(1)), m.group(2))
        base = Path(out.wait(r"^  logs: +(/\S+)").group(1))
        # Every node runs both pods (no --spread): six pods, each node's IPs from its own block.
        for i in range(1, NODES + 1):
            for pod in ("web", "db"):
                out.wait(rf"^node-{i} \S+ {pod}/main running ")
        ips: dict[str, dict[str, str]] = {name: ready_pod_ips(ep) for name, (_, ep) in nodes.items()}
        for name, (cidr, _) in nodes.items():
            assert set(ips[name]) == {"web", "db"}, ips
            assert all(ipaddress.ip_address(ip) in cidr for ip in ips[name].values()), (name, cidr, ips[name])
        every_ip = [ip for node in ips.values() for ip in node.values()]
        assert len(set(every_ip)) == len(every_ip) == 2 * NODES, f"a pod IP is shared: {ips}"
        assert len({cidr for cidr, _ in nodes.values()}) == NODES

        # One endpoint, three nodes: each pod's start trace carries its node's name on every component's spans.
        def started_on(store) -> dict[str, set[str]]:
            got = defaultdict(set)
            for span in store.spans():
                if span.name == "syncPod" and span.attributes.get("k8s.pod.update_type") == "create":
                    got[span.resource.get("host.name")].add(span.attributes.get("k8s.pod"))
            return got

        assert sink.store.wait(lambda st: all(len(started_on(st)[n]) == 2 for n in nodes), 30), started_on(sink.store)
        hosts_by_trace = defaultdict(set)
        for span in sink.store.spans():
            assert span.resource.get("host.name") in nodes, (span.service, span.name, span.resource)
            hosts_by_trace[span.trace_id].add(span.resource["host.name"])
        assert all(len(hosts) == 1 for hosts in hosts_by_trace.values()), "a trace crosses nodes"
        assert {s.service for s in sink.store.spans()} >= {"kubelet", "crio", "conmonrs"}
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(30)
    assert rc == 0, "\n".join(out.lines)
    assert not base.exists(), "the nodes' temp dir is removed on exit"
    assert sorted(p.name for p in manifests.iterdir()) == ["db.yaml", "node-1", "node-2", "node-3", "web.yaml"]


def test_demo_spreads_pods_across_nodes(tmp_path: Path) -> None:
    pods = []
    for name in ("one", "two", "three"):
        pods += ["--pod", str(tmp_path / f"{name}.yaml")]
        (tmp_path / f"{name}.yaml").write_text(POD.format(name=name, policy="Never", ctr="main", cmd=f"echo {name}"))
    done = subprocess.run(component_argv("cristack", "demo", "--nodes", "2", "--spread", *pods),
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "100"})
    assert done.returncode == 0, done.stdout + done.stderr
    # Dealt round-robin: one and three on node-1, two on node-2; each pod once, its output and trace on its node.
    assert "running one.yaml, three.yaml on node-1 with fake-kubelet --runonce" in done.stdout
    assert "running two.yaml on node-2 with fake-kubelet --runonce" in done.stdout
    assert sorted(re.findall(r"^\[(node-\d) (\w+)/main\] (\w+)$", done.stdout, re.M)) == [
        ("node-1", "one", "one"), ("node-1", "three", "three"), ("node-2", "two", "two")]
    starts = re.findall(r"^default/(\w+) on (node-\d) start: [0-9a-f]{32}$", done.stdout, re.M)
    assert sorted(starts) == [("one", "node-1"), ("three", "node-1"), ("two", "node-2")], done.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["--nodes", "2", "--node-name", "edge-1"], "--node-name and --node-index describe one node"),
    (["--node-index", "256"], "node index 256 is outside cluster CIDR 10.244.0.0/16, which holds 256 /24 blocks"),
    (["--nodes", "2", "--cluster-cidr", "10.244.0.0/24"], "node CIDR mask /24 does not fit cluster CIDR"),
    (["--cluster-cidr", "10.0.0.0/8"], "--cluster-cidr and --node-cidr-mask-size cut pod CIDRs for --nodes N"),
    (["--nodes", "0"], "'0': a bound is above zero"),
    (["--node-name", "Node_1"], "'Node_1' is not a node name"),
])
def test_impossible_node_options_are_refused_before_anything_starts(args, says, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["up", *args])
    assert exit_.value.code == 2
    assert says in " ".join(capsys.readouterr().err.split()), args
