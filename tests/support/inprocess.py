"""Components inside the test process, for the tier in tests/component/: each runs its own ``run`` on an event
loop of its own in a thread of its own, serves a real unix socket, and has its own tracer provider (an in-memory
exporter) and its own log file. Nothing process-wide is touched: no signal handlers, no global tracer provider,
no root log level (only our packages' loggers are opened to the component's level while it runs).

Container processes are still processes (the fork server and what it forks); what is not a process here is
fake-crio, fake-conmon and fake-kubelet themselves. Signals, limits, restarts and the end to end stay in
tests/integration/ and tests/e2e/, on real processes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cristack.harness.sink.store import SpanStore
from cristack.harness.stack import Stack, StackOptions
from cristack.otel import logs
from cristack.otel.loghandler import TraceIdFilter
from cristack.otel.otlpwire import SpanEncoder
from cristack.otel.sampler import TracingSettings
from cristack.otel.telemetry import Telemetry
from cristack.wire.endpoints import parse_endpoint, serving

# The loggers a component's records come from (its own package and the library's).
OUR_LOGGERS = ("fake_crio", "fake_conmon", "fake_kubelet", "fake_kata", "cristack", "kata-agent")
START_TIMEOUT_S = 15.0
_SERIAL = itertools.count(1)
STOP_TIMEOUT_S = 15.0


class ThreadLog(logging.Handler):
    """The records one component's thread makes, in a file of its own, as its ``main`` would write them."""

    def __init__(self, path: Path, component: str, thread_name: str, level: int) -> None:
        super().__init__(level)
        self.thread_name = thread_name
        self.stream = path.open("a", encoding="utf-8")
        self.addFilter(TraceIdFilter())
        self.setFormatter(logging.Formatter(
            f"%(asctime)s.%(msecs)03d %(levelname)-5s {component}: %(message)s%(trace)s", "%Y-%m-%dT%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.threadName != self.thread_name:
            return
        try:
            self.stream.write(self.format(record) + "\n")
            self.stream.flush()
        except Exception:  # noqa: BLE001 - logging never fails the caller
            self.handleError(record)

    def close(self) -> None:
        self.stream.close()
        super().close()


def _open_loggers(level: int) -> dict[str, int]:
    """Lowers our loggers to ``level`` (never raises them); returns what to put back."""
    before = {}
    for name in OUR_LOGGERS:
        logger = logging.getLogger(name)
        before[name] = logger.level
        if logger.getEffectiveLevel() > level:
            logger.setLevel(level)
    return before


class StoreExporter(SpanExporter):
    """Hands each ended span to a trace sink's store (``cristack.harness.sink.store.SpanStore``) as the
    component's OTLP exporter would send it (``cristack.otel.otlpwire``), so a test reads an in-process
    component's spans as it reads a process's from the sink."""

    def __init__(self, store: SpanStore) -> None:
        self.store = store
        self.encoder = SpanEncoder()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.store.add(ExportTraceServiceRequest.FromString(self.encoder.request(spans)))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def memory_telemetry(service: str, settings: TracingSettings, *, host_name: str | None = None,
                     store: SpanStore | None = None) -> tuple[Telemetry, InMemorySpanExporter | None]:
    """The component's provider as its own configuration makes it (``settings``: on or off, its sampler; its
    resource), with its spans kept in memory instead of exported, and also handed to ``store`` (as they end)
    when one is given."""
    if not settings.enabled:
        return Telemetry(service, settings), None
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(service, settings, exporter=exporter, quiet=False, host_name=host_name)
    if store is not None:
        assert isinstance(telemetry.provider, TracerProvider), "OTEL_SDK_DISABLED is set"
        telemetry.provider.add_span_processor(SimpleSpanProcessor(StoreExporter(store)))
    return telemetry, exporter


@dataclass
class Component:
    """One component running in a thread of this process."""

    name: str
    log_path: Path
    telemetry: Telemetry
    exporter: InMemorySpanExporter | None
    result: Any = None
    error: BaseException | None = None
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _started: threading.Event = field(default_factory=threading.Event)
    _log: ThreadLog | None = None
    _levels: dict[str, int] = field(default_factory=dict)

    def start(self, run: Callable[[asyncio.Event], Coroutine[Any, Any, Any]], level: int) -> Component:
        """Runs ``run(stop)`` until ``stop`` (or until it returns by itself, as a --runonce kubelet does)."""
        self._levels = _open_loggers(level)

        thread_name = f"component-{self.name}-{next(_SERIAL)}"
        self._log = ThreadLog(self.log_path, self.name, thread_name, level)
        logging.getLogger().addHandler(self._log)

        async def main_task() -> Any:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._started.set()
            return await run(self._stop)

        def main() -> None:
            try:
                # asyncio.run, as a component's main runs it: at the end what is still pending is cancelled and
                # awaited, async generators and the default executor are shut down.
                self.result = asyncio.run(main_task())
            except BaseException as err:  # noqa: BLE001 - handed to the test thread
                self.error = err
            finally:
                self._started.set()

        self._thread = threading.Thread(target=main, name=thread_name, daemon=True)
        self._thread.start()
        self._started.wait(START_TIMEOUT_S)
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_serving(self, socket: Path, timeout: float = START_TIMEOUT_S) -> None:
        """Waits until ``socket`` accepts connections; raises with the component's error and log if it ended
        first. (The server listens once it has started: ``serve`` binds and starts before anything else.)"""
        endpoint = parse_endpoint(f"unix://{socket}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} ended before serving: {self.error!r}\n{self.log_text()}")
            if serving(endpoint):
                return
            time.sleep(0.005)
        raise TimeoutError(f"{self.name} did not serve on {socket} within {timeout}s:\n{self.log_text()}")

    def wait(self, timeout: float) -> Any:
        """Waits for ``run`` to return by itself; its result (an exit code), or what it raised."""
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"{self.name} still runs after {timeout}s:\n{self.log_text()}")
        self._close()
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> float:
        """Sets the stop event (what SIGTERM does to the process) and waits for ``run`` to end; the seconds
        it took. Raises what ``run`` raised, if anything."""
        started = time.monotonic()
        if self.alive and self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # the loop closed meanwhile: it ended by itself
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"{self.name} did not stop within {timeout}s:\n{self.log_text()}")
        self._close()
        if self.error is not None and not isinstance(self.error, asyncio.CancelledError):
            raise self.error
        return time.monotonic() - started

    def _close(self) -> None:
        if self._log is not None:
            logging.getLogger().removeHandler(self._log)
            self._log.close()
            self._log = None
        self.telemetry.shutdown(budget=5.0)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._levels = {}

    def spans(self) -> list[ReadableSpan]:
        """The spans this component has ended so far."""
        if self.exporter is None:
            return []
        self.telemetry.force_flush()
        return list(self.exporter.get_finished_spans())


