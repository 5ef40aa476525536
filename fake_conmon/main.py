"""``fake-conmon``: the container monitor entry point."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import grpc

from cristack.otel import logs
from cristack.otel.telemetry import Telemetry, conmon_telemetry
from cristack.versions import CONMONRS_COMMIT, CONMONRS_VERSION, version_flag
from cristack.wire.endpoints import Endpoint, SocketClaim, default_runtime_dir, parse_endpoint
from cristack.wire.pb.conmon.v1 import conmon_pb2_grpc as cgrpc
from cristack.wire.serving import claim_or_exit, run_main, serve
from fake_conmon.rpc import Conmon
from fake_conmon.runtime_args import DEFAULT_RUNTIME, DEFAULT_RUNTIME_ROOT, RuntimeArgs
from fake_conmon.server import ConmonService
from fake_conmon.tracing import ConmonTracing

DEFAULT_TRACING_ENDPOINT = "127.0.0.1:4317"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fake-conmon",
                                description="A mock conmon-rs: supervises container processes for fake-crio.")
    version_flag(p, f"version: {CONMONRS_VERSION}\ntag: v{CONMONRS_VERSION}\ncommit: {CONMONRS_COMMIT}")
    p.add_argument("--listen", help="unix:///PATH, PATH or HOST:PORT (default: a private runtime dir)")
    p.add_argument("--runtime-dir", type=Path, help="where per-container scratch dirs go")
    p.add_argument("--log-level", default="info", help="trace, debug, info, warn, error (default info)")
    p.add_argument("--runtime", type=Path, default=Path(DEFAULT_RUNTIME),
                   help="the OCI runtime conmon-rs would run, as named in the monitor's events (fake-conmon "
                        f"runs built-in applets, never this binary; default {DEFAULT_RUNTIME})")
    p.add_argument("--runtime-root", type=Path, default=Path(DEFAULT_RUNTIME_ROOT),
                   help=f"that runtime's state root, as named in the events (default {DEFAULT_RUNTIME_ROOT})")
    p.add_argument("--enable-tracing", action="store_true", help="export OpenTelemetry traces")
    p.add_argument("--tracing-endpoint", default=DEFAULT_TRACING_ENDPOINT,
                   help=f"OTLP gRPC HOST:PORT (default {DEFAULT_TRACING_ENDPOINT})")
    return p


async def run(listen: Endpoint, runtime_dir: Path, telemetry: Telemetry, runtime: RuntimeArgs | None = None, *,
              private_parent: bool = False, stop: asyncio.Event | None = None,
              claim: SocketClaim | None = None) -> None:
    """Serves the conmon.v1 API on ``listen`` until ``stop`` is set (without one: until SIGTERM/SIGINT, as
    ``main`` runs it)."""
    conmon = Conmon(runtime_dir, ConmonTracing(telemetry.provider), runtime)

    def register(server: grpc.aio.Server) -> None:
        cgrpc.add_ConmonServicer_to_server(ConmonService(conmon), server)

    await serve("fake-conmon", listen, register, private_parent=private_parent, on_started=conmon.warm_up,
                on_stop=conmon.close, stop=stop, claim=claim)


def main(argv: list[str] | None = None) -> None:
    """Parses flags and serves the conmon.v1 API until SIGTERM/SIGINT."""
    parser = build_parser()
    args = parser.parse_args(argv)
    flag = "--log-level"
    try:
        level = logs.parse_level(args.log_level)
        flag = "--listen"
        listen = parse_endpoint(args.listen or str(default_runtime_dir() / "conmon.sock"))
        flag = "--tracing-endpoint"
        parse_endpoint(args.tracing_endpoint)
    except ValueError as err:
        parser.error(f"{flag}: {err}")  # exits 2 with the usage line
    # No log lines as span events: conmon-rs's events are its own tracing macros, written by
    # the tracing hooks at every level whatever --log-level says (it filters only the log).
    logs.setup("fake-conmon", level)
    # Before the monitor starts: a second fake-conmon on a live socket must not serve (CRI-O's
    # RemoveUnusedSocket, conmon-rs's single server per socket).
    claim = claim_or_exit("fake-conmon", listen, private_parent=args.listen is None)
    telemetry = conmon_telemetry(args.enable_tracing, args.tracing_endpoint).install()
    runtime_dir = args.runtime_dir or default_runtime_dir() / "conmon"
    run_main("fake-conmon", run(listen, runtime_dir, telemetry, RuntimeArgs(args.runtime, args.runtime_root),
                     private_parent=args.listen is None, claim=claim), telemetry.shutdown, claim)


if __name__ == "__main__":
    main()
