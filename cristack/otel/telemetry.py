"""OpenTelemetry for the three components: one tracer provider per process.

- Resource: only what each real component sets (recorded in tests/data/real/): the kubelet
  ``service.name`` and ``host.name`` (its node name); CRI-O adds ``process.pid``; conmon-rs adds
  ``process.pid`` and the Rust SDK's ``telemetry.sdk.*``. No ``service.version``.
  ``OTEL_RESOURCE_ATTRIBUTES`` adds attributes when set; on a clash ours win, except ``host.name``
  (see ``resource_for``).
- Sampler: ParentBased(TraceIdRatioBased(rate / 1e6)); rate 0 or unset is
  ParentBased(AlwaysOff), so a component records only under a sampled parent. conmon-rs uses
  ParentBased(AlwaysOn).
- Propagation: W3C tracecontext + baggage.
- Export: OTLP/gRPC (insecure) behind a bounded batch processor with a short timeout, so
  exporting never blocks the work; an unreachable endpoint costs one warning line per outage.
- Stats: spans exported, spans whose export failed (dropped) and spans the batch processor dropped
  because its queue was full, per process; when ``CRISTACK_TELEMETRY_STATS`` names a file, it is
  rewritten atomically about once a second (and once more at shutdown) as JSON, for the harness.
- Tracing off: a no-op provider. A remote parent that arrives is still passed on, because
  the no-op tracer hands back the incoming (non-recording) span.
- Logs: records at or above the component's level also become events on the current span,
  in the component's own style (``log_events``), and text log lines show trace and span ids.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.environment_variables import OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

EXPORT_TIMEOUT_S = 1.0
SCHEDULE_DELAY_MS = 100
MAX_QUEUE = 4096
SHUTDOWN_BUDGET_S = 1.2
STATS_ENV = "CRISTACK_TELEMETRY_STATS"  # a file the process keeps its ExportStats in (JSON)
STATS_PERIOD_S = 1.0
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

propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))


@dataclass(frozen=True)
class TracingSettings:
    """A component's tracing configuration, whatever file or flag it came from."""

    enabled: bool
    endpoint: str
    rate_per_million: int | None = None  # None or 0: only under a sampled parent
    root_always_on: bool = False  # conmon-rs samples every root


def sampler_for(settings: TracingSettings) -> Sampler:
    """ParentBased(TraceIdRatioBased(rate/1e6)), or ParentBased(AlwaysOff/AlwaysOn)."""
    if settings.root_always_on:
        return ParentBased(ALWAYS_ON)
    rate = settings.rate_per_million or 0
    if rate <= 0:
        return ParentBased(ALWAYS_OFF)
    if rate >= 1_000_000:
        return ParentBased(ALWAYS_ON)
    return ParentBased(TraceIdRatioBased(rate / 1_000_000))


# What each component's real resource holds besides service.name and host.name: the kubelet's
# (k8s.io/kubernetes cmd/kubelet/app/server.go) has nothing else; CRI-O's
# (internal/opentelemetry/tracing_config.go) adds the pid; conmon-rs 0.8.0 uses the Rust SDK's
# default resource (telemetry.sdk.* from opentelemetry 0.31.0) plus the pid.
RESOURCE_EXTRAS: dict[str, dict[str, str]] = {
    "kubelet": {},
    "crio": {},
    "conmonrs": {"telemetry.sdk.name": "opentelemetry", "telemetry.sdk.language": "rust",
                 "telemetry.sdk.version": "0.31.0"},
    # Kata's shim (src/runtime/pkg/katautils/katatrace/tracing.go): a schemaless resource of its own.
    "kata": {"exporter": "jaeger", "lib": "opentelemetry"},
}
WITH_PID = frozenset({"crio", "conmonrs"})
WITHOUT_HOST = frozenset({"kata"})


