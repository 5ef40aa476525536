"""One pod start, one trace across kubelet, crio and conmonrs; the sampling matrix; export
that never blocks. Three real processes and the OTLP sink on real sockets."""

from __future__ import annotations

import pytest

from cristack.harness import expectations
from cristack.harness.assertions import POD_START_SYNC, Expected, Trace, pod_start, spans_from
from cristack.harness.backends import JaegerBackend
from cristack.harness.stack import example
from tests.support.pace import allowance, timed

CRIO_FN = expectations.CRIO_FN


def run_hello(stack, timeout: float = 30) -> int:
    stack.add_manifest(example("pods", "hello.yaml"))
    stack.start_runtime()
    rc = stack.start_kubelet(runonce=True).popen.wait(timeout)
    return rc


def started_runtime(stack) -> float:
    """Starts crio and conmon; the seconds that took, the machine's pace for stop budgets (tests/support/pace.py)."""
    with timed() as up:
        stack.start_runtime()
    return up.seconds


def pod_trace(stack, sink, shape: Expected) -> Trace:
    """The pod's start trace through the sink's Jaeger query API, once the stack has stopped: each component
    exports what it holds before it exits, and the sink stores a request before it answers, so the trace is
    whole (no quiet period to guess)."""
    stack.stop()
    return JaegerBackend.kubelet_syncs(sink.addresses.query_url).wait_for_trace(shape, match=POD_START_SYNC,
                                                                                timeout=15)


def one(spans, service: str, name: str):
    found = [s for s in spans if s.service == service and s.name == name]
    assert found, f"no {service}: {name} in trace; have {sorted({(s.service, s.name) for s in spans})}"
    return found[0]


def parent_of(spans, span):
    return next((s for s in spans if s.span_id == span.parent_span_id), None)


