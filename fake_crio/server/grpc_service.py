"""The gRPC face of fake-crio's server: RuntimeService and ImageService (runtime.v1), each only adapting
``Server`` (request in, answer out, errors to status codes). The SERVER and interceptor spans are
``cristack.otel.rpctrace.ServerTracing``'s, around these."""

from __future__ import annotations

from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from cristack.wire.servicer import servicer_for
from fake_crio.server import Server

RuntimeService = servicer_for(pbgrpc.RuntimeServiceServicer, Server, "fake-crio")
ImageService = servicer_for(pbgrpc.ImageServiceServicer, Server, "fake-crio")
