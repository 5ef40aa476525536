"""The shim's serving process (pkg/shim/shim.go ``run`` without an action, containerd v2.4.2).

It serves containerd.task.v3.Task on the socket its start command bound (inherited, as runc's shim
inherits it as fd 3), publishes events to containerd's ttrpc address, and exits once Shutdown finds it
empty or on SIGTERM/SIGINT: the server stops accepting, running calls answer (so Shutdown's own answer
goes out), queued events are sent (2 s at most), the containers left are killed, spans flushed, the
socket removed. Mock-only, the same happens when the fake-containerd that started it is gone, if it asked
its shims to end with it (``[cristack] shim_lifeline``: a lifeline pipe, ``cristack.lifeline``).

Tracing: containerd's release build of the shim exports nothing; built with ``-tags shim_tracing`` it
chains otelttrpc's server interceptor (SERVER spans parented by containerd's CLIENT spans through the
ttrpc metadata) and service_tracing.go's, which hands the call's context to runc as TRACEPARENT,
TRACESTATE and BAGGAGE. cristack's shim is the shim_tracing build by default, so the demo shows all
three processes; ``CRISTACK_SHIM_TRACING=0`` gives the release build's silence. Spans go where the
standard ``OTEL_*`` environment says (inherited from containerd), under
``service.name=containerd-shim-<id>`` (set by the start command, as the runc manager does), through the same
provider containerd builds from that environment; mock-only, the counts of what it exported and dropped go to the
file ``CRISTACK_TELEMETRY_STATS`` names (the start command names one beside containerd's), as every component's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from cristack.containers.monitor import Monitor
from cristack.lifeline import inherited_lifeline, stop_on_signals, watch_lifeline
from cristack.otel.otelenv import go_telemetry
from cristack.otel.stats import stats_path_from_env
from cristack.otel.telemetry import Telemetry
from cristack.otel.ttrpctrace import chain_server, server_interceptor
from cristack.wire.endpoints import default_runtime_dir, private_dir
from cristack.wire.ttrpc import CallContext, Server, ServerInterceptor
from fake_containerd.shim.publisher import Publisher
from fake_containerd.shim.service import RUNC_ENV_KEY, TASK_SERVICE, TaskService

log = logging.getLogger(__name__)

TRACING_ENV = "CRISTACK_SHIM_TRACING"  # "0": the release build (no spans, no TRACEPARENT for runc)
LISTEN_FD_ENV = "CRISTACK_SHIM_LISTEN_FD"  # the inherited listening socket (upstream: always fd 3)
DRAIN_EVENTS_S = 2.0
SHUTDOWN_GRACE_S = 5.0

_ENV_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def tracing_build(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return environ.get(TRACING_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def runc_env_interceptor() -> ServerInterceptor:
    """service_tracing.go's UnaryServerInterceptor: the current context as environment variables
    (upper-case keys, the env carrier's spelling) for the runc invocations of this call."""
    async def intercept(call: CallContext, invoke: Callable[[], Awaitable[Message]]) -> Message:
        carrier: dict[str, str] = {}
        _ENV_PROPAGATOR.inject(carrier)
        call.values[RUNC_ENV_KEY] = {k.upper(): v for k, v in carrier.items()}
        return await invoke()

    return intercept


@dataclass
class ShimDaemon:
    """One shim process's parts, built in-process for tests or by ``run``."""

    namespace: str
    instance_id: str
    events_address: str
    workdirs: Path
    provider: trace.TracerProvider | None = None

    def __post_init__(self) -> None:
        self.monitor = Monitor(self.workdirs)
        self.publisher = Publisher(self.events_address, self.namespace)
        self.stopping = asyncio.Event()
        self.service = TaskService(self.monitor, self.publisher.publish, self.stopping.set)
        interceptor = None
        if self.provider is not None:
            interceptor = chain_server(server_interceptor(self.provider), runc_env_interceptor())
        self.server = Server(interceptor=interceptor)
        self.server.register(TASK_SERVICE, self.service.methods())

    async def start(self, *, sock: socket.socket | None = None, path: Path | None = None) -> None:
        self.publisher.start()
        if sock is not None:
            await self.server.serve_socket(sock)
        elif path is not None:
            await self.server.listen(path)
        else:
            raise ValueError("a socket or a path to serve is needed")

    async def stop(self, *, told: bool = False) -> None:
        """After Shutdown: running calls answer first (Shutdown's own answer goes out). ``told`` (a signal, or
        containerd gone): nobody waits for an answer, and a call that waits for a container (Wait) would hold the
        stop for as long as the container runs, so running calls are cancelled at once (the real shim has no
        SIGTERM handler: it just ends)."""
        if told:
            await self.server.close()
        else:
            await self.server.shutdown(SHUTDOWN_GRACE_S)
        await self.publisher.drain(DRAIN_EVENTS_S)
        await self.service.close()
        held = await self.monitor.close()
        if held:
            log.warning("shim %s exits with %d container(s) still held; they were killed", self.instance_id, held)
        await self.publisher.close()
        if isinstance(self.provider, trace.TracerProvider) and hasattr(self.provider, "shutdown"):
            await asyncio.to_thread(self.provider.shutdown)


def inherited_socket(environ: dict[str, str] | os._Environ[str] = os.environ) -> socket.socket | None:
    fd = environ.get(LISTEN_FD_ENV, "")
    if not fd.isdigit():
        return None
    return socket.socket(fileno=int(fd))


def shim_telemetry(instance_id: str) -> Telemetry | None:
    """The shim_tracing build's provider (None for the release build, or with tracing off): containerd's otlp
    plugin read from the environment containerd handed down (its endpoint, protocol and sampler;
    ``OTEL_SERVICE_NAME`` set by the start command), counting its exports in the file the start command named."""
    if not tracing_build():
        return None
    telemetry = go_telemetry(os.environ, f"containerd-shim-{instance_id}", log, stats_path_from_env())
    return telemetry if telemetry.enabled else None


async def run(namespace: str, instance_id: str, socket_path: str = "") -> int:
    """The daemon's main: serves until Shutdown or a signal; returns the exit status."""
    telemetry = shim_telemetry(instance_id)
    provider = telemetry.provider if telemetry is not None else None
    events_address = os.environ.get("TTRPC_ADDRESS", "")
    workdirs = private_dir(default_runtime_dir() / "shim-work" / instance_id[:64])
    daemon = ShimDaemon(namespace, instance_id, events_address, workdirs, provider)
    told = asyncio.Event()  # a signal, or containerd gone: nobody waits for an answer any more
    with stop_on_signals(told):
        return await _serve(daemon, telemetry, told, socket_path)


async def _serve(daemon: ShimDaemon, telemetry: Telemetry | None, told: asyncio.Event, socket_path: str) -> int:
    lifeline = inherited_lifeline()
    if lifeline is not None:  # mock-only: containerd asked its shims to end with it (its [cristack] shim_lifeline)
        def containerd_gone() -> None:
            log.warning("containerd is gone (its lifeline closed): stopping, and the containers with me")
            told.set()

        watch_lifeline(lifeline, containerd_gone)
    sock = inherited_socket()
    address_path: Path | None = None
    if sock is not None:
        with contextlib.suppress(OSError):
            address_path = Path(sock.getsockname())
        await daemon.start(sock=sock)
    elif socket_path:
        address_path = Path(socket_path.removeprefix("unix://"))
        await daemon.start(path=address_path)
    else:
        log.error("no socket to serve: run me through the start command")
        return 1
    ends = [asyncio.ensure_future(event.wait()) for event in (daemon.stopping, told)]
    await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    for end in ends:
        end.cancel()
    await daemon.stop(told=told.is_set())
    if telemetry is not None:
        telemetry.shutdown()  # flushed by the stop already: this writes the final counts
    if address_path is not None:
        with contextlib.suppress(OSError):
            address_path.unlink()
    return 0
