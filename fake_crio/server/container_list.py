"""ListContainers and StreamContainers (CRI-O's server/container_list.go)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio import filters
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import STREAM_CHUNK_SIZE
from fake_crio.state import ContainerRecord
from fake_crio.tracing import step_span

log = logging.getLogger(__name__)


def container_message(c: ContainerRecord) -> pb.Container:
    return pb.Container(
        id=c.id, pod_sandbox_id=c.sandbox_id, metadata=pb.ContainerMetadata(name=c.name, attempt=c.attempt),
        image=pb.ImageSpec(image=c.image), image_ref=c.image_ref, state=c.state, created_at=c.created_at,
        labels=c.labels, annotations=c.annotations, image_id=c.image_ref)


class ContainerList(ServerBase):
    @step_span("ListContainers")
    async def list_containers(self, request: pb.ListContainersRequest) -> pb.ListContainersResponse:
        candidates = self.candidates(request.filter if request.HasField("filter") else None, "container")
        await self.refresh_all(candidates)
        async with self.step("filterContainerList"):
            f = request.filter
            if not (f.id or f.pod_sandbox_id or f.HasField("state") or f.label_selector):
                log.debug("No filters were applied, returning full container list")
            if request.HasField("filter"):
                items = self.list_items((c for c in candidates
                                         if filters.container_matches(c, request.filter)), container_message)
            else:
                items = self.list_items(self.store.containers.values(), container_message)
        return pb.ListContainersResponse(containers=items)

    async def stream_containers(
            self, request: pb.StreamContainersRequest) -> AsyncIterator[pb.StreamContainersResponse]:
        # listContainers without ListContainers' own step, in chunks.
        await self.refresh_all()
        if request.HasField("filter"):
            async with self.step("filterContainerList"):
                items = self.list_items((c for c in self.store.containers.values()
                                         if filters.container_matches(c, request.filter)), container_message)
        else:
            items = self.list_items(self.store.containers.values(), container_message)
        for i in range(0, len(items), STREAM_CHUNK_SIZE):
            yield pb.StreamContainersResponse(containers=items[i:i + STREAM_CHUNK_SIZE])
