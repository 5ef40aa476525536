"""ContainerStats and ListContainerStats (internal/cri/server/container_stats.go, container_stats_list.go of
containerd v2.4.2): the tasks' metrics (the shim's Stats, a CLIENT span each under the call's span), turned
into the CRI's CPU, memory and writable-layer figures. The figures come from /proc of the container's process
(cristack.containers.usage), the writable layer is empty."""

from __future__ import annotations

import time

from cristack.containers.usage import process_usage
from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.cri.container_status import matches
from fake_containerd.cri.service import CriService
from fake_containerd.cri.store import ContainerRecord


def _stats(c: CriService, record: ContainerRecord) -> pb.ContainerStats:
    now = time.time_ns()
    cpu, rss = process_usage(record.pid) if record.state == pb.CONTAINER_RUNNING else (0, 0)
    return pb.ContainerStats(
        attributes=pb.ContainerAttributes(id=record.id, metadata=record.config.metadata, labels=record.config.labels,
                                          annotations=record.config.annotations),
        cpu=pb.CpuUsage(timestamp=now, usage_core_nano_seconds=pb.UInt64Value(value=cpu)),
        memory=pb.MemoryUsage(timestamp=now, working_set_bytes=pb.UInt64Value(value=rss),
                              rss_bytes=pb.UInt64Value(value=rss)),
        writable_layer=pb.FilesystemUsage(timestamp=now, fs_id=pb.FilesystemIdentifier(
            mountpoint=str(c.images.store.snapshots)), used_bytes=pb.UInt64Value(value=0),
            inodes_used=pb.UInt64Value(value=0)))


async def container_stats(c: CriService, container_id: str) -> pb.ContainerStats:
    try:
        record = c.stores.container(container_id)
    except NotFound:
        raise NotFound('failed to find container: not found') from None
    await c.client.tasks.metrics([record.id])
    return _stats(c, record)


async def list_container_stats(c: CriService, flt: pb.ContainerStatsFilter | None) -> list[pb.ContainerStats]:
    records = [r for r in c.stores.containers.values() if matches(r, flt)]
    await c.client.tasks.metrics([r.id for r in records])
    return [_stats(c, r) for r in records]