def test_pod_start_is_one_trace_across_three_processes(make_stack, sink):
    stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint)
    assert run_hello(stack) == 0
    trace = pod_trace(stack, sink, pod_start("pod"))
    rows = expectations.check(trace, "pod")
    assert all(ok for _, ok in rows), expectations.diff(trace, "pod")

    root = one(trace, "kubelet", "syncPod")
    assert root.parent_span_id == ""
    assert root.attributes["k8s.pod.name"] == "hello"
    assert root.attributes["k8s.namespace.name"] == "default"
    assert root.attributes["k8s.pod"] == "default/hello"
    assert root.attributes["k8s.pod.update_type"] == "create"
    assert root.attributes["k8s.pod.uid"]
    assert root.scope == "k8s.io/kubernetes/pkg/kubelet"

    client = one(trace, "kubelet", "runtime.v1.RuntimeService/RunPodSandbox")
    assert client.kind == "CLIENT"
    # otelgrpc v0.65.0, as vendored by Kubernetes v1.36.3 (recorded in tests/data/real/kubelet/)
    assert client.scope == "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
    assert client.attributes["rpc.system.name"] == "grpc"
    assert client.attributes["rpc.method"] == "runtime.v1.RuntimeService/RunPodSandbox"
    assert client.attributes["rpc.response.status_code"] == "OK"
    assert client.attributes["server.address"] == f"//{stack.crio_socket}"
    assert [e.attributes["rpc.message.type"] for e in client.events if e.name == "message"] == ["SENT", "RECEIVED"]
    server = one(trace, "crio", "runtime.v1.RuntimeService/RunPodSandbox")
    assert server.kind == "SERVER" and parent_of(trace, server) is client
    internal = one(trace, "crio", "/runtime.v1.RuntimeService/RunPodSandbox")
    assert internal.kind == "INTERNAL" and parent_of(trace, internal) is server and internal.scope == "crio"

    run = one(trace, "crio", CRIO_FN + "runPodSandbox")
    logs = [e.attributes for e in run.events if e.name == "log"]
    assert logs[0]["log.message"] == "Running pod sandbox: default/hello/POD"
    assert logs[0]["log.severity"] == "INFO"
    assert logs[0]["name"] == "/runtime.v1.RuntimeService/RunPodSandbox"
    assert len(logs[0]["id"]) == 36
    assert logs[-1]["log.message"].startswith("Ran pod sandbox ")
    # CRI-O 1.36's CreateContainer opens no span of its own: its lines land on the interceptor's.
    create_logs = [e.attributes["log.message"]
                   for e in one(trace, "crio", "/runtime.v1.RuntimeService/CreateContainer").events]
    assert "Creating container: default/hello/hello" in create_logs
    steps = [s for s in trace if s.service == "crio" and s.name.startswith("github.com/cri-o/cri-o/")]
    assert {s.scope for s in steps} == {"go.opentelemetry.io/otel/sdk/tracer"}
    platform = one(trace, "crio", CRIO_FN + "createContainerPlatform")
    assert parent_of(trace, platform).name in ("/runtime.v1.RuntimeService/CreateContainer", CRIO_FN + "runPodSandbox")
    assert not [s for s in trace if s.name in ("conmonrs-client: CreateNamespaces", "conmonrs-client: StartContainer")]
    start_logs = [e.attributes for e in one(trace, "crio", CRIO_FN + "StartContainer").events]
    assert start_logs[-1]["log.message"] == "Started container"
    assert start_logs[-1]["description"] == "default/hello/hello"
    pull = one(trace, "crio", CRIO_FN + "PullImage")
    assert [e.attributes["log.message"] for e in pull.events][0] == "Pulling image: busybox"

    # conmon-rs v0.8.0's spans, nested under the CRI-O call that caused them
    creates = [s for s in trace if s.service == "conmonrs" and s.name == "create_container"]
    assert len(creates) == 2, "one per container of the demo pod"
    for cc in creates:
        assert parent_of(trace, cc).name == "conmonrs-client: CreateContainer"
        assert parent_of(trace, cc).kind == "CLIENT"
        assert parent_of(trace, parent_of(trace, cc)).name == \
            "github.com/cri-o/cri-o/internal/oci.(*Runtime).CreateContainer"
        assert len(cc.attributes["container_id"]) == 64 and len(cc.attributes["uuid"]) == 36
        for key in ("code.file.path", "code.module.name", "code.line.number", "thread.id", "thread.name", "target",
                    "busy_ns", "idle_ns"):
            assert key in cc.attributes, key
    below = {parent_of(trace, s).name + "/" + s.name for s in trace if s.service == "conmonrs" and parent_of(trace, s)}
    # the plain container's output in stdout/stderr spans, the tty container's in one read_loop
    assert {"promise/stdout", "promise/stderr", "promise/read_loop", "promise/watch_grandchild",
            "watch/cgroup_handling", "cgroup_handling/oom_handling_cgroup_v1", "watch/wait_for_exit_code",
            "watch/write_exit_path"} <= below
    wait = one(trace, "conmonrs", "wait_for_exit_code")
    assert [e.name for e in wait.events] == ["Waiting for exit code", "Exited 0"]
    assert wait.events[1].attributes["code.line.number"] == 455
    reads = [e for e in one(trace, "conmonrs", "stdout").events if e.name.startswith("Read ")]
    assert reads and reads[0].name == "Read 3 bytes" and reads[0].attributes["level"] == "TRACE"
    tty_reads = [e.name for e in one(trace, "conmonrs", "read_loop").events]
    assert tty_reads[0] == "Read 20 bytes" and tty_reads[-1] == "Stopping read loop"  # "hi from a terminal\r\n"
    # The readers and the exit watcher outlive the CreateContainer call that started them.
    assert one(trace, "conmonrs", "watch").end > creates[0].end

    # Resources: only what the real components set (no service.version, no SDK attributes but conmon-rs's)
    for svc in ("kubelet", "crio", "conmonrs"):
        span = next(s for s in trace if s.service == svc)
        assert span.resource["host.name"] and "service.version" not in span.resource
        assert ("process.pid" in span.resource) == (svc != "kubelet")


def test_pleg_relists_are_their_own_root_traces(make_stack, sink):
    stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint)
    assert run_hello(stack) == 0
    sink.store.wait(lambda st: any(s.name == "runtime.v1.RuntimeService/ListContainers" and not s.parent_span_id
                                   for s in st.spans()), 10)
    relists = [s for s in sink.store.spans() if s.service == "kubelet" and not s.parent_span_id
               and s.name == "runtime.v1.RuntimeService/ListPodSandbox"]
    assert relists and all(s.kind == "CLIENT" for s in relists)
    # crio serves them under the kubelet's context, so they show in crio as well.
    tid = relists[0].trace_id
    assert {s.service for s in sink.store.trace(tid)} == {"kubelet", "crio"}


