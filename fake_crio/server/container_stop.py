"""StopContainer (CRI-O's server/container_stop.go) and the stopContainer step StopPodSandbox shares."""

from __future__ import annotations

import logging
import time

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.runtimes import Runtime
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import OCI_IMPL, OCI_RUNTIME, STORAGE, description
from fake_crio.state import EXITED, RUNNING, ContainerRecord
from fake_crio.tracing import step_span

log = logging.getLogger(__name__)


class ContainerStop(ServerBase):
    @step_span("StopContainer")
    async def stop_container(self, request: pb.StopContainerRequest) -> pb.StopContainerResponse:
        log.info("Stopping container: %s (timeout: %ds)", request.container_id, request.timeout)
        try:
            c = self.store.container(request.container_id)
        except NotFound:
            return pb.StopContainerResponse()  # CRI-O: an unknown id is already stopped
        await self.stop_one(c, request.timeout)
        log.info("Stopped container %s: %s", c.id, description(c.labels))
        return pb.StopContainerResponse()

    async def stop_one(self, c: ContainerRecord | None, timeout: int, rt: Runtime | None = None,
                       infra_id: str = "") -> None:
        """server.(*Server).stopContainer; ``c`` None is the sandbox's spoofed infra container
        (whose id is the sandbox's, ``infra_id``)."""
        async with self.step("stopContainer"):
            async with self.step("getSandbox"):
                pass
            rt = rt if c is None else self.runtime_or_none(c.runtime_handler)
            async with self.step(OCI_RUNTIME + "StopContainer"):
                if c is not None and (await self.refresh(c)).state == RUNNING and rt is not None:
                    await rt.stop_container(c, max(timeout, 0))
                else:
                    async with self.step(OCI_IMPL + "StopContainer"):
                        pass  # already stopped: runc has nothing to do
            async with self.step(STORAGE + "StopContainer"):
                log.debug("Unmounted container %s", c.id if c is not None else infra_id)
            if c is not None:
                await self._settle(c)
            await self.update_status(rt, c)
            await self.state_to_disk(rt, c)

    async def _settle(self, c: ContainerRecord) -> None:
        await self.refresh(c)
        if c.state != EXITED:  # never started, or the exit file is not there yet
            c.state, c.finished_at = EXITED, c.finished_at or time.time_ns()
            if c.started_at == 0:
                c.exit_code, c.reason = 137, "Error"
