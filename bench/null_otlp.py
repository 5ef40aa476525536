"""An OTLP/gRPC trace receiver that accepts every request and keeps nothing: the cheapest collector, so that a
load figure measures the nodes, not the sink. The request bytes are not even decoded, unless ``--count FILE``
asks for the spans received: then each request is parsed (in C) and counted, and FILE gets the count, the
requests and the times of the first and last as JSON when the receiver stops (SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.echo_server import serve_constant

EMPTY = b""  # ExportTraceServiceResponse with no partial_success: zero bytes on the wire


class Counter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.spans = self.requests = 0
        self.first = self.last = 0.0

    def __call__(self, request: bytes) -> None:
        req = ExportTraceServiceRequest.FromString(request)
        self.spans += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        self.requests += 1
        self.last = time.time()
        self.first = self.first or self.last

    def write(self) -> None:
        self.path.write_text(json.dumps({"spans": self.spans, "requests": self.requests, "first": self.first,
                                         "last": self.last}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("target")
    ap.add_argument("--count", type=Path)
    args = ap.parse_args()
    counter = Counter(args.count) if args.count else None
    asyncio.run(serve_constant(args.target, "opentelemetry.proto.collector.trace.v1.TraceService", "Export", EMPTY,
                               options=(("grpc.max_receive_message_length", 64 * 2**20),), seen=counter))
    if counter is not None:
        counter.write()
