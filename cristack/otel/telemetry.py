"""A component's telemetry: its own tracer provider, made per component instance and passed in.

- Sampler (``sampler``), resource (``resource``), export (``exporter``: OTLP/gRPC behind a bounded batch
  processor with a short timeout, so exporting never blocks the work), span counts (``stats``), log records as
  span events (``loghandler``), CRI-O's per-request context (``requestctx``).
- Tracing off: a no-op provider. A remote parent that arrives is still passed on, because
  the no-op tracer hands back the incoming (non-recording) span.
- Nothing here is process-wide but the propagator (W3C tracecontext + baggage): a component's ``main`` makes
  its provider the global one (``install``) and its log setup the root logger's (``logs.setup``); a test runs
  the same component inside its own process with an in-memory exporter, beside others.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from cristack.otel.exporter import EXPORT_TIMEOUT_S, QuietExporter, otlp_exporter
from cristack.otel.loghandler import SpanEventHandler
from cristack.otel.resource import resource_for
from cristack.otel.sampler import TracingSettings, sampler_for
from cristack.otel.stats import ExportStats, QueueFullCount, StatsFile, stats_path_from_env

SCHEDULE_DELAY_MS = 100
MAX_QUEUE = 4096
SHUTDOWN_BUDGET_S = 1.2

propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))


class Telemetry:
    """A component's tracer provider and how to shut it down within a bounded time.

    ``exporter``: where spans go (default: OTLP/gRPC to ``settings.endpoint``); ``quiet`` wraps it in
    ``QuietExporter`` (one warning per outage, counts). ``stats_path``: a file kept current with the counts
    (``stats.StatsFile``)."""

    def __init__(self, service_name: str, settings: TracingSettings,
                 exporter: SpanExporter | None = None, quiet: bool = True, host_name: str | None = None,
                 max_queue: int = MAX_QUEUE, stats_path: Path | None = None, resource: Resource | None = None,
                 sampler: Sampler | None = None) -> None:
        """``resource`` and ``sampler``, when given, replace the ones built from ``service_name`` and
        ``settings`` (a component configured by the OTEL_* environment alone, as containerd is)."""
        self.service_name = service_name
        self.settings = settings
        self.exporter: QuietExporter | None = None
        self.queue_full: QueueFullCount | None = None
        disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
        if not settings.enabled or disabled:
            self.provider: trace.TracerProvider = trace.NoOpTracerProvider()
        else:
            provider = TracerProvider(resource=resource or resource_for(service_name, host_name),
                                      sampler=sampler or sampler_for(settings))
            exporter = exporter if exporter is not None else otlp_exporter(settings.endpoint)
            self.exporter = QuietExporter(exporter, settings.endpoint, service_name) if quiet else None
            self.queue_full = QueueFullCount()
            provider.add_span_processor(self.queue_full.processor(
                self.exporter or exporter, max_queue_size=max_queue, schedule_delay_millis=SCHEDULE_DELAY_MS,
                max_export_batch_size=min(512, max_queue), export_timeout_millis=EXPORT_TIMEOUT_S * 1000))
            self.provider = provider
        self._stats_file = StatsFile(stats_path, self.stats) if stats_path is not None else None

    def stats(self) -> ExportStats:
        """This process's span counts so far (zeros with tracing off)."""
        ex = self.exporter
        return ExportStats(self.service_name, exported=ex.exported if ex else 0, dropped=ex.dropped if ex else 0,
                           queue_full=self.queue_full.value() if self.queue_full else 0)

    @property
    def enabled(self) -> bool:
        return isinstance(self.provider, TracerProvider)

    def tracer(self, scope: str, version: str = "") -> trace.Tracer:
        return self.provider.get_tracer(scope, version or None)

    def log_events(self, style: str, level: int = logging.NOTSET) -> SpanEventHandler | None:
        """A handler that makes log records at ``level`` and above events on this provider's spans (and no
        other's), in ``style`` (see SpanEventHandler); None with tracing off."""
        if not isinstance(self.provider, TracerProvider):
            return None
        return SpanEventHandler(style, level, resource=self.provider.resource)

    def install(self) -> Telemetry:
        """Makes this the process's global provider: for a component's ``main`` only (the one piece of global
        state a component process keeps)."""
        trace.set_tracer_provider(self.provider)
        return self

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        """Exports what has ended so far (a test reads its in-memory exporter after this)."""
        if isinstance(self.provider, TracerProvider):
            return self.provider.force_flush(int(timeout_s * 1000))
        return True

    def shutdown(self, budget: float = SHUTDOWN_BUDGET_S) -> None:
        """Flushes what it can within ``budget`` seconds, then gives up: exit must stay prompt. The stats
        file gets the final counts (what the flush sent included)."""
        if isinstance(self.provider, TracerProvider):
            done = threading.Thread(target=self.provider.shutdown, name="otel-shutdown", daemon=True)
            done.start()
            done.join(budget)
        if self._stats_file is not None:
            self._stats_file.close()


def kubelet_telemetry(enabled: bool, endpoint: str, rate: int | None, node_name: str | None = None) -> Telemetry:
    """The kubelet's provider for its ``main``: service.name kubelet, host.name its node name, sampling from
    KubeletConfiguration.tracing, counts in the file CRISTACK_TELEMETRY_STATS names."""
    return Telemetry("kubelet", TracingSettings(enabled, endpoint, rate), host_name=node_name,
                     stats_path=stats_path_from_env())


def crio_telemetry(enabled: bool, endpoint: str, rate: int) -> Telemetry:
    """CRI-O's provider for its ``main``: service.name crio, sampling from [crio.tracing]."""
    return Telemetry("crio", TracingSettings(enabled, endpoint, rate), stats_path=stats_path_from_env())


def conmon_telemetry(enabled: bool, endpoint: str) -> Telemetry:
    """conmon-rs's provider for its ``main``: service.name conmonrs, ParentBased(AlwaysOn)."""
    return Telemetry("conmonrs", TracingSettings(enabled, endpoint, root_always_on=True),
                     stats_path=stats_path_from_env())
