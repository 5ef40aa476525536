"""The fleet's live side: the in-process receiver keeps every span as it arrived over OTLP/gRPC (protobuf, flags,
resource), which the captures and the fidelity tests read; and each runtime a catalogue can be captured for starts
its own components."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from cristack.harness.fleet.catalogue import RUNTIMES
from cristack.harness.fleet.live import LIVE_RUNTIMES, receiver
from cristack.harness.stack import Stack


def test_the_receiver_keeps_what_arrives_over_grpc():
    with receiver() as (store, endpoint):
        provider = TracerProvider(resource=Resource.create({"service.name": "kubelet", "host.name": "node-7"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
        with provider.get_tracer("t").start_as_current_span("syncPod"):
            pass
        provider.shutdown()
        kept = store.spans_of("node-7")
    assert [r.span.name for r in kept] == ["syncPod"]
    assert kept[0].resource["service.name"] == "kubelet" and kept[0].span.flags & 0x100  # the flags as sent


def test_every_runtime_of_the_fleet_has_a_live_path(tmp_path):
    assert set(RUNTIMES) <= set(LIVE_RUNTIMES)
    for runtime, options in LIVE_RUNTIMES.items():
        stack = Stack(tmp_path / runtime, options("127.0.0.1:4317", "node-3", "10.0.3.0/24", ()))
        assert stack.opts.runtime == runtime and stack.opts.node_name == "node-3"
        assert stack.cri_socket.name == f"{runtime}.sock"
