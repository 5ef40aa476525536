"""StartContainer (CRI-O's server/container_start.go)."""

from __future__ import annotations

import logging

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import OCI_RUNTIME, Unknown, description, oci_state
from fake_crio.state import CREATED, RUNNING
from fake_crio.tracing import step_span

log = logging.getLogger(__name__)


class ContainerStart(ServerBase):
    @step_span("StartContainer")
    async def start_container(self, request: pb.StartContainerRequest) -> pb.StartContainerResponse:
        log.info("Starting container: %s", request.container_id)
        try:
            c = self.store.container(request.container_id)
        except NotFound as err:
            raise NotFound(f"could not find container {request.container_id!r}: {err}") from None
        if c.state != CREATED:
            raise Unknown(f"container {c.id} is not in created state: {oci_state(c.state)}")
        async with self.step("getSandbox"):
            pass
        rt = self.runtime(c.runtime_handler)
        try:
            async with self.step(OCI_RUNTIME + "StartContainer"):
                c.started_at = await rt.start_container(c)
            c.state = RUNNING
        finally:
            await self.state_to_disk(rt, c)
        await self.generate_event(c.id, c.sandbox_id, pb.CONTAINER_STARTED_EVENT)
        log.info("Started container", extra={"fields": {
            "description": description(c.labels), "containerID": c.id, "sandboxID": c.sandbox_id, "PID": c.pid}})
        return pb.StartContainerResponse()
