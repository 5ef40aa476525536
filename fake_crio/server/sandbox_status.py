"""PodSandboxStatus (CRI-O's server/sandbox_status.go)."""

from __future__ import annotations

import json
import time

from google.protobuf import json_format

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase
from fake_crio.tracing import step_span


class SandboxStatus(ServerBase):
    @step_span("PodSandboxStatus")
    async def pod_sandbox_status(self, request: pb.PodSandboxStatusRequest) -> pb.PodSandboxStatusResponse:
        try:
            sb = await self.get_sandbox_from_request(request.pod_sandbox_id)
        except NotFound as err:
            raise NotFound(f"could not find pod {request.pod_sandbox_id!r}: {err}") from None
        status = pb.PodSandboxStatus(
            id=sb.id, metadata=pb.PodSandboxMetadata(name=sb.name, uid=sb.uid, namespace=sb.namespace,
                                                    attempt=sb.attempt), state=sb.state, created_at=sb.created_at,
            network=pb.PodSandboxNetworkStatus(ip=sb.ip), labels=sb.labels, annotations=sb.annotations,
            runtime_handler=sb.runtime_handler)
        namespace_options = sb.config.get("linux", {}).get("security_context", {}).get("namespace_options")
        if namespace_options:  # (parsing even an empty dict costs more than the rest of the answer)
            json_format.ParseDict(namespace_options, status.linux.namespaces.options, ignore_unknown_fields=True)
        info = {}
        if request.verbose:
            info["info"] = json.dumps({
                "id": sb.id, "image": self.config.pause_image, "runtimeHandler": sb.runtime_handler,
                "logDirectory": sb.log_directory, "hostname": sb.hostname or sb.name, "ip": sb.ip,
                "config": sb.config,
            })
        resp = pb.PodSandboxStatusResponse(status=status, info=info)
        if self.events.enabled:
            # With pod events on, the evented PLEG reads the pod's container statuses from here, and the
            # timestamp tells it that they are there. Without, both stay unset (a non-zero timestamp with no
            # statuses makes the kubelet re-create the containers).
            resp.timestamp = time.time_ns()
            resp.containers_statuses.extend(await self.container_statuses(pb.ContainerFilter(pod_sandbox_id=sb.id)))
        return resp
