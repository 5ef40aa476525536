"""UpdateContainerResources (CRI-O's server/container_update_resources.go)."""

from __future__ import annotations

from cristack.wire.errors import FailedPrecondition
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import OCI_IMPL, OCI_RUNTIME, as_dict
from fake_crio.state import CREATED, RUNNING
from fake_crio.tracing import step_span


class ContainerUpdateResources(ServerBase):
    @step_span("UpdateContainerResources")
    async def update_container_resources(
            self, request: pb.UpdateContainerResourcesRequest) -> pb.UpdateContainerResourcesResponse:
        c = await self.refresh(self.store.container(request.container_id))
        if c.state not in (CREATED, RUNNING):
            raise FailedPrecondition(f"container {c.id[:13]} is not created or running")
        if request.HasField("linux"):
            async with self.step(OCI_RUNTIME + "UpdateContainer"), self.step(OCI_IMPL + "UpdateContainer"):
                c.resources = as_dict(request.linux)
                self.store.save_container(c)
        return pb.UpdateContainerResourcesResponse()
