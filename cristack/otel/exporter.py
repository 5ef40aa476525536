"""Where a component's spans go: OTLP/gRPC (insecure) with a short timeout, so exporting never blocks the
work, behind ``QuietExporter``: an unreachable endpoint costs one warning line per outage."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger(__name__)

EXPORT_TIMEOUT_S = 1.0
# gRPC's default reconnect back-off grows to two minutes: a collector that comes up late
# would see no spans for that long. Retry at least every second instead. And an export waits for the
# connection (within its 1 s timeout) instead of failing at once while the channel sits out a back-off:
# otherwise the spans of the first second after the collector comes back are dropped although it is up.
EXPORT_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.service_config", json.dumps({"methodConfig": [{"name": [{}], "waitForReady": True}]})),
)


def otlp_exporter(endpoint: str) -> SpanExporter:
    """OTLP/gRPC to ``endpoint`` (HOST:PORT, no TLS) with the settings above."""
    from cristack.otel.otlpwire import WireSpanExporter

    # The SDK's exporter logs every failed batch; we say it once (QuietExporter).
    logging.getLogger("opentelemetry.exporter.otlp.proto.grpc.exporter").setLevel(logging.CRITICAL)
    return WireSpanExporter(endpoint=endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S,
                            channel_options=EXPORT_CHANNEL_OPTIONS)


class QuietExporter(SpanExporter):
    """Wraps the OTLP exporter: one warning when exports start failing, one line when they
    work again, nothing per batch; what could not be sent is dropped."""

    def __init__(self, inner: SpanExporter, endpoint: str, component: str) -> None:
        self.inner = inner
        self.endpoint = endpoint
        self.component = component
        self.failing = False
        self.dropped = 0
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as err:  # noqa: BLE001 - an exporter bug must not reach the work
            log.debug("span export raised: %s", err)
            result = SpanExportResult.FAILURE
        if result == SpanExportResult.SUCCESS:
            self.exported += len(spans)
            if self.failing:
                log.info("exporting spans to %s works again (%d spans were dropped)", self.endpoint, self.dropped)
                self.failing = False
        else:
            self.dropped += len(spans)
            log.debug("dropped %d spans: exporting them to %s failed", len(spans), self.endpoint)
            if not self.failing:
                log.warning("cannot export spans to %s; dropping them until it is reachable (no further warnings)",
                            self.endpoint)
                self.failing = True
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
