"""A real collector pipeline in front of the sink: Jaeger v2 as an OpenTelemetry Collector, its ``otlp``
receiver fanning out to the Collector's ``otlphttp`` exporter (protobuf with gzip, its default; and JSON) and
its ``otlp`` gRPC exporter, each pointed at its own ``cristack sink``. The stack's traces must arrive intact
by every path: the same trace ids, span ids, parents, attributes, events and resources."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cristack.harness import expectations
from cristack.harness.jaeger import jaeger_binary
from cristack.harness.sink.receiver import Sink
from cristack.harness.sink.store import Span, SpanStore
from cristack.harness.stack import example
from tests.conftest import IN_CI
from tests.support.collector import start_collector


@pytest.fixture
def sinks() -> Iterator[dict[str, Sink]]:
    started = {name: Sink() for name in ("otlphttp", "otlphttp/json", "otlp")}
    for s in started.values():
        s.start()
    yield started
    for s in started.values():
        s.stop()


def intact(spans: list[Span]) -> set[tuple]:
    """Everything a span carries that no hop may change."""
    return {(s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.service, s.scope, s.start, s.end,
             s.status, s.status_message, repr(sorted(s.attributes.items())),
             repr([(e.name, e.time, sorted(e.attributes.items())) for e in s.events]),
             repr(sorted(s.resource.items()))) for s in spans}


def start_trace(store: SpanStore) -> list[Span]:
    for trace_id in store.trace_ids():
        spans = store.trace(trace_id)
        if any(s.name == "syncPod" and not s.parent_span_id and s.attributes.get("k8s.pod.update_type") == "create"
               for s in spans):
            return spans
    return []


def test_stack_traces_arrive_intact_through_a_collector(tmp_path, make_stack, sinks) -> None:
    binary = jaeger_binary()
    if binary is None:
        msg = "the jaeger binary was not found; run `make tools`"
        pytest.fail(f"CI=true: {msg}") if IN_CI else pytest.skip(msg)
    collector = start_collector(binary, tmp_path / "collector", {
        "otlphttp": f"    endpoint: http://{sinks['otlphttp'].addresses.http}\n    compression: gzip\n",
        "otlphttp/json": f"    endpoint: http://{sinks['otlphttp/json'].addresses.http}\n    encoding: json\n",
        "otlp": f"    endpoint: {sinks['otlp'].addresses.grpc}\n    tls:\n      insecure: true\n",
    })
    try:
        stack = make_stack(otlp_endpoint=collector.otlp_endpoint, runtime_type="pod")
        stack.add_manifest(example("pods", "hello.yaml"))
        assert stack.start(runonce=True).popen.wait(60) == 0, stack.logs()["kubelet"][-2000:]
        stack.stop()  # a clean stop flushes the components' exporters into the collector
        kubelet_log = stack.logs()["kubelet"]

        def arrived() -> bool:
            views = [intact(s.store.spans()) for s in sinks.values()]
            trace = start_trace(sinks["otlp"].store)
            return (bool(views[0]) and all(v == views[0] for v in views)
                    and expectations.expected_services("pod") <= {s.service for s in trace})

        deadline = time.monotonic() + 60
        while not arrived() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        collector.stop()
    grpc_view = intact(sinks["otlp"].store.spans())
    for name in ("otlphttp", "otlphttp/json"):
        got = intact(sinks[name].store.spans())
        assert got == grpc_view, (f"{name} differs from otlp (gRPC): only via {name}: {sorted(got - grpc_view)[:3]}; "
                                  f"only via otlp: {sorted(grpc_view - got)[:3]}\n{collector.log_path.read_text()}")
    trace = start_trace(sinks["otlphttp"].store)
    assert trace, "the pod's start trace came through"
    assert all(ok for _, ok in expectations.check(trace, "pod")), expectations.diff(trace, "pod")
    assert all(len(s.trace_id) == 32 and len(s.span_id) == 16 for s in sinks["otlphttp/json"].store.spans()), \
        "the Collector's OTLP/JSON ids read as 16- and 8-byte ids"
    # The trace id the kubelet logged for the pod is the one that arrived, by all three paths.
    assert f"trace_id={trace[0].trace_id}" in kubelet_log
    assert all(s.store.trace(trace[0].trace_id) for s in sinks.values())
