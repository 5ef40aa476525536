"""The compose file we ship is the file we test: each of our compose services' commands runs
here as a local process, with compose's volumes mapped to temp dirs, its bind mounts to the
repository's files and service hostnames to loopback, pointed at the test Jaeger; the traces
must arrive as in the Jaeger e2e suite, and every healthcheck must pass."""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

from cristack.harness import expectations
from cristack.harness.assertions import pod_start, spans_from
from cristack.harness.procs import component_argv, start
from cristack.wire.endpoints import free_ports
from tests.support.composefile import LocalMapping, load, mounts
from tests.support.pace import Stopwatch, allowance

REPO = Path(__file__).resolve().parents[2]


def argv_of(svc: dict) -> list[str]:
    cmd = svc["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def test_compose_services_deliver_traces_to_jaeger(jaeger, tmp_path):
    compose = load(REPO / "compose.yaml")
    (kubelet_port,) = free_ports(1)
    mapping = LocalMapping(tmp_path, REPO, hosts={"jaeger:4317": jaeger.otlp_endpoint}, ports={10255: kubelet_port})
    procs = []
    started_in = [0.0]  # each service's start to its passing healthcheck: the machine's pace (tests/support/pace.py)
    try:
        for name in ("conmon", "crio", "kubelet"):  # compose's depends_on order
            svc = compose["services"][name]
            for m in mounts(svc):
                if m.is_bind and (REPO / m.source).is_file():
                    mapping.rewrite_file(REPO / m.source, svc, name)  # config files name container paths
            argv = [mapping.text(a, svc, name) for a in argv_of(svc)]
            watch = Stopwatch()
            procs.append(start(argv[0], argv[1:], tmp_path / f"{name}.log", wait=False))
            check = [mapping.text(a, svc, name) for a in svc["healthcheck"]["test"][2:]]
            deadline = time.monotonic() + 20
            while subprocess.run(component_argv("cristack", *check), capture_output=True).returncode != 0:
                assert procs[-1].popen.poll() is None, procs[-1].log_text()
                assert time.monotonic() < deadline, f"{name} healthcheck {check} never passed:\n{procs[-1].log_text()}"
                time.sleep(0.2)
            started_in.append(watch.lap())
        def web(t):
            return any(s.name == "syncPod" and s.attributes.get("k8s.pod.name") == "web"
                       and s.attributes.get("k8s.pod.update_type") == "create" for s in t)

        # nginx runs until the stack stops: the spans of its exit come later
        trace = jaeger.backend.wait_for_trace(spans_from("kubelet", "crio", "conmonrs"), match=web, timeout=40)
        crio = next(s for s in trace if s.service == "crio")
        assert crio.resource["process.pid"] == procs[1].pid, "the trace came from the compose-defined crio"
    finally:
        for proc in reversed(procs):
            took = proc.stop()
            assert took <= allowance(2.0, max(started_in)), f"{proc.name} took {took:.1f}s to stop"
    # The web pod's nginx runs until its monitor stops it: only then do read_loop and watch end.
    trace = jaeger.backend.wait_for_trace(pod_start("pod"), match=web, timeout=15)
    assert all(ok for _, ok in expectations.check(trace, "pod")), expectations.diff(trace, "pod")
