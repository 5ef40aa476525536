"""ExecSync (CRI-O's server/container_execsync.go)."""

from __future__ import annotations

from cristack.wire.errors import DeadlineExceeded, NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import OCI_RUNTIME, Unknown, oci_state
from fake_crio.state import RUNNING
from fake_crio.tracing import step_span


class ContainerExecSync(ServerBase):
    @step_span("ExecSync")
    async def exec_sync(self, request: pb.ExecSyncRequest) -> pb.ExecSyncResponse:
        try:
            c = self.store.container(request.container_id)
        except NotFound as err:
            raise NotFound(f"could not find container {request.container_id!r}: {err}") from None
        c = await self.refresh(c)
        if c.state != RUNNING:
            raise NotFound(f"container is not created or running: container {c.id[:13]} is {oci_state(c.state)}")
        if not request.cmd:
            raise Unknown("exec command cannot be empty")
        cap = self.config.max_exec_seconds
        timeout = cap if request.timeout <= 0 else min(request.timeout, cap)
        async with self.step(OCI_RUNTIME + "ExecSyncContainer"):
            result = await self.runtime(c.runtime_handler).exec_sync(c, list(request.cmd), int(timeout))
        if result.timed_out:
            raise DeadlineExceeded(f"command {' '.join(request.cmd)!r} timed out after {int(timeout)}s")
        return pb.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code)
