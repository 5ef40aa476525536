"""The fleet's exporter against a real gRPC server in the test process: every span ends in exactly one count,
exported or dropped with its reason (the collector's partial success, the gRPC status of a failed export, a full
queue), and ``offer`` never waits."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from cristack.harness.fleet.export import QUEUE_FULL, REJECTED, SHUTDOWN, Exporter

SERVICE, METHOD = "opentelemetry.proto.collector.trace.v1.TraceService", "Export"


@pytest.fixture
def server():
    """A collector whose answer the test sets: bytes, or a grpc.StatusCode to fail with; ``gate`` holds calls."""
    state = {"answer": b"", "gate": threading.Event(), "calls": 0}
    state["gate"].set()

    def export(request: bytes, context: grpc.ServicerContext) -> bytes:
        state["calls"] += 1
        state["gate"].wait(10)
        if isinstance(state["answer"], grpc.StatusCode):
            context.abort(state["answer"], "no")
        return state["answer"]

    srv = grpc.server(ThreadPoolExecutor(max_workers=4))
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(export)}),))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield f"127.0.0.1:{port}", state
    state["gate"].set()
    srv.stop(0)


def _settle(exporter: Exporter, requests: int) -> None:
    deadline = time.monotonic() + 10
    while exporter.snapshot().requests < requests and time.monotonic() < deadline:
        time.sleep(0.01)


def test_spans_taken_are_exported_and_a_partial_success_counts_the_rejected(server):
    endpoint, state = server
    ex = Exporter(endpoint)
    ex.offer(b"", 10)
    _settle(ex, 1)
    state["answer"] = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=3, error_message="too old")).SerializeToString()
    ex.offer(b"", 10)
    _settle(ex, 2)
    final = ex.shutdown()
    assert final.exported == 17 and final.dropped == {REJECTED: 3}


@pytest.mark.parametrize("code", [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE])
def test_a_failed_export_is_counted_under_its_status(server, code):
    endpoint, state = server
    state["answer"] = code
    ex = Exporter(endpoint)
    ex.offer(b"", 5)
    _settle(ex, 1)
    assert ex.shutdown().dropped == {code.name: 5}


def test_a_full_queue_drops_at_once_and_shutdown_counts_what_it_could_not_send(server):
    endpoint, state = server
    state["gate"].clear()  # the collector takes the first requests and answers nothing yet
    ex = Exporter(endpoint, max_queue_spans=100, senders=1)
    taken: list[bool] = []
    offering = threading.Thread(target=lambda: taken.extend(ex.offer(b"", 60) for _ in range(4)))
    offering.start()
    offering.join(5)
    # Done while the collector still holds its first request: offering never waits for it.
    assert not offering.is_alive() and not state["gate"].is_set()
    assert len(taken) == 4 and taken.count(False) >= 2  # one in flight, one queued, two that do not fit
    final = ex.shutdown(budget=0.3)
    assert final.exported == 0
    assert final.dropped[QUEUE_FULL] == 60 * taken.count(False)
    assert final.dropped[SHUTDOWN] == 60 * taken.count(True)
    assert final.lost == 240
