"""ListContainerStats and StreamContainerStats (CRI-O's server/container_stats_list.go)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio import filters
from fake_crio.server.container_stats import ContainerStats
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import STREAM_CHUNK_SIZE


class ContainerStatsList(ContainerStats, ServerBase):
    async def _all_stats(self, request: pb.ListContainerStatsRequest | pb.StreamContainerStatsRequest) -> list:
        await self.refresh_all()
        f = request.filter if request.HasField("filter") else None
        return [self.stats_of(c) for c in self.store.containers.values() if filters.stats_matches(c, f)]

    async def list_container_stats(self, request: pb.ListContainerStatsRequest) -> pb.ListContainerStatsResponse:
        return pb.ListContainerStatsResponse(stats=await self._all_stats(request))

    async def stream_container_stats(
            self, request: pb.StreamContainerStatsRequest) -> AsyncIterator[pb.StreamContainerStatsResponse]:
        # listContainerStats, in chunks (the kubelet's CRIListStreaming gate).
        stats = await self._all_stats(request)
        for i in range(0, len(stats), STREAM_CHUNK_SIZE):
            yield pb.StreamContainerStatsResponse(container_stats=stats[i:i + STREAM_CHUNK_SIZE])