def services_in_sync_traces(sink) -> set[str]:
    out: set[str] = set()
    for s in sink.store.spans():
        if s.name == "syncPod":
            out |= {x.service for x in sink.store.trace(s.trace_id)}
    return out


def test_sampling_kubelet_samples_crio_at_zero_follows(make_stack, sink):
    stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint, crio_sampling_per_million=0)
    assert run_hello(stack) == 0
    trace = pod_trace(stack, sink, pod_start("pod"))
    assert {"kubelet", "crio", "conmonrs"} <= {s.service for s in trace}


def test_sampling_no_kubelet_tracing_block_means_no_spans_at_crio_rate_zero(make_stack, sink):
    stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint, kubelet_tracing=False,
                       crio_sampling_per_million=0)
    assert run_hello(stack) == 0
    stack.stop()  # each process exports what it recorded before it exits, and the sink stores it before answering
    assert sink.store.spans() == []


def test_sampling_crio_tracing_off_keeps_the_kubelet_side(make_stack, sink):
    stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint, crio_tracing=False, conmon_tracing=False)
    assert run_hello(stack) == 0
    trace = pod_trace(stack, sink, spans_from("kubelet"))
    assert {s.service for s in trace} == {"kubelet"}
    names = {s.name for s in trace}
    assert {"syncPod", "runtime.v1.RuntimeService/RunPodSandbox", "runtime.v1.RuntimeService/CreateContainer",
            "runtime.v1.RuntimeService/StartContainer"} <= names
    stack.stop()
    assert not [s for s in sink.store.spans() if s.service in ("crio", "conmonrs")]


def test_runtime_type_oci_has_no_conmonrs_spans(make_stack, sink):
    stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint, runtime_type="oci")
    assert run_hello(stack) == 0
    trace = pod_trace(stack, sink, pod_start("oci"))
    rows = expectations.check(trace, "oci")
    assert all(ok for _, ok in rows), expectations.diff(trace, "oci")
    stack.stop()
    assert not [s for s in sink.store.spans() if s.service == "conmonrs"]
    assert not [s for s in sink.store.spans() if s.name.startswith("conmonrs-client")]


def test_collector_down_pod_still_runs_and_processes_stop_quickly(make_stack):
    from tests.conftest import free_port

    stack = make_stack(otlp_endpoint=f"127.0.0.1:{free_port()}")  # nothing listens there
    stack.add_manifest(example("pods", "hello.yaml"))
    up = started_runtime(stack)
    with timed() as ran:
        assert stack.start_kubelet(runonce=True).popen.wait(30) == 0
    # Export never blocks the pod: its run is far from the seconds a blocking exporter would add per batch.
    assert ran.seconds < allowance(15, up), ran.seconds
    stack.start_kubelet()  # a long-running kubelet too, to time its exit
    from tests.support.kubelet import wait_for_relists

    wait_for_relists(stack, 5)  # relist spans exported (and failed) several times: still one warning
    took = stack.stop()
    assert max(took.values()) <= allowance(2.0, up), took
    logs = stack.logs()
    # One warning per process at most (the kubelet log holds two kubelet runs).
    for name, runs in (("crio", 1), ("kubelet", 2), ("conmon", 1)):
        warnings = [line for line in logs[name].splitlines() if "cannot export spans" in line]
        assert 1 <= len(warnings) <= runs, (name, warnings)
        assert "Traceback" not in logs[name]


@pytest.mark.parametrize("header", ["garbage", "00-zzzz-0000-01", "00-" + "0" * 32 + "-" + "b" * 16 + "-01"])
def test_malformed_traceparent_starts_a_new_root(make_stack, sink, header):
    import grpc

    from cristack.wire.pb.runtime.v1 import api_pb2 as pb
    from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc

    stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint, crio_sampling_per_million=1_000_000)
    stack.start_runtime()
    with grpc.insecure_channel(stack.crio_endpoint) as ch:
        v = pbgrpc.RuntimeServiceStub(ch).Version(pb.VersionRequest(), metadata=(("traceparent", header),))
    assert v.runtime_name == "cri-o"
    assert sink.store.wait(lambda st: any(s.name == "runtime.v1.RuntimeService/Version" for s in st.spans()), 5)
    span = next(s for s in sink.store.spans() if s.name == "runtime.v1.RuntimeService/Version")
    assert span.parent_span_id == "" and span.kind == "SERVER"
