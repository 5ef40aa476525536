"""ListPodSandbox and StreamPodSandboxes (CRI-O's server/sandbox_list.go)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio import filters
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import STREAM_CHUNK_SIZE
from fake_crio.state import SandboxRecord
from fake_crio.tracing import step_span


def sandbox_message(sb: SandboxRecord) -> pb.PodSandbox:
    return pb.PodSandbox(
        id=sb.id, metadata=pb.PodSandboxMetadata(name=sb.name, uid=sb.uid, namespace=sb.namespace,
                                                 attempt=sb.attempt),
        state=sb.state, created_at=sb.created_at, labels=sb.labels, annotations=sb.annotations,
        runtime_handler=sb.runtime_handler)


class SandboxList(ServerBase):
    @step_span("ListPodSandbox")
    async def list_pod_sandbox(self, request: pb.ListPodSandboxRequest) -> pb.ListPodSandboxResponse:
        async with self.step("filterSandboxList"):
            if request.HasField("filter"):
                items = self.list_items((sb for sb in self.candidates(request.filter, "sandbox")
                                         if filters.sandbox_matches(sb, request.filter)), sandbox_message)
            else:
                items = self.list_items(self.store.sandboxes.values(), sandbox_message)
        return pb.ListPodSandboxResponse(items=items)

    async def stream_pod_sandboxes(
            self, request: pb.StreamPodSandboxesRequest) -> AsyncIterator[pb.StreamPodSandboxesResponse]:
        # listPodSandboxes (filterSandboxList opens its step), in chunks.
        async with self.step("filterSandboxList"):
            items = self.list_items((sb for sb in self.store.sandboxes.values()
                                     if not request.HasField("filter")
                                     or filters.sandbox_matches(sb, request.filter)), sandbox_message)
        for i in range(0, len(items), STREAM_CHUNK_SIZE):
            yield pb.StreamPodSandboxesResponse(pod_sandboxes=items[i:i + STREAM_CHUNK_SIZE])
