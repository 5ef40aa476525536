"""The fake Kata agent's entry point: fake-crio's runtime type ``vm`` starts one per sandbox
(``fake_crio/vm.py``):

    python -m fake_kata.main --listen unix:///…/agent.sock --runtime-dir DIR \\
        [--enable-tracing --trace-socket unix:///…/forwarder.sock]

(The trace forwarder's entry point is ``cristack trace-forwarder``, ``fake_kata.forwarder.main``.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from cristack.otel import logs
from cristack.otel.loghandler import attached
from cristack.otel.sampler import TracingSettings
from cristack.otel.telemetry import Telemetry
from cristack.wire.endpoints import Endpoint, parse_endpoint
from cristack.wire.pb.conmon.v1 import conmon_pb2_grpc as cgrpc
from cristack.wire.serving import run_main, serve
from fake_kata.agent import AGENT_SCOPE, Agent, AgentService
from fake_kata.exporter import FrameExporter


async def run(listen: Endpoint, runtime_dir: Path, telemetry: Telemetry, log_level: int = logging.INFO,
              stop: asyncio.Event | None = None) -> None:
    """Serves the agent's API on ``listen`` until ``stop`` is set (without one: until SIGTERM/SIGINT)."""
    # Kata's agent opens its root span before anything else, with no parent: a trace of its own.
    root = telemetry.tracer(AGENT_SCOPE).start_span("root-span", context=otel_context.Context())
    agent = Agent(runtime_dir, telemetry.provider)

    def register(server: grpc.aio.Server) -> None:
        cgrpc.add_ConmonServicer_to_server(AgentService(agent), server)

    try:
        with trace.use_span(root, end_on_exit=False), attached(telemetry.log_events("conmon", log_level)):
            await serve("kata-agent", listen, register, on_started=agent.warm_up, on_stop=agent.close,
                        stop=stop)
    finally:
        root.end()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="kata-agent")
    p.add_argument("--listen", required=True)
    p.add_argument("--runtime-dir", type=Path, required=True)
    p.add_argument("--enable-tracing", action="store_true")
    p.add_argument("--trace-socket", default="")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    level = logs.parse_level(args.log_level)
    logs.setup("kata-agent", level)
    tracing_on = args.enable_tracing and bool(args.trace_socket)
    telemetry = Telemetry("kata-agent", TracingSettings(tracing_on, args.trace_socket or "unix:///dev/null",
                                                        root_always_on=True),
                          exporter=FrameExporter(args.trace_socket) if tracing_on else None, quiet=False).install()
    run_main("kata-agent", run(parse_endpoint(args.listen), args.runtime_dir, telemetry, level), telemetry.shutdown)


if __name__ == "__main__":
    main()
