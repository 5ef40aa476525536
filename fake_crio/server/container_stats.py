"""ContainerStats (CRI-O's server/container_stats.go): usage read from /proc for a live container."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase
from fake_crio.state import RUNNING, ContainerRecord
from fake_crio.tracing import step_span


def proc_usage(pid: int) -> tuple[int, int]:
    """CPU time (ns) and resident memory (bytes) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) * 1_000_000_000 // ticks
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return cpu, rss
    except (OSError, IndexError, ValueError):
        return 0, 0


class ContainerStats(ServerBase):
    @step_span("ContainerStats")
    async def container_stats(self, request: pb.ContainerStatsRequest) -> pb.ContainerStatsResponse:
        c = await self.refresh(self.store.container(request.container_id))
        return pb.ContainerStatsResponse(stats=self.stats_of(c))

    def stats_of(self, c: ContainerRecord) -> pb.ContainerStats:
        now = time.time_ns()
        cpu_ns, rss = proc_usage(c.pid) if c.state == RUNNING else (0, 0)
        return pb.ContainerStats(
            attributes=pb.ContainerAttributes(id=c.id, metadata=pb.ContainerMetadata(name=c.name, attempt=c.attempt),
                                              labels=c.labels, annotations=c.annotations),
            cpu=pb.CpuUsage(timestamp=now, usage_core_nano_seconds=pb.UInt64Value(value=cpu_ns)),
            memory=pb.MemoryUsage(timestamp=now, working_set_bytes=pb.UInt64Value(value=rss),
                                  rss_bytes=pb.UInt64Value(value=rss)),
            writable_layer=pb.FilesystemUsage(timestamp=now, fs_id=pb.FilesystemIdentifier(
                mountpoint=str(self.store.work_dir)), used_bytes=pb.UInt64Value(value=0),
                inodes_used=pb.UInt64Value(value=0)))
