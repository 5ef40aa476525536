"""``--record-calls``: append each CRI method name to a file, so tests can check the order
in which a client (our kubelet, crictl) called us."""

from __future__ import annotations

from pathlib import Path

import grpc


class RecordCalls(grpc.aio.ServerInterceptor):
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", buffering=1)

    async def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001
        method = handler_call_details.method
        if method.startswith("/runtime.v1."):
            self._file.write(method.rsplit("/", 1)[1] + "\n")
        return await continuation(handler_call_details)