def start_crio(argv: list[str], log_path: Path, *, store: SpanStore | None = None) -> tuple[Component, Path]:
    """fake-crio for ``argv`` (its command line: its tracing as [crio.tracing] says), serving; its socket."""
    from fake_crio import config as crio_config
    from fake_crio.main import run

    cfg = crio_config.load(argv)
    assert cfg.listen.path is not None, "in-process components serve unix sockets"
    t = cfg.tracing
    telemetry, exporter = memory_telemetry(
        "crio", TracingSettings(t.enable_tracing, t.tracing_endpoint, t.tracing_sampling_rate_per_million), store=store)
    component = Component("fake-crio", log_path, telemetry, exporter).start(
        lambda stop: run(cfg, telemetry, stop), cfg.log_level)
    socket = Path(cfg.listen.path)
    try:
        component.wait_serving(socket)
    except BaseException:
        _stop_quietly(component)
        raise
    return component, socket


def start_conmon(socket: Path, runtime_dir: Path, log_path: Path, *, traced: bool = False,
                 level: int = logging.DEBUG, store: SpanStore | None = None) -> Component:
    """fake-conmon on ``socket``, serving; ``traced`` is its --enable-tracing."""
    from fake_conmon.main import run

    telemetry, exporter = memory_telemetry("conmonrs", TracingSettings(traced, "in-memory", root_always_on=True),
                                           store=store)
    component = Component("fake-conmon", log_path, telemetry, exporter).start(
        lambda stop: run(parse_endpoint(f"unix://{socket}"), runtime_dir, telemetry, stop=stop), level)
    try:
        component.wait_serving(socket)
    except BaseException:
        _stop_quietly(component)
        raise
    return component


def start_kubelet(argv: list[str], log_path: Path, *, store: SpanStore | None = None) -> Component:
    """fake-kubelet for ``argv`` (its command line and KubeletConfiguration, whose tracing block it follows)."""
    from fake_kubelet import config as kubelet_config
    from fake_kubelet.main import run

    cfg = kubelet_config.load(argv)
    t = cfg.tracing
    telemetry, exporter = memory_telemetry(
        "kubelet", TracingSettings(t.enabled and cfg.tracing_gate, t.endpoint, t.sampling_rate_per_million),
        host_name=cfg.node_name, store=store)
    return Component("fake-kubelet", log_path, telemetry, exporter).start(
        lambda stop: run(cfg, telemetry, None, stop), cfg.log_level)


def _stop_quietly(component: Component) -> None:
    try:
        component.stop()
    except BaseException:  # noqa: BLE001 - the first error is the one to report
        pass


class InProcessStack(Stack):
    """``cristack.harness.stack.Stack`` with its three components in this process: the same command lines
    and configs (the shipped examples pointed into ``base``), each component a ``Component`` where the
    process tier has a ``Proc`` (``log_text()``, ``stop()``, ``alive``). Spans go to ``store`` when given
    (one SpanStore for all three, as the sink is)."""

    def __init__(self, base: Path, options: StackOptions | None = None, store: SpanStore | None = None) -> None:
        super().__init__(base, options)
        self.store = store
        self.conmon: Component | None = None  # type: ignore[assignment]
        self.crio: Component | None = None  # type: ignore[assignment]
        self.kubelet: Component | None = None  # type: ignore[assignment]

    def spawn_runtime(self) -> None:
        if self.opts.runtime_type == "pod":
            self.conmon = start_conmon(self.conmon_socket, self.base / "conmon", self.base / "conmon.log",
                                       traced="--enable-tracing" in self.conmon_args(),
                                       level=logs.parse_level(self.opts.log_level), store=self.store)
        self.crio, _ = start_crio(self.crio_args(), self.base / "crio.log", store=self.store)

    def wait_runtime(self) -> None:
        """``spawn_runtime`` returns once both serve."""

    def start_kubelet(self, *, runonce: bool = False) -> Component:  # type: ignore[override]
        self.kubelet = start_kubelet(self.kubelet_args(runonce=runonce), self.base / "kubelet.log", store=self.store)
        return self.kubelet

    def stop(self) -> dict[str, float]:
        """Stops the kubelet, then crio and conmon; the seconds each took."""
        took = {}
        for name, component in self.procs():
            took[name] = component.stop()
        return took

    def terminate(self) -> None:
        for _, component in self.procs():
            component.stop()

    def alive(self) -> bool:
        return all(component.alive for _, component in self.procs())
