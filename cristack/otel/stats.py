"""What became of a process's finished spans: exported, dropped because the export failed, dropped because the
batch processor's queue was full. When ``CRISTACK_TELEMETRY_STATS`` names a file, a component rewrites it
atomically about once a second (and once more at shutdown) as JSON, for the harness. A component's child processes
that export spans of their own (containerd's shims, one per pod) keep theirs beside it (``child_stats_path``)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

log = logging.getLogger(__name__)

STATS_ENV = "CRISTACK_TELEMETRY_STATS"  # a file the process keeps its ExportStats in (JSON)
STATS_PERIOD_S = 1.0
# The semantic-convention metric the SDK's batch processor reports itself with: one count per span it is
# done with, with error.type=queue_full on those it dropped because its queue was full.
PROCESSED_METRIC = "otel.sdk.processor.span.processed"


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


class QueueFullCount:
    """The spans a BatchSpanProcessor dropped because its queue was full, as the processor itself
    reports them (``otel.sdk.processor.span.processed{error.type=queue_full}``) to a private
    in-memory meter provider: the SDK counts on the drop path itself, so no wrapper has to guess
    at its queue."""

    def __init__(self) -> None:
        # Imported here: the SDK's metrics cost a tenth of a second to import, and the path helpers below serve
        # processes that export nothing (a containerd shim's start command, run once per pod).
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)

    def processor(self, exporter: SpanExporter, **kwargs: object) -> BatchSpanProcessor:
        """A BatchSpanProcessor that reports to this count. The SDK gates its self-metrics on an
        environment variable read when the processor is built; it is set only for that moment, so
        the per-span paths (the tracer provider's own span metrics, the exporter's) stay unmetered."""
        from opentelemetry.sdk.environment_variables import OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED as key
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

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


def total(stats: list[ExportStats], service: str = "all") -> ExportStats:
    """The counts of several processes together."""
    out = ExportStats(service)
    for s in stats:
        out.exported += s.exported
        out.dropped += s.dropped
        out.queue_full += s.queue_full
    return out


def child_stats_path(path: Path, child: str) -> Path:
    """Where child ``child`` of the process keeping ``path`` keeps its own counts: ``NAME.CHILD.json`` beside
    ``NAME.json`` (a child's file stays when the child has ended, so its last counts still add up)."""
    return path.with_name(f"{path.stem}.{child}{path.suffix}")


def children_stats(path: Path) -> list[ExportStats]:
    """Every child's counts kept beside ``path`` (``child_stats_path``)."""
    found = (read_stats(p) for p in sorted(path.parent.glob(f"{path.stem}.*{path.suffix}")))
    return [s for s in found if s is not None]


def stats_path_from_env() -> Path | None:
    """The file ``CRISTACK_TELEMETRY_STATS`` names, if any (what a component's ``main`` passes on)."""
    value = os.environ.get(STATS_ENV)
    return Path(value) if value else None


class StatsFile:
    """Keeps ``path`` current with ``stats()``, from a thread of its own: the work never waits for it."""

    def __init__(self, path: Path, stats: Callable[[], ExportStats]) -> None:
        self.path = path
        self._stats = stats
        self._stop = threading.Event()
        self.write()
        threading.Thread(target=self._loop, name="telemetry-stats", daemon=True).start()

    def _loop(self) -> None:
        while not self._stop.wait(STATS_PERIOD_S):
            self.write()

    def write(self) -> None:
        try:
            write_stats(self.path, self._stats())
        except OSError as err:  # a full disk or a removed dir must not reach the work
            log.debug("cannot write telemetry stats to %s: %s", self.path, err)

    def close(self) -> None:
        """Stops the thread and writes the final counts."""
        self._stop.set()
        self.write()
