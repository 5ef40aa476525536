"""OTLP/HTTP span export (binary protobuf POSTed to ``/v1/traces``), as Go's otlptracehttp sends it: the
protocol containerd uses unless told ``grpc``. The request bytes come from ``otlpwire.SpanEncoder``, the same
encoder the gRPC exporter uses, and the standard library's HTTP client sends them: no extra dependency.

Only plain HTTP and HTTPS with the system's trust store; a failed export is reported to the batch processor,
which (with ``QuietExporter`` around it) drops the batch, as the Go exporter does after its short timeout.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from cristack.otel.otlpwire import SpanEncoder

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-protobuf"


class HttpSpanExporter(SpanExporter):
    """POSTs each batch to ``url`` (``http://host:port/v1/traces``) within ``timeout`` seconds."""

    def __init__(self, url: str, timeout: float = 10.0, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"OTLP/HTTP endpoint must be an http:// or https:// URL, not {url!r}")
        self.url = url
        self._parts = parts
        self._timeout = timeout
        self._headers = {"Content-Type": CONTENT_TYPE, **(headers or {})}
        self._encoder = SpanEncoder()
        self._shut = False

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        return cls(self._parts.hostname, self._parts.port, timeout=self._timeout)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut:
            return SpanExportResult.FAILURE
        body = self._encoder.request(spans)
        conn = self._connection()
        try:
            conn.request("POST", self._parts.path or "/v1/traces", body=body, headers=self._headers)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as err:
            log.debug("OTLP/HTTP export to %s failed: %s", self.url, err)
            return SpanExportResult.FAILURE
        finally:
            conn.close()
        if 200 <= resp.status < 300:
            return SpanExportResult.SUCCESS
        log.debug("OTLP/HTTP export to %s answered %d", self.url, resp.status)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._shut = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
