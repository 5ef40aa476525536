"""RemovePodSandbox (CRI-O's server/sandbox_remove.go)."""

from __future__ import annotations

import logging

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.container_remove import ContainerRemove
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import LIB_SERVER, SANDBOX
from fake_crio.tracing import step_span

log = logging.getLogger(__name__)


class SandboxRemove(ContainerRemove, ServerBase):
    @step_span("RemovePodSandbox")
    async def remove_pod_sandbox(self, request: pb.RemovePodSandboxRequest) -> pb.RemovePodSandboxResponse:
        log.info("Removing pod sandbox: %s", request.pod_sandbox_id)
        try:
            sb = await self.get_sandbox_from_request(request.pod_sandbox_id)
        except NotFound as err:
            log.warning("Could not get sandbox %s, it's probably been removed already: %s",
                        request.pod_sandbox_id, err)
            return pb.RemovePodSandboxResponse()
        async with self.step("removePodSandbox"):
            for c in self.store.containers_of(sb.id):
                await self.remove_in_pod(c, sb)
            rt = self.runtime_or_none(sb.runtime_handler)
            async with self.step(SANDBOX + "UnmountShm"):
                pass
            async with self.step("removeInfraContainer"), self.step(LIB_SERVER + "RemoveInfraContainer"):
                pass
            await self.remove_in_pod(None, sb, rt=rt)  # the (spoofed) infra container
            if rt is not None:
                await rt.stop_sandbox(sb)
            async with self.step("networkStop"):
                pass
            async with self.step("removeSandbox"), self.step(LIB_SERVER + "RemoveSandbox"):
                self.store.delete_sandbox(sb.id)
                self.forget_stop_lock(sb.id)
            log.info("Removed pod sandbox: %s", sb.id)
        return pb.RemovePodSandboxResponse()
