"""``--runtime containerd`` wherever a user picks the runtime: ``cristack demo``, ``up`` and ``load`` as a user runs
them (real processes: fake-kubelet, fake-containerd and a shim per pod), a mix of runtimes over several nodes,
and the errors for a runtime that does not exist or an option that does not fit it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cristack.harness import expectations
from cristack.harness.procs import component_argv, processes_under
from cristack.harness.sink.store import flatten
from cristack.otel import otlpjson
from fake_containerd.runtime.shim import SHIM_MODULE
from tests.conftest import free_port
from tests.integration.test_up_events import POD, TRACE, Lines, in_sink

SHIM = re.compile(r"^containerd-shim-[0-9a-f]{64}$")


def cristack(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(component_argv("cristack", *args), capture_output=True, text=True, timeout=timeout)


def start_traces(json_file: Path) -> list[list]:
    spans = flatten(otlpjson.loads(json_file.read_text()))
    roots = [s for s in spans if s.name == "syncPod" and s.attributes.get("k8s.pod.update_type") == "create"]
    return [[s for s in spans if s.trace_id == root.trace_id] for root in roots]


def test_demo_on_containerd_prints_one_trace_across_kubelet_containerd_and_the_shim(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    proc = cristack("demo", "--runtime", "containerd", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("cristack demo: fake-kubelet → fake-containerd → shim (runtime containerd)"), \
        proc.stdout[:300]
    assert "[hello/hello] hi" in proc.stdout and "[hello/hello-tty] hi from a terminal" in proc.stdout
    tree = proc.stdout.split("traces", 1)[1]
    assert len(re.findall(r"^syncPod default/hello · trace [0-9a-f]{32}$", tree, re.M)) == 1, "one start trace"
    services = {line.split()[0] for line in tree.splitlines() if line[:1].isalpha()}
    assert {"kubelet", "containerd", "service"} <= services, services
    shims = {s for s in services if s.startswith("containerd-shim-")}
    assert len(shims) == 1 and next(iter(shims)).endswith("…"), f"one pod, one shim, its id cut: {shims}"
    for service, name in (("kubelet", "syncPod"), ("containerd", "cri.sandbox.run"),
                          ("containerd", "container.NewTask"), ("containerd-shim-", "containerd.task.v3.Task/Create")):
        assert any(line.startswith(service) and name in line for line in tree.splitlines()), (service, name)

    (trace,) = start_traces(out)
    every = {s.service for s in trace}
    assert {"kubelet", "containerd"} <= every and len([s for s in every if SHIM.match(s)]) == 1, every
    assert all(ok for _, ok in expectations.check(trace, "containerd")), expectations.diff(trace, "containerd")
    by_id = {s.span_id: s for s in trace}
    # Where the context crosses: kubelet CLIENT -> containerd SERVER (gRPC), containerd CLIENT -> shim SERVER (ttrpc).
    crossings = {(by_id[s.parent_span_id].service, by_id[s.parent_span_id].kind, s.kind) for s in trace
                 if s.parent_span_id in by_id and by_id[s.parent_span_id].service != s.service}
    assert {(p, k, c) for p, k, c in crossings} == {("kubelet", "CLIENT", "SERVER"), ("containerd", "CLIENT", "SERVER")}


def test_demo_mixes_runtimes_over_nodes(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    proc = cristack("demo", "--nodes", "2", "--runtime", "crio,containerd", "--json", str(out), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by_node = {}
    for trace in start_traces(out):
        root = next(s for s in trace if s.name == "syncPod")
        by_node[root.resource["host.name"]] = {expectations.role(s.service) for s in trace}
    assert by_node == {"node-1": {"kubelet", "crio", "conmonrs"},
                       "node-2": {"kubelet", "containerd", "containerd-shim"}}, by_node
    spans = flatten(otlpjson.loads(out.read_text()))
    assert {s.resource.get("host.name") for s in spans if SHIM.match(s.service)} == {"node-2"}, \
        "the shims carry their node's host.name too"


@pytest.mark.parametrize(("args", "says"), [
    (["demo", "--runtime", "containred"], "argument --runtime: no runtime 'containred'; did you mean containerd?"),
    (["demo", "--runtime", "cri-o"], "did you mean crio?"),
    (["up", "--runtime", "containerd", "--runtime-type", "oci"], "--runtime-type is CRI-O's"),
    (["demo", "--runtime", "crio,containerd"], "give --nodes 2 or more"),
    (["up", "--runtime", "crio,containerd"], "give --nodes 2 or more"),
    (["load", "--runtime", "containerd,crio", "--pods-per-second", "1", "--duration", "1", "--otlp-endpoint",
      "127.0.0.1:4317"], "give --nodes 2 or more"),
    (["load", "--runtime", "docker", "--pods-per-second", "1", "--duration", "1", "--otlp-endpoint",
      "127.0.0.1:4317"], "no runtime 'docker'"),
])
def test_a_runtime_that_does_not_fit_is_refused_before_anything_starts(args: list[str], says: str) -> None:
    proc = cristack(*args, timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_up_on_containerd_shows_pod_events_and_a_sigkill_leaves_no_shim(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "web.yaml").write_text(POD.format(name="web", policy="Always", ctr="server", cmd="sleep 600"))
    http_port = free_port()
    proc = subprocess.Popen(component_argv("cristack", "up", "--runtime", "containerd", "--manifests", str(manifests),
                                           "--http-port", str(http_port)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "COLUMNS": "80"})
    out = Lines(proc)
    base = None
    try:
        out.wait(r"^cristack up: running fake-kubelet → fake-containerd → shim \(runtime containerd\)$")
        out.wait(r"^  CRI endpoint: +unix://\S+/containerd\.sock$")
        base = Path(out.wait(r"^  logs: +(/\S+)").group(1))
        trace_id = out.wait(r"^\d\d:\d\d:\d\d web/server running +" + TRACE).group(1)
        assert in_sink(http_port, trace_id), f"trace {trace_id} is not in the sink"
        assert len(processes_under(base, SHIM_MODULE)) == 1, "the pod's shim"
        # cristack up killed outright: its kubelet and fake-containerd get SIGTERM (their parent-death signal), and
        # fake-containerd's clean stop takes the shim (and its container) with it.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
        deadline = time.monotonic() + 60
        while processes_under(base) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_under(base) == [], "nothing of the node runs after cristack up was SIGKILLed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)  # a SIGKILLed `up` leaves its temp dir


def test_load_on_containerd_briefly(sink) -> None:
    proc = cristack("load", "--runtime", "containerd", "--pods-per-second", "2", "--duration", "3", "--pod-lifetime",
                    "2", "--interval", "1", "--otlp-endpoint", sink.addresses.otlp_endpoint)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "node-1 (10.244.1.0/24, containerd)" in proc.stdout, proc.stdout
    started = int(re.search(r"^cristack load: .* started (\d+) ", proc.stdout, re.M).group(1))
    assert started >= 1, proc.stdout
    spans = sink.store.spans()
    assert {expectations.role(s.service) for s in spans} >= {"kubelet", "containerd", "containerd-shim"}
    assert {s.resource.get("host.name") for s in spans} == {"node-1"}
    # The report counts what the node's kubelet, containerd and its shims (one per pod) exported.
    exported = int(re.search(r"^  spans exported ([\d,]+) ", proc.stdout, re.M).group(1).replace(",", ""))
    dropped = int(re.search(r"dropped ([\d,]+) \(export failed", proc.stdout).group(1).replace(",", ""))
    counted = sum(expectations.role(s.service) in ("kubelet", "containerd", "containerd-shim") for s in spans)
    assert exported <= counted <= exported + dropped and exported > sum(s.service == "kubelet" for s in spans), \
        proc.stdout
    # Every load pod's start went through containerd into a shim: the pods' IPs come from the node's pod CIDR.
    ips = {s.attributes["sandbox.ip"] for s in spans if s.name == "cni.setup_pod_network"}
    assert ips and all(ip.startswith("10.244.1.") for ip in ips), ips
