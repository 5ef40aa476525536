"""End to end against a real Jaeger v2 (built by `make tools`), through the pytest plugin's
fixtures: what a user of the plugin writes for their own pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import pytest

from cristack.harness import expectations
from cristack.harness.assertions import pod_start, pod_uid, spans_from
from cristack.harness.procs import component_argv
from cristack.harness.selectors import select
from cristack.harness.stack import example
from tests.support.pace import allowance, timed

HELLO = example("pods", "hello.yaml")
SLEEPER = """apiVersion: v1
kind: Pod
metadata: {{name: {name}, uid: {uid}}}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers: [{{name: c, image: busybox, command: [sleep, "3600"]}}]
"""


def run_pod(stack, manifest=HELLO) -> str:
    uid = stack.add_unique_manifest(manifest)
    assert stack.start_kubelet(runonce=True).popen.wait(30) == 0, stack.logs()["kubelet"][-2000:]
    return uid


def ingested_so_far(jaeger, timeout: float = 15.0) -> None:
    """Waits until Jaeger has taken in what was sent before now: a marker span sent after the stack stopped (its
    processes export everything before they exit) becomes queryable after what reached Jaeger before it."""
    import uuid

    from cristack.otel.sampler import TracingSettings
    from cristack.otel.telemetry import Telemetry

    service = f"marker-{uuid.uuid4().hex[:8]}"
    tel = Telemetry(service, TracingSettings(True, jaeger.otlp_endpoint, 1_000_000))
    with tel.tracer("marker").start_as_current_span("marker"):
        pass
    tel.shutdown(5)
    deadline = time.monotonic() + timeout
    while service not in jaeger.query.services():
        assert time.monotonic() < deadline, "Jaeger never showed the marker span"
        time.sleep(0.1)


def spans_of_process(jaeger, service: str, pid: int) -> list:
    return [s for t in jaeger.query.traces(service, limit=1000) for s in t if s.resource.get("process.pid") == pid]


def test_default_pod_trace_in_jaeger(jaeger, cri_stack):
    stack = cri_stack(otlp_endpoint=jaeger.otlp_endpoint)
    uid = run_pod(stack)
    trace = jaeger.backend.wait_for_trace(pod_start("pod"), match=pod_uid(uid))
    assert {"kubelet", "crio", "conmonrs"} <= {s.service for s in trace}
    assert all(ok for _, ok in expectations.check(trace, "pod")), expectations.diff(trace, "pod")
    # Jaeger's own JSON: CHILD_OF references, crio log events as logs with log.* fields.
    with urllib.request.urlopen(f"{jaeger.query_url}/api/traces/{trace[0].trace_id}", timeout=5) as resp:
        raw = json.load(resp)["data"][0]
    by_id = {s["spanID"]: s for s in raw["spans"]}
    server = next(s for s in raw["spans"] if s["operationName"] == "runtime.v1.RuntimeService/RunPodSandbox"
                  and raw["processes"][s["processID"]]["serviceName"] == "crio")
    assert server["references"][0]["refType"] == "CHILD_OF"
    assert by_id[server["references"][0]["spanID"]]["operationName"] == "runtime.v1.RuntimeService/RunPodSandbox"
    run = next(s for s in raw["spans"] if s["operationName"].endswith("(*Server).runPodSandbox"))
    fields = {f["key"]: f["value"] for f in run["logs"][0]["fields"]}
    assert fields["event"] == "log" and fields["log.severity"] == "INFO"
    assert fields["log.message"] == "Running pod sandbox: default/hello/POD"
    wait = next(s for s in trace if s.name == "wait_for_exit_code")
    exited = next(e for e in wait.events if e.name.startswith("Exited"))
    assert exited.name == "Exited 0" and exited.attributes["level"] == "DEBUG"


@pytest.mark.parametrize("case", ["crio-follows-parent", "no-kubelet-tracing", "crio-tracing-off"])
def test_sampling_matrix_in_jaeger(jaeger, cri_stack, case):
    options = {
        "crio-follows-parent": {"crio_sampling_per_million": 0},
        "no-kubelet-tracing": {"kubelet_tracing": False, "crio_sampling_per_million": 0},
        "crio-tracing-off": {"crio_tracing": False, "conmon_tracing": False},
    }[case]
    stack = cri_stack(otlp_endpoint=jaeger.otlp_endpoint, **options)
    uid = run_pod(stack)
    crio_pid = stack.crio.pid
    if case == "crio-follows-parent":
        trace = jaeger.backend.wait_for_trace(spans_from("kubelet", "crio", "conmonrs"), match=pod_uid(uid))
    elif case == "no-kubelet-tracing":
        stack.stop()
        ingested_so_far(jaeger)
        assert not [t for t in jaeger.query.traces("kubelet", limit=1000) if select(t, pod_uid(uid))]
        assert spans_of_process(jaeger, "crio", crio_pid) == []
    else:
        trace = jaeger.backend.wait_for_trace(spans_from("kubelet"), match=pod_uid(uid))
        stack.stop()
        ingested_so_far(jaeger)
        assert {s.service for s in trace} == {"kubelet"}
        assert {"syncPod", "runtime.v1.RuntimeService/RunPodSandbox", "runtime.v1.RuntimeService/CreateContainer",
                "runtime.v1.RuntimeService/StartContainer"} <= {s.name for s in trace}
        assert spans_of_process(jaeger, "crio", crio_pid) == []


@pytest.mark.parametrize("runtime_type", ["oci", "pod"])
def test_runtime_types_in_jaeger(jaeger, cri_stack, runtime_type):
    stack = cri_stack(otlp_endpoint=jaeger.otlp_endpoint, runtime_type=runtime_type)
    uid = run_pod(stack)
    trace = jaeger.backend.wait_for_trace(pod_start(runtime_type), match=pod_uid(uid))
    assert all(ok for _, ok in expectations.check(trace, runtime_type))
    has_conmon = any(s.service == "conmonrs" for s in trace)
    assert has_conmon is (runtime_type == "pod")


def sleeper(stack, name: str) -> str:
    import uuid

    uid = str(uuid.uuid4())
    (stack.manifests / f"{name}.yaml").write_text(SLEEPER.format(name=name, uid=uid))
    return uid


def test_jaeger_started_after_the_stack(jaeger_factory, cri_stack):
    j = jaeger_factory(launch=False)
    with timed() as up:  # the runtime's start: the machine's pace for the stop budget (tests/support/pace.py)
        stack = cri_stack(otlp_endpoint=j.otlp_endpoint, log_level="debug")
    kubelet = stack.start_kubelet()
    early = sleeper(stack, "early")
    # The pod starts while nothing listens for its spans. Once its container runs, its start's spans have ended;
    # each exporter works through its batches one at a time, so two more failed batches in both the kubelet's and
    # crio's logs mean the batches holding them have been tried and dropped.
    from tests.support.kubelet import containers, wait_for

    wait_for("the early pod's container running", lambda: [c for c in containers(stack, "early") if c.state == 1],
             timeout=30)
    dropped = {name: stack.logs()[name].count("dropped ") for name in ("kubelet", "crio")}
    wait_for("two more failed exports in the kubelet and crio",
             lambda: all(stack.logs()[n].count("dropped ") >= dropped[n] + 2 for n in dropped), timeout=30)
    assert kubelet.popen.poll() is None
    j.restart()  # now Jaeger comes up
    late = sleeper(stack, "late")
    j.backend.wait_for_trace(spans_from("kubelet", "crio", "conmonrs"), match=pod_uid(late), timeout=30)
    assert not [t for t in j.query.traces("kubelet", limit=1000) if select(t, pod_uid(early))
                and any(s.attributes.get("k8s.pod.update_type") == "create" for s in t)], \
        "spans from before Jaeger came up were dropped, not queued forever"
    took = stack.stop()
    assert max(took.values()) <= allowance(2.0, up.seconds), took


def test_jaeger_stopped_while_pods_run(jaeger_factory, cri_stack):
    j = jaeger_factory()
    with timed() as up:
        stack = cri_stack(otlp_endpoint=j.otlp_endpoint)
    stack.start_kubelet()
    first = sleeper(stack, "first")
    j.backend.wait_for_trace(spans_from("kubelet", "crio", "conmonrs"), match=pod_uid(first), timeout=30)
    j.stop()
    sleeper(stack, "second")
    import grpc

    from cristack.wire.pb.runtime.v1 import api_pb2 as pb
    from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc

    deadline = time.monotonic() + 20
    running: list[str] = []
    with grpc.insecure_channel(stack.crio_endpoint) as ch:
        rt = pbgrpc.RuntimeServiceStub(ch)
        while time.monotonic() < deadline and len(running) < 2:
            running = [c.id for c in rt.ListContainers(pb.ListContainersRequest()).containers
                       if c.state == pb.CONTAINER_RUNNING]
            time.sleep(0.1)
    assert len(running) == 2, "the second pod runs although Jaeger is gone"
    took = stack.stop()
    assert max(took.values()) <= allowance(2.0, up.seconds), took


def test_cristack_check_passes_and_names_missing_edges(jaeger):
    ok = subprocess.run(component_argv("cristack", "check", "--jaeger", jaeger.query_url, "--otlp-endpoint",
                                       jaeger.otlp_endpoint), capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS: all" in ok.stdout and "FAIL" not in ok.stdout
    bad = subprocess.run(component_argv("cristack", "check", "--jaeger", jaeger.query_url, "--otlp-endpoint",
                                        jaeger.otlp_endpoint, "--no-crio-tracing"),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "FAIL" in bad.stdout and "conmonrs-client: CreateContainer" in bad.stdout
    assert "services in the trace: ['kubelet']" in bad.stdout
    unreachable = subprocess.run(component_argv("cristack", "check", "--jaeger", "http://127.0.0.1:9"),
                                 capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 2 and "no Jaeger query API answers" in unreachable.stderr


def test_cristack_check_on_containerd_checks_containerds_edges(jaeger):
    """`cristack check --runtime containerd`: the pod runs on fake-containerd and its shim, and the table holds
    containerd's pod-start edges (the shim's SERVER spans under containerd's CLIENT spans); with the runtime's
    tracing off only the kubelet's spans arrive and the shim's edges are named missing. Two runtimes for one node
    is a mistake."""
    wide = {**os.environ, "COLUMNS": "300"}  # the table's rows on one line each
    ok = subprocess.run(component_argv("cristack", "check", "--jaeger", jaeger.query_url, "--otlp-endpoint",
                                       jaeger.otlp_endpoint, "--runtime", "containerd"),
                        capture_output=True, text=True, timeout=120, env=wide)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "fake-kubelet → fake-containerd → shim" in ok.stdout and "PASS: all" in ok.stdout
    assert "containerd-shim: containerd.task.v3.Task/Create" in ok.stdout and "FAIL" not in ok.stdout
    bad = subprocess.run(component_argv("cristack", "check", "--jaeger", jaeger.query_url, "--otlp-endpoint",
                                        jaeger.otlp_endpoint, "--runtime", "containerd", "--no-crio-tracing"),
                         capture_output=True, text=True, timeout=120, env=wide)
    assert bad.returncode == 1 and "services in the trace: ['kubelet']" in bad.stdout
    assert "missing: containerd: containerd.task.v3.Task/Create -> containerd-shim" in bad.stdout.replace("→", "->")
    two = subprocess.run(component_argv("cristack", "check", "--jaeger", jaeger.query_url, "--runtime",
                                        "crio,containerd"), capture_output=True, text=True, timeout=60)
    assert two.returncode == 2 and "one node, one runtime" in two.stderr


def test_cristack_check_under_traceparent_links_the_pod_start(jaeger):
    """A CI job's TRACEPARENT: the pod start `cristack check` runs is a child of that span in Jaeger (crio's and
    conmon-rs's spans in the same trace), and the printed line names the trace and links it in the UI."""
    import secrets

    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)  # fresh: the session's Jaeger keeps old runs
    env = {**os.environ, "TRACEPARENT": f"00-{trace_id}-{parent}-01"}
    ok = subprocess.run(component_argv("cristack", "check", "--jaeger", jaeger.query_url, "--otlp-endpoint",
                                       jaeger.otlp_endpoint, "--jaeger-ui", "http://ui.example:16686/"),
                        capture_output=True, text=True, timeout=120, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS: all" in ok.stdout
    assert f"pod start: trace {trace_id}  http://ui.example:16686/trace/{trace_id}" in ok.stdout, ok.stdout
    trace = jaeger.query.trace(trace_id)
    [start] = [s for s in trace if s.name == "syncPod" and s.attributes.get("k8s.pod.update_type") == "create"]
    assert (start.trace_id, start.parent_span_id) == (trace_id, parent)
    assert {"kubelet", "crio", "conmonrs"} <= {s.service for s in trace}
