"""The kubelet's periodic work against the runtime, each tick a trace of its own (the real kubelet
starts these calls with no span current, so each CRI call is a root):

| loop                | real period (hard-coded unless a key is named)     | CRI calls (roots)                    |
|---------------------|----------------------------------------------------|--------------------------------------|
| runtime status      | 5 s (kubelet.go updateRuntimeUp)                   | Status                               |
| housekeeping        | 2 s (kubelet.go housekeepingPeriod: runtime cache) | ListPodSandbox, ListContainers       |
| eviction manager    | 10 s (eviction monitoringInterval)                 | ImageFsInfo; once the image fs is    |
|                     |                                                    | found: Version, ImageFsInfo,         |
|                     |                                                    | ListContainers, ListPodSandbox,      |
|                     |                                                    | ListContainerStats                   |
| container log mgr   | containerLogMonitorInterval (10 s)                 | ListContainers (running), then       |
|                     |                                                    | ContainerStatus per container        |
| image cache         | 30 s (images/image_gc_manager.go)                  | ListImages                           |
| container GC        | 1 min (ContainerGCPeriod)                          | Containers/GarbageCollect span       |
| image GC            | 5 min (ImageGCPeriod)                              | Images/GarbageCollect span           |

The recorded periods are the defaults of fake-kubelet's mock-only flags (``--*-period``), so
demos and tests can run them faster without changing what any KubeletConfiguration key means.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_kubelet import containerlogs, stats
from fake_kubelet.cri import UID_LABEL, CriClient, operation

log = logging.getLogger(__name__)

KUBERUNTIME_SCOPE = "k8s.io/kubernetes/pkg/kubelet/kuberuntime"
IMAGES_SCOPE = "k8s.io/kubernetes/pkg/kubelet/images"


async def keep_running(period: float, fn: Callable[[], Awaitable[None]], what: str, *,
                       first: float | None = 0.0, pause: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
    """Runs ``fn`` every ``period`` seconds for as long as the kubelet runs: a failure (a runtime that does
    not answer, a bug of ours) is logged once for each distinct error, with one line when it works again,
    and never ends the loop. ``first`` is the delay before the first run (None: one period). ``pause`` waits
    between runs (e.g. ``DirWatch.wait``, which returns early when there is something to do)."""
    last_error = ""
    await pause(period if first is None else first)
    while True:
        try:
            await fn()
            if last_error:
                log.info("%s works again", what)
            last_error = ""
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - a loop that dies silently is worse than any error
            if isinstance(err, grpc.aio.AioRpcError):
                text = f"{err.code().name}: {err.details()}"
            elif isinstance(err, stats.StatsError):
                text = str(err)
            else:
                text = f"{type(err).__name__}: {err}"
            if text != last_error:
                if isinstance(err, (grpc.aio.AioRpcError, stats.StatsError)):
                    log.warning("%s failed: %s", what, text)
                else:
                    log.error("%s failed: %s", what, text, exc_info=err)
            last_error = text
        await pause(period)


async def every(period: float, fn: Callable[[], Awaitable[None]], what: str, op: str, *,
                first: float | None = 0.0) -> None:
    """``keep_running`` for a periodic CRI loop: each tick outside any span (its calls are roots of their
    own, as the real kubelet's are), its calls labelled ``op`` in --record-cri-calls."""
    otel_context.attach(otel_context.Context())
    token = operation.set(op)
    try:
        await keep_running(period, fn, what, first=first)
    finally:
        operation.reset(token)


class RuntimeLoops:
    """The periodic CRI work of one kubelet (see the module docstring)."""

    def __init__(self, cri: CriClient, node_name: str, kuberuntime: trace.Tracer, images: trace.Tracer,
                 active_pods: Callable[[], set[str]], removable_pods: Callable[[], set[str]],
                 pod_logs_dir: Path | None = None) -> None:
        self.cri = cri
        self.pod_logs_dir = pod_logs_dir  # where the kubelet's pods log: it deletes the logs it made
        self.node_name = node_name
        self.kuberuntime = kuberuntime
        self.images = images
        self.active_pods = active_pods  # uids the kubelet still has (running or finished, manifest present)
        self.removable_pods = removable_pods  # deleted pods whose workers are done
        self.image_fs_found = False

    async def runtime_status(self) -> None:
        await self.cri.call("Status", pb.StatusRequest())

    async def housekeeping(self) -> None:
        await self.cri.call("ListPodSandbox", pb.ListPodSandboxRequest())
        await self.cri.call("ListContainers", pb.ListContainersRequest())

    async def eviction(self) -> None:
        """The eviction manager's synchronize: it learns whether the image fs is dedicated
        (ImageFsInfo) before it asks for the summary; a missing filesystem stops it there."""
        if not self.image_fs_found:
            await stats.image_fs(self.cri)
            self.image_fs_found = True
            return
        await stats.summary(self.cri, self.node_name)

    async def rotate_logs(self) -> None:
        """The container log manager: the running containers, and each one's log path."""
        running = await self.cri.call("ListContainers", pb.ListContainersRequest(
            filter=pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))))
        for c in running.containers:
            try:
                await self.cri.call("ContainerStatus", pb.ContainerStatusRequest(container_id=c.id))
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.NOT_FOUND:
                    raise

    async def image_cache(self) -> None:
        await self.cri.call("ListImages", pb.ListImagesRequest())

    async def image_gc(self) -> None:
        """Images/GarbageCollect: which images are in use, and how full the image fs is. We never
        reach the high threshold, so nothing is removed (as in the recordings)."""
        with self.images.start_as_current_span("Images/GarbageCollect", context=otel_context.Context()):
            await self.cri.call("ListImages", pb.ListImagesRequest())
            await self.cri.call("ListPodSandbox", pb.ListPodSandboxRequest())
            await self.cri.call("ListContainers", pb.ListContainersRequest())
            try:
                await stats.image_fs(self.cri)
            except stats.StatsError as err:
                # The real manager logs "Image garbage collection failed"; its span stays unset.
                log.warning("image garbage collection failed: %s", err)

    async def container_gc(self) -> None:
        """Containers/GarbageCollect (kuberuntime_gc.go): evict the dead containers of deleted pods
        and all but the newest dead container per (pod, name), then the sandboxes of deleted pods
        that have no containers left."""
        with self.kuberuntime.start_as_current_span("Containers/GarbageCollect", context=otel_context.Context()):
            active = self.active_pods()
            removable = self.removable_pods()
            listed = (await self.cri.call("ListContainers", pb.ListContainersRequest())).containers
            for c in self._evictable(listed, active, removable):
                # One status for the log path, one in killContainer's pre-check, then the removal. A container
                # another loop removed meanwhile (the pod container deletor) is skipped, as the kubelet's GC
                # logs a failed removal and goes on with the next (kuberuntime_gc.go removeOldestN).
                try:
                    status = await self.cri.call("ContainerStatus", pb.ContainerStatusRequest(container_id=c.id))
                    self.clean_logs(status.status.log_path)
                    await self.cri.call("ContainerStatus", pb.ContainerStatusRequest(container_id=c.id))
                    await self.cri.call("RemoveContainer", pb.RemoveContainerRequest(container_id=c.id))
                except grpc.aio.AioRpcError as err:
                    if err.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    log.info("garbage collection: container %s is already gone", c.id[:13])
            containers = (await self.cri.call("ListContainers", pb.ListContainersRequest())).containers
            sandboxes = (await self.cri.call("ListPodSandbox", pb.ListPodSandboxRequest())).items
            busy = {c.pod_sandbox_id for c in containers}
            for sb in sandboxes:
                if sb.labels.get(UID_LABEL) not in removable or sb.id in busy:
                    continue
                try:
                    await self.cri.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sb.id))
                    await self.cri.call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sb.id))
                except grpc.aio.AioRpcError as err:
                    if err.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    continue
                log.info("garbage collection removed sandbox %s of pod %s/%s", sb.id[:13], sb.metadata.namespace,
                         sb.metadata.name)
            if self.pod_logs_dir is not None:
                for gone in containerlogs.evict_pod_log_dirs(self.pod_logs_dir, removable):
                    log.info("garbage collection removed the logs of deleted pod %s", gone.name)

    def clean_logs(self, log_path: str) -> None:
        """The container log manager's Clean, before a container is removed (kuberuntime removeContainerLog)."""
        if self.pod_logs_dir is not None:
            containerlogs.clean(log_path, self.pod_logs_dir)

    @staticmethod
    def _evictable(listed: list[pb.Container], active: set[str], removable: set[str]) -> list[pb.Container]:
        dead = [c for c in listed if c.state == pb.CONTAINER_EXITED]
        out = [c for c in dead if c.labels.get(UID_LABEL) in removable]
        newest: dict[tuple[str, str], pb.Container] = {}
        for c in dead:
            uid = c.labels.get(UID_LABEL, "")
            if uid not in active:
                continue
            key = (uid, c.metadata.name)
            if key not in newest or c.created_at > newest[key].created_at:
                newest[key] = c
        out += [c for c in dead if c.labels.get(UID_LABEL) in active and newest.get(
            (c.labels.get(UID_LABEL, ""), c.metadata.name)) is not c]
        return out
