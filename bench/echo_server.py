"""The bare grpc.aio floor: a server that answers /runtime.v1.RuntimeService/Version with a
fixed, pre-serialised VersionResponse of the same size fake-crio sends, with no logic at all."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable

import grpc

from cristack.wire.pb.runtime.v1 import api_pb2 as pb

RESPONSE = pb.VersionResponse(version="0.1.0", runtime_name="cri-o", runtime_version="1.36.0-cristack.0.1.0",
                              runtime_api_version="v1").SerializeToString()


async def serve_constant(target: str, service: str, method: str, response: bytes,
                         options: tuple[tuple[str, int], ...] = (), seen: Callable[[bytes], None] | None = None
                         ) -> None:
    """Serves ``service/method`` on ``target``, answering every request with ``response`` (the request is never
    decoded; ``seen``, when given, gets its bytes), until SIGTERM."""
    async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if seen is not None:
            seen(request)
        return response

    handler = grpc.method_handlers_generic_handler(service, {method: grpc.unary_unary_rpc_method_handler(answer)})
    server = grpc.aio.server(options=list(options))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(target)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0.2)


if __name__ == "__main__":
    asyncio.run(serve_constant(sys.argv[1], "runtime.v1.RuntimeService", "Version", RESPONSE))