def resource_for(service_name: str, host_name: str | None = None) -> Resource:
    """The component's resource, as the real one builds it (see RESOURCE_EXTRAS), plus whatever
    ``OTEL_RESOURCE_ATTRIBUTES`` names. ``host_name`` defaults to the machine's hostname; the
    kubelet passes its node name (``--hostname-override``), as the real one does.

    On a clash our attributes win (the Go and Rust SDKs merge the environment under the
    component's own resource), except ``host.name``: there the environment wins. The real
    components read the UTS hostname, which differs on every real node; mock nodes share one
    machine, so the standard variable is how each is given its own name."""
    from_env = OTELResourceDetector().detect()
    env_host = from_env.attributes.get("host.name")
    attrs: dict[str, str | int] = {"service.name": service_name,
                                   "host.name": env_host or host_name or socket.gethostname()}
    attrs.update(RESOURCE_EXTRAS.get(service_name, {}))
    if service_name in WITHOUT_HOST and not env_host:
        del attrs["host.name"]
    if service_name in WITH_PID:
        attrs["process.pid"] = os.getpid()
    # Resource() (unlike Resource.create) adds no SDK attributes and no default service.name.
    return from_env.merge(Resource(attrs))


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


@dataclass
class ExportStats:
    """What became of a process's finished spans: sent (``exported``), lost because the export
    failed (``dropped``: the endpoint down or too slow), lost because the batch processor's queue
    was full (``queue_full``: spans ended faster than they could be sent)."""

    service: str
    exported: int = 0
    dropped: int = 0
    queue_full: int = 0

    @property
    def lost(self) -> int:
        """Every span that never reached the endpoint."""
        return self.dropped + self.queue_full


# The semantic-convention metric the SDK's batch processor reports itself with: one count per span it is
# done with, with error.type=queue_full on those it dropped because its queue was full.
PROCESSED_METRIC = "otel.sdk.processor.span.processed"


class QueueFullCount:
    """The spans a BatchSpanProcessor dropped because its queue was full, as the processor itself
    reports them (``otel.sdk.processor.span.processed{error.type=queue_full}``) to a private
    in-memory meter provider: the SDK counts on the drop path itself, so no wrapper has to guess
    at its queue."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)

    def processor(self, exporter: SpanExporter, **kwargs: object) -> BatchSpanProcessor:
        """A BatchSpanProcessor that reports to this count. The SDK gates its self-metrics on an
        environment variable read when the processor is built; it is set only for that moment, so
        the per-span paths (the tracer provider's own span metrics, the exporter's) stay unmetered."""
        key = OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED
        before = os.environ.get(key)
        os.environ[key] = "true"
        try:
            return BatchSpanProcessor(exporter, meter_provider=self.meter_provider, **kwargs)  # type: ignore[arg-type]
        finally:
            if before is None:
                del os.environ[key]
            else:
                os.environ[key] = before

    def value(self) -> int:
        data = self.reader.get_metrics_data()
        total = 0
        for rm in data.resource_metrics if data is not None else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != PROCESSED_METRIC:
                        continue
                    total += sum(int(p.value) for p in metric.data.data_points  # type: ignore[union-attr]
                                 if (p.attributes or {}).get("error.type") == "queue_full")
        return total


def write_stats(path: Path, stats: ExportStats) -> None:
    """Replaces ``path`` with ``stats`` as JSON in one step (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(stats)) + "\n")
    os.replace(tmp, path)


