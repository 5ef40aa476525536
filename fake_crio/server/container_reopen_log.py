"""ReopenContainerLog (CRI-O's server/container_reopen_log.go)."""

from __future__ import annotations

from cristack.wire.errors import FailedPrecondition
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import OCI_RUNTIME
from fake_crio.state import RUNNING
from fake_crio.tracing import step_span


class ContainerReopenLog(ServerBase):
    @step_span("ReopenContainerLog")
    async def reopen_container_log(self, request: pb.ReopenContainerLogRequest) -> pb.ReopenContainerLogResponse:
        c = await self.refresh(self.store.container(request.container_id))
        if c.state != RUNNING:
            raise FailedPrecondition(f"container {c.id[:13]} is not running")
        async with self.step(OCI_RUNTIME + "ReopenContainerLog"):
            await self.runtime(c.runtime_handler).reopen_log(c)
        return pb.ReopenContainerLogResponse()
