"""``fake-crio``: the entry point."""

from __future__ import annotations

import asyncio
import logging

import grpc

from cristack.config.startup import load_config
from cristack.otel.loghandler import attached
from cristack.otel.rpctrace import OTELGRPC_SCOPE, ServerTracing
from cristack.otel.telemetry import Telemetry, crio_telemetry
from cristack.wire.endpoints import SocketClaim
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from cristack.wire.serving import claim_or_exit, run_main, serve
from cristack.wording import plural
from fake_crio import config as crio_config
from fake_crio.calls import RecordCalls
from fake_crio.faults import FaultInterceptor
from fake_crio.server import Server
from fake_crio.server.grpc_service import ImageService, RuntimeService
from fake_crio.tracing import CRIO_SCOPE, CrioTracing

log = logging.getLogger("fake_crio")


async def run(cfg: crio_config.CrioConfig, telemetry: Telemetry, stop: asyncio.Event | None = None,
              claim: SocketClaim | None = None) -> None:
    """Serves ``cfg.listen`` until ``stop`` is set (without one: until SIGTERM/SIGINT, as ``main`` runs it), with
    ``telemetry``'s provider and its log records as span events on crio's spans."""
    server = Server.create(cfg, CrioTracing(telemetry.provider, cfg.faults))
    tasks: list[asyncio.Task] = []

    def register(grpc_server: grpc.aio.Server) -> None:
        pbgrpc.add_RuntimeServiceServicer_to_server(RuntimeService(server), grpc_server)
        pbgrpc.add_ImageServiceServicer_to_server(ImageService(server), grpc_server)

    interceptors: list[grpc.aio.ServerInterceptor] = [
        ServerTracing(telemetry.tracer(OTELGRPC_SCOPE), telemetry.tracer(CRIO_SCOPE))]
    if cfg.faults:
        interceptors.append(FaultInterceptor(cfg.faults))
    if cfg.record_calls:
        interceptors.append(RecordCalls(cfg.record_calls))
    log.info("%s, %s, %s in %s; default runtime %s (%s)", plural(len(server.store.sandboxes), "sandbox", "sandboxes"),
             plural(len(server.store.containers), "container"), plural(len(server.images.images), "image"), cfg.root,
             cfg.default_runtime, cfg.runtimes[cfg.default_runtime].runtime_type)

    async def stopping() -> None:
        server.events.close()  # open GetContainerEvents streams end, as when CRI-O closes its channel
        for task in tasks:
            task.cancel()
        await server.close_runtimes()

    async def started() -> None:
        if cfg.enable_pod_events:
            tasks.append(asyncio.create_task(server.watch_exits()))
        for rt in server.runtimes.values():
            await rt.warm_up()

    with attached(telemetry.log_events("crio", cfg.log_level)):
        await serve("fake-crio", cfg.listen, register, private_parent=cfg.listen_is_default,
                    interceptors=interceptors, on_started=started, on_stop=stopping,
                    max_concurrent_rpcs=cfg.max_concurrent_rpcs, stop=stop, claim=claim)


def main(argv: list[str] | None = None) -> None:
    """Parses flags and config, then serves until SIGTERM/SIGINT."""
    cfg = load_config("fake-crio", crio_config.load, argv)
    # Before the state is loaded: a second fake-crio on a live socket must neither serve nor touch the first
    # one's state (CRI-O checks in its config validation, RemoveUnusedSocket, before anything else).
    claim = claim_or_exit("fake-crio", cfg.listen, private_parent=cfg.listen_is_default)
    t = cfg.tracing
    telemetry = crio_telemetry(t.enable_tracing, t.tracing_endpoint, t.tracing_sampling_rate_per_million).install()
    run_main("fake-crio", run(cfg, telemetry, claim=claim), telemetry.shutdown, claim)


if __name__ == "__main__":
    main()