def read_stats(path: Path) -> ExportStats | None:
    """What ``write_stats`` wrote, or None when there is no such file (yet) or it is not stats."""
    try:
        doc = json.loads(path.read_text())
        return ExportStats(service=str(doc["service"]), exported=int(doc["exported"]), dropped=int(doc["dropped"]),
                           queue_full=int(doc["queue_full"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Telemetry:
    """A component's tracer provider and how to shut it down within a bounded time."""

    def __init__(self, service_name: str, settings: TracingSettings,
                 exporter: SpanExporter | None = None, quiet: bool = True, host_name: str | None = None,
                 max_queue: int = MAX_QUEUE, resource: Resource | None = None, sampler: Sampler | None = None) -> None:
        """``resource`` and ``sampler``, when given, replace the ones built from ``service_name`` and
        ``settings`` (a component configured by the OTEL_* environment alone, as containerd is)."""
        self.service_name = service_name
        self.settings = settings
        self.exporter: QuietExporter | None = None
        self.queue_full: QueueFullCount | None = None
        self._stats_path = Path(os.environ[STATS_ENV]) if os.environ.get(STATS_ENV) else None
        self._stats_stop = threading.Event()
        disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
        if not settings.enabled or disabled:
            self.provider: trace.TracerProvider = trace.NoOpTracerProvider()
            self._start_stats()
            return
        provider = TracerProvider(resource=resource or resource_for(service_name, host_name),
                                  sampler=sampler or sampler_for(settings))
        if exporter is None:
            from cristack.otel.otlpwire import WireSpanExporter

            # The SDK's exporter logs every failed batch; we say it once (QuietExporter).
            logging.getLogger("opentelemetry.exporter.otlp.proto.grpc.exporter").setLevel(logging.CRITICAL)
            exporter = WireSpanExporter(endpoint=settings.endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S,
                                        channel_options=EXPORT_CHANNEL_OPTIONS)
        self.exporter = QuietExporter(exporter, settings.endpoint, service_name) if quiet else None
        self.queue_full = QueueFullCount()
        provider.add_span_processor(self.queue_full.processor(
            self.exporter or exporter, max_queue_size=max_queue, schedule_delay_millis=SCHEDULE_DELAY_MS,
            max_export_batch_size=min(512, max_queue), export_timeout_millis=EXPORT_TIMEOUT_S * 1000))
        self.provider = provider
        self._start_stats()

    def stats(self) -> ExportStats:
        """This process's span counts so far (zeros with tracing off)."""
        ex = self.exporter
        return ExportStats(self.service_name, exported=ex.exported if ex else 0, dropped=ex.dropped if ex else 0,
                           queue_full=self.queue_full.value() if self.queue_full else 0)

    def _start_stats(self) -> None:
        """Keeps the ``CRISTACK_TELEMETRY_STATS`` file current, from a thread of its own: the work never
        waits for it."""
        if self._stats_path is None:
            return
        self._write_stats()
        threading.Thread(target=self._stats_loop, name="telemetry-stats", daemon=True).start()

    def _stats_loop(self) -> None:
        while not self._stats_stop.wait(STATS_PERIOD_S):
            self._write_stats()

    def _write_stats(self) -> None:
        if self._stats_path is None:
            return
        try:
            write_stats(self._stats_path, self.stats())
        except OSError as err:  # a full disk or a removed dir must not reach the work
            log.debug("cannot write telemetry stats to %s: %s", self._stats_path, err)

    @property
    def enabled(self) -> bool:
        return isinstance(self.provider, TracerProvider)

    def tracer(self, scope: str, version: str = "") -> trace.Tracer:
        return self.provider.get_tracer(scope, version or None)

    def install(self) -> Telemetry:
        """Makes this the process's global provider (the one piece of global state we keep)."""
        trace.set_tracer_provider(self.provider)
        return self

    def shutdown(self, budget: float = SHUTDOWN_BUDGET_S) -> None:
        """Flushes what it can within ``budget`` seconds, then gives up: exit must stay prompt. The stats
        file gets the final counts (what the flush sent included)."""
        self._stats_stop.set()
        if isinstance(self.provider, TracerProvider):
            done = threading.Thread(target=self.provider.shutdown, name="otel-shutdown", daemon=True)
            done.start()
            done.join(budget)
        self._write_stats()


def kubelet_telemetry(enabled: bool, endpoint: str, rate: int | None, node_name: str | None = None) -> Telemetry:
    """The kubelet's provider: service.name kubelet, host.name its node name, sampling from
    KubeletConfiguration.tracing."""
    return Telemetry("kubelet", TracingSettings(enabled, endpoint, rate), host_name=node_name)


def crio_telemetry(enabled: bool, endpoint: str, rate: int) -> Telemetry:
    """CRI-O's provider: service.name crio, sampling from [crio.tracing]."""
    return Telemetry("crio", TracingSettings(enabled, endpoint, rate))


def conmon_telemetry(enabled: bool, endpoint: str) -> Telemetry:
    """conmon-rs's provider: service.name conmonrs, ParentBased(AlwaysOn)."""
    return Telemetry("conmonrs", TracingSettings(enabled, endpoint, root_always_on=True))


# -- logs as span events


# logrus's Level.String() for each logging level (TRACE is below DEBUG).
LOGRUS_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error",
                 logging.CRITICAL: "fatal"}


class SpanEventHandler(logging.Handler):
    """Adds each log record as an event on the current span, in a component's style.

    - ``crio``: event ``log`` with ``log.severity``, ``log.message``, ``id`` and ``name`` (the
      request id and method); an error adds ``exception.type``/``exception.message`` and sets
      the span status to ERROR, as CRI-O's log hook does.
    - ``conmon``: the event is named by the message, with ``level`` and ``target`` (conmon-rs's
      tracing-opentelemetry layer).
    - ``containerd``: the event is named by the message, with the line's fields and ``level`` (logrus's
      name for it: ``info``, ``warning``, ...), and never a status (containerd/log/otel v0.1.0's hook).
    - ``plain``: event ``log`` with ``log.severity`` and ``log.message``.
    """

    SEVERITY = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN",
                logging.ERROR: "ERROR", logging.CRITICAL: "FATAL"}

    def __init__(self, style: str, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.style = style

    def emit(self, record: logging.LogRecord) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not break the caller
            return
        severity = self.SEVERITY.get(record.levelno, record.levelname)
        # Structured fields (logging's extra={"fields": {...}}) become attributes, as logrus
        # fields do in CRI-O and tracing fields in conmon-rs.
        fields = {k: v for k, v in (getattr(record, "fields", None) or {}).items()
                  if isinstance(v, (str, bool, int, float))}
        if self.style == "containerd":
            span.add_event(message, {**fields, "level": LOGRUS_LEVELS.get(record.levelno, "trace")})
            return
        if self.style == "conmon":
            span.add_event(message, {"level": "TRACE" if record.levelno < logging.DEBUG else severity,
                                     "target": record.name.replace(".", "::"), **fields})
            return
        attrs: dict[str, object] = {"log.severity": severity, "log.message": message, **fields}
        if self.style == "crio":
            attrs["id"] = REQUEST_ID.get()
            attrs["name"] = REQUEST_NAME.get()
        if record.levelno >= logging.ERROR:
            attrs["exception.type"] = getattr(record, "error_type", "") or "error"
            attrs["exception.message"] = message
            span.set_status(Status(StatusCode.ERROR, message))
        span.add_event("log", attrs)


class TraceIdFilter(logging.Filter):
    """Gives each record ``trace`` = `` trace_id=... span_id=...`` when a span is current."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace = (f" trace_id={trace.format_trace_id(ctx.trace_id)} span_id={trace.format_span_id(ctx.span_id)}"
                        if ctx.is_valid else "")
        return True


# CRI-O tags every log line of a request with a per-request uuid and the method name.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
REQUEST_NAME: contextvars.ContextVar[str] = contextvars.ContextVar("request_name", default="")
# When the current request's caller gives up (time.monotonic()), or None without a deadline: CRI-O derives
# stop timeouts from it (server/utils.go stopTimeoutFromContext).
REQUEST_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline", default=None)


@contextlib.contextmanager
def current_span(tracer: trace.Tracer, name: str, *, context: otel_context.Context | None = None,
                 kind: trace.SpanKind = trace.SpanKind.INTERNAL,
                 attributes: dict[str, Any] | None = None) -> Iterator[trace.Span]:
    """``tracer.start_as_current_span(..., record_exception=False, set_status_on_exception=False)`` in one
    context-manager layer instead of the API's three (its decorator, the tracer's generator, ``use_span``):
    the span is current inside the block and ends when the block does, raised or not, with no exception event
    and no status set (the callers set statuses as the Go code they stand for does). Used on the paths every CRI
    call takes, where a relist makes thousands of spans."""
    span = tracer.start_span(name, context, kind, attributes, record_exception=False, set_status_on_exception=False)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        otel_context.detach(token)
        span.end()


@contextlib.contextmanager
def error_status(span: trace.Span) -> Iterator[trace.Span]:
    """Marks ``span`` ERROR with the error's message if the block raises (no traceback event)."""
    try:
        yield span
    except Exception as err:
        span.set_status(Status(StatusCode.ERROR, str(err) or type(err).__name__))
        raise


def tracer_without_scope(provider: trace.TracerProvider) -> trace.Tracer:
    """A tracer with an empty instrumentation scope, as CRI-O's log.StartSpan uses; the SDK
    logs an error for an empty name, which here is intended."""
    sdk_log = logging.getLogger("opentelemetry.sdk.trace")
    previous = sdk_log.disabled
    sdk_log.disabled = True
    try:
        return provider.get_tracer("")
    finally:
        sdk_log.disabled = previous


def new_request_id() -> str:
    return str(uuid.uuid4())

