"""ContainerStatus (CRI-O's server/container_status.go)."""

from __future__ import annotations

import json

from google.protobuf import json_format

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase
from fake_crio.state import RUNNING
from fake_crio.tracing import step_span


class ContainerStatus(ServerBase):
    @step_span("ContainerStatus")
    async def container_status(self, request: pb.ContainerStatusRequest) -> pb.ContainerStatusResponse:
        try:
            c = self.store.container(request.container_id)
        except NotFound as err:
            raise NotFound(f"could not find container {request.container_id!r}: {err}") from None
        c = await self.refresh(c)
        status = pb.ContainerStatus(
            id=c.id, metadata=pb.ContainerMetadata(name=c.name, attempt=c.attempt), state=c.state,
            created_at=c.created_at, started_at=c.started_at, finished_at=c.finished_at,
            exit_code=c.exit_code, image=pb.ImageSpec(image=c.image_name), image_ref=c.image_ref,
            reason=c.reason, message=c.message, labels=c.labels, annotations=c.annotations,
            log_path=c.log_path, image_id=c.image_ref)
        if c.resources:
            json_format.ParseDict(c.resources, status.resources.linux, ignore_unknown_fields=True)
        info = {}
        if request.verbose:
            info["info"] = json.dumps({
                "sandboxID": c.sandbox_id, "pid": c.pid if c.state == RUNNING else 0,
                "runtimeHandler": c.runtime_handler, "privileged": False,
                "runtimeSpec": {"process": {"args": c.argv, "env": [f"{k}={v}" for k, v in c.env.items()],
                                            "cwd": c.working_dir}},
            })
        return pb.ContainerStatusResponse(status=status, info=info)
