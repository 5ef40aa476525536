"""RemoveContainer (CRI-O's server/container_remove.go) and removeContainerInPod, which RemovePodSandbox
shares."""

from __future__ import annotations

import logging

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio import bundles
from fake_crio.runtimes import Runtime
from fake_crio.server.container_stop import ContainerStop
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import LIB_SERVER, OCI_RUNTIME, SANDBOX, STORAGE, description, stop_timeout
from fake_crio.state import SANDBOX_NOTREADY, ContainerRecord, SandboxRecord
from fake_crio.tracing import step_span

log = logging.getLogger(__name__)


class ContainerRemove(ContainerStop, ServerBase):
    @step_span("RemoveContainer")
    async def remove_container(self, request: pb.RemoveContainerRequest) -> pb.RemoveContainerResponse:
        log.info("Removing container: %s", request.container_id)
        try:
            c = self.store.container(request.container_id)
        except NotFound:
            return pb.RemoveContainerResponse()  # CRI-O: an unknown id is already removed
        async with self.step("getSandbox"):
            sb = self.store.sandboxes.get(c.sandbox_id)
        await self.remove_in_pod(c, sb)
        await self.generate_event(c.id, c.sandbox_id, pb.CONTAINER_DELETED_EVENT)
        log.info("Removed container %s: %s", c.id, description(c.labels))
        return pb.RemoveContainerResponse()

    async def remove_in_pod(self, c: ContainerRecord | None, sb: SandboxRecord | None,
                            rt: Runtime | None = None) -> None:
        """server.(*Server).removeContainerInPod; ``c`` None is the sandbox's infra container."""
        async with self.step("removeContainerInPod"):
            if c is not None and (sb is None or sb.state != SANDBOX_NOTREADY):
                stop_timeout()
                await self.stop_one(c, 0)
            rt = rt if c is None else self.runtime_or_none(c.runtime_handler)
            async with self.step(OCI_RUNTIME + "DeleteContainer"):
                if c is None:
                    if rt is not None:
                        await rt.delete_sandbox(sb)
                elif rt is not None:
                    await rt.remove_container(c)
            async with self.step("internal/oci.(*Container).CleanupConmonCgroup"):
                pass
            async with self.step(STORAGE + "DeleteContainer"):
                pass
            async with self.step(LIB_SERVER + "ReleaseContainerName"):
                pass
            async with self.step("removeContainer"), self.step(LIB_SERVER + "RemoveContainer"), \
                    self.step(SANDBOX + "RemoveContainer"):
                if c is not None:
                    bundles.remove(c)
                    self.store.delete_container(c.id)
            async with self.step(SANDBOX + "RemoveContainer"):
                pass
