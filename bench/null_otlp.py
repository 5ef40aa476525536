"""An OTLP/gRPC trace receiver that accepts every request and keeps nothing: the cheapest collector, so that a
load figure measures the nodes, not the sink. The request bytes are not even decoded."""

from __future__ import annotations

import asyncio
import sys

from bench.echo_server import serve_constant

EMPTY = b""  # ExportTraceServiceResponse with no partial_success: zero bytes on the wire


if __name__ == "__main__":
    asyncio.run(serve_constant(sys.argv[1], "opentelemetry.proto.collector.trace.v1.TraceService", "Export", EMPTY,
                               options=(("grpc.max_receive_message_length", 64 * 2**20),)))
