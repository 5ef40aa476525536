"""An OTLP/gRPC trace receiver that accepts every request and keeps nothing: the cheapest collector, so that a
load figure measures the nodes, not the sink. The request bytes are not even decoded."""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc

EMPTY = b""  # ExportTraceServiceResponse with no partial_success: zero bytes on the wire


async def main(target: str) -> None:
    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return EMPTY

    handler = grpc.method_handlers_generic_handler("opentelemetry.proto.collector.trace.v1.TraceService", {
        "Export": grpc.unary_unary_rpc_method_handler(export)})
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 2**20)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(target)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0.2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
