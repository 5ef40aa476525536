"""``fake-crio``: the entry point."""

from __future__ import annotations

import asyncio
import logging
import sys

import grpc

from cristack.otel import logs
from cristack.otel.rpctrace import OTELGRPC_SCOPE, ServerTracing
from cristack.otel.telemetry import Telemetry, crio_telemetry
from cristack.wire.endpoints import SocketClaim, claim_unix_socket
from cristack.wire.errors import ConfigError, exit_config_error
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from cristack.wire.serving import serve
from cristack.wording import plural
from fake_crio import config as crio_config
from fake_crio.calls import RecordCalls
from fake_crio.faults import FaultInterceptor
from fake_crio.server import Crio, ImageService, RuntimeService
from fake_crio.tracing import CRIO_SCOPE, CrioTracing

log = logging.getLogger("fake_crio")


async def run(cfg: crio_config.CrioConfig, telemetry: Telemetry, claim: SocketClaim | None = None) -> None:
    crio = Crio.create(cfg, CrioTracing(telemetry.provider, cfg.faults))
    runtime_service = RuntimeService(crio)
    tasks: list[asyncio.Task] = []

    def register(server: grpc.aio.Server) -> None:
        pbgrpc.add_RuntimeServiceServicer_to_server(runtime_service, server)
        pbgrpc.add_ImageServiceServicer_to_server(ImageService(crio), server)

    interceptors: list[grpc.aio.ServerInterceptor] = [
        ServerTracing(telemetry.tracer(OTELGRPC_SCOPE), telemetry.tracer(CRIO_SCOPE))]
    if cfg.faults:
        interceptors.append(FaultInterceptor(cfg.faults))
    if cfg.record_calls:
        interceptors.append(RecordCalls(cfg.record_calls))
    log.info("%s, %s, %s in %s; default runtime %s (%s)", plural(len(crio.store.sandboxes), "sandbox", "sandboxes"),
             plural(len(crio.store.containers), "container"), plural(len(crio.images.images), "image"), cfg.root,
             cfg.default_runtime, cfg.runtimes[cfg.default_runtime].runtime_type)

    async def stop() -> None:
        crio.events.close()  # open GetContainerEvents streams end, as when CRI-O closes its channel
        for task in tasks:
            task.cancel()
        await crio.close_runtimes()

    async def started() -> None:
        if cfg.enable_pod_events:
            tasks.append(asyncio.create_task(runtime_service.watch_exits()))
        for rt in crio.runtimes.values():
            await rt.warm_up()

    await serve("fake-crio", cfg.listen, register, private_parent=cfg.listen_is_default,
                interceptors=interceptors, on_started=started, on_stop=stop,
                max_concurrent_rpcs=cfg.max_concurrent_rpcs, claim=claim)


def main(argv: list[str] | None = None) -> None:
    """Parses flags and config, then serves until SIGTERM/SIGINT."""
    logs.setup("fake-crio", logging.INFO)
    try:
        cfg = crio_config.load(argv)
    except ConfigError as err:
        exit_config_error("fake-crio", err)
    logs.setup("fake-crio", cfg.log_level, span_events="crio")
    try:
        # Before the state is loaded: a second fake-crio on a live socket must neither serve nor touch the
        # first one's state (CRI-O checks in its config validation, RemoveUnusedSocket, before anything else).
        claim = claim_unix_socket(cfg.listen.path, private_parent=cfg.listen_is_default) \
            if cfg.listen.path is not None else None
    except ConfigError as err:
        exit_config_error("fake-crio", err)
    except (OSError, ValueError) as err:
        print(f"fake-crio: {err}", file=sys.stderr)
        sys.exit(1)
    t = cfg.tracing
    telemetry = crio_telemetry(t.enable_tracing, t.tracing_endpoint, t.tracing_sampling_rate_per_million).install()
    try:
        asyncio.run(run(cfg, telemetry, claim))
    except (OSError, ValueError) as err:
        print(f"fake-crio: {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        if claim is not None:
            claim.release()
        telemetry.shutdown()


if __name__ == "__main__":
    main()
