"""StopPodSandbox (CRI-O's server/sandbox_stop.go and sandbox_stop_linux.go)."""

from __future__ import annotations

import asyncio
import logging

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.container_stop import ContainerStop
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import SANDBOX, stop_timeout
from fake_crio.state import EXITED, SANDBOX_NOTREADY
from fake_crio.tracing import step_span

log = logging.getLogger(__name__)


class SandboxStop(ContainerStop, ServerBase):
    @step_span("StopPodSandbox")
    async def stop_pod_sandbox(self, request: pb.StopPodSandboxRequest) -> pb.StopPodSandboxResponse:
        log.info("Stopping pod sandbox: %s", request.pod_sandbox_id)
        try:
            sb = await self.get_sandbox_from_request(request.pod_sandbox_id)
        except NotFound as err:
            # Stopping is idempotent: a sandbox that is gone is stopped.
            log.warning("Could not get sandbox %s, it's probably been stopped already: %s",
                        request.pod_sandbox_id, err)
            return pb.StopPodSandboxResponse()
        async with self.step("stopPodSandbox"):
            # sandbox_stop_linux.go stopPodSandbox: the whole stop holds the sandbox's StopMutex, for which
            # CreateContainer holds it shared (container_create.go): creations in flight finish first, and are
            # stopped below; later ones find the sandbox stopped.
            async with self.stop_lock(sb.id).write():
                await self._stop_pod_sandbox(sb)
        return pb.StopPodSandboxResponse()

    async def _stop_pod_sandbox(self, sb) -> None:  # noqa: ANN001 - a SandboxRecord
        stop_timeout()
        rt = self.runtime_or_none(sb.runtime_handler)
        async with self.step("networkStop"):
            pass
        if sb.state == SANDBOX_NOTREADY:
            log.info("Stopped pod sandbox (already stopped): %s", sb.id)
            return
        running = [c for c in self.store.containers_of(sb.id) if (await self.refresh(c)).state != EXITED]
        await asyncio.gather(*(self.stop_one(c, 0) for c in running))
        await self.stop_one(None, 0, rt=rt, infra_id=sb.id)  # the (spoofed) infra container
        if rt is not None:
            await rt.stop_sandbox(sb)
        async with self.step(SANDBOX + "UnmountShm"):
            pass
        log.info("Stopped pod sandbox: %s", sb.id)
        async with self.step(SANDBOX + "SetStopped"), self.step(SANDBOX + "createFileInInfraDir"):
            sb.state = SANDBOX_NOTREADY
            self.store.save_sandbox(sb)
        # sandbox_stop_linux.go: a spoofed infra container has no exit to notice.
        await self.generate_event(sb.id, sb.id, pb.CONTAINER_STOPPED_EVENT)
