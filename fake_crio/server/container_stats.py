"""ContainerStats (CRI-O's server/container_stats.go): usage read from /proc for a live container
(cristack.containers.usage, as fake-containerd reads it)."""

from __future__ import annotations

import time

from cristack.containers.usage import process_usage
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase
from fake_crio.state import RUNNING, ContainerRecord
from fake_crio.tracing import step_span


class ContainerStats(ServerBase):
    @step_span("ContainerStats")
    async def container_stats(self, request: pb.ContainerStatsRequest) -> pb.ContainerStatsResponse:
        c = await self.refresh(self.store.container(request.container_id))
        return pb.ContainerStatsResponse(stats=self.stats_of(c))

    def stats_of(self, c: ContainerRecord) -> pb.ContainerStats:
        now = time.time_ns()
        cpu_ns, rss = process_usage(c.pid) if c.state == RUNNING else (0, 0)
        return pb.ContainerStats(
            attributes=pb.ContainerAttributes(id=c.id, metadata=pb.ContainerMetadata(name=c.name, attempt=c.attempt),
                                              labels=c.labels, annotations=c.annotations),
            cpu=pb.CpuUsage(timestamp=now, usage_core_nano_seconds=pb.UInt64Value(value=cpu_ns)),
            memory=pb.MemoryUsage(timestamp=now, working_set_bytes=pb.UInt64Value(value=rss),
                                  rss_bytes=pb.UInt64Value(value=rss)),
            writable_layer=pb.FilesystemUsage(timestamp=now, fs_id=pb.FilesystemIdentifier(
                mountpoint=str(self.store.work_dir)), used_bytes=pb.UInt64Value(value=0),
                inodes_used=pb.UInt64Value(value=0)))
