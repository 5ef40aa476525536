"""The exporter stats every component keeps: spans exported, failed (dropped), and dropped on a full queue."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from cristack.otel.sampler import TracingSettings
from cristack.otel.stats import STATS_ENV, ExportStats, read_stats
from cristack.otel.telemetry import Telemetry, kubelet_telemetry

ALL = TracingSettings(enabled=True, endpoint="127.0.0.1:1", rate_per_million=1_000_000)


class BlockedExporter(SpanExporter):
    """Holds the first export until ``release`` is set (a collector that stopped answering)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.received = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(30)
        self.received += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


class FailingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


def test_spans_dropped_on_a_full_queue_are_counted() -> None:
    blocked = BlockedExporter()
    tel = Telemetry("kubelet", ALL, exporter=blocked, max_queue=4)
    tracer = tel.tracer("t")
    with tracer.start_as_current_span("first"):
        pass
    assert blocked.entered.wait(10), "the processor never called the exporter"
    # The exporter now hangs: 4 spans fit in the queue, the other 16 have nowhere to go.
    for i in range(20):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    stats = tel.stats()
    assert stats.queue_full == 16
    assert stats.exported == 0
    blocked.release.set()
    tel.shutdown(budget=10)
    final = tel.stats()
    assert final.queue_full == 16
    assert final.exported == 5 == blocked.received  # the first span, then the 4 that were queued
    assert final.dropped == 0


def test_stats_file_is_kept_current_and_final_at_shutdown(tmp_path) -> None:
    path = tmp_path / "crio-stats.json"
    tel = Telemetry("crio", ALL, exporter=FailingExporter(), stats_path=path)
    assert read_stats(path) == ExportStats("crio")  # written at once, before any span
    for i in range(3):
        with tel.tracer("t").start_as_current_span(f"s{i}"):
            pass
    tel.shutdown(budget=10)
    assert json.loads(path.read_text()) == {"service": "crio", "exported": 0, "dropped": 3, "queue_full": 0}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_stats_file_with_tracing_off_says_zero(tmp_path, monkeypatch) -> None:
    path = tmp_path / "kubelet-stats.json"
    monkeypatch.setenv(STATS_ENV, str(path))  # what a component's main reads (Stack sets it per component)
    tel = kubelet_telemetry(False, "x", None)
    tel.shutdown()
    assert read_stats(path) == ExportStats("kubelet")


def test_read_stats_of_a_missing_or_bad_file_is_none(tmp_path) -> None:
    assert read_stats(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert read_stats(tmp_path / "bad.json") is None
