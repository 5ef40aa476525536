"""The CRI gRPC services (runtime.v1 RuntimeService and ImageService) over the plugin's core: each method logs
as the instrumented service does (fake_containerd.cri.instrument), calls the module that models the upstream
file, and builds the response. Methods not defined here answer UNIMPLEMENTED naming fake-containerd."""

from __future__ import annotations

import time
from collections.abc import Iterator

from cristack.containers.usage import process_usage
from cristack.wire.errors import InvalidArgument, NotFound, serve_errors
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from fake_containerd.cri import (
    container_create,
    container_execsync,
    container_remove,
    container_start,
    container_stats,
    container_status,
    container_stop,
    sandbox_remove,
    sandbox_run,
    sandbox_status,
    sandbox_stop,
    status,
)
from fake_containerd.cri.gotext import go_slice, proto_text
from fake_containerd.cri.images.image_pull import pull_image
from fake_containerd.cri.instrument import finished, logged, started
from fake_containerd.cri.service import CriService
from fake_containerd.cri.store import SANDBOX_READY
from fake_containerd.shim.service import REOPEN_LOG

COMPONENT = "fake-containerd"
STREAM_BATCH_SIZE = 5000  # internal/cri/util/stream.go DefaultStreamBatchSize


def batches(items: list) -> Iterator[list]:
    """criutil.SendInBatches: at most STREAM_BATCH_SIZE a message (and none for an empty list)."""
    for i in range(0, len(items), STREAM_BATCH_SIZE):
        yield items[i:i + STREAM_BATCH_SIZE]


@serve_errors(COMPONENT, pbgrpc.RuntimeServiceServicer)
class RuntimeService(pbgrpc.RuntimeServiceServicer):
    def __init__(self, c: CriService) -> None:
        self.c = c

    async def Version(self, request, context):
        return status.version()

    async def Status(self, request, context):
        return status.status(self.c, request.verbose)

    async def RuntimeConfig(self, request, context):
        return status.runtime_config(self.c)

    async def UpdateRuntimeConfig(self, request, context):
        started("UpdateRuntimeConfig with config %s", proto_text(request.runtime_config), debug=True)
        status.update_runtime_config(self.c, request)
        finished("UpdateRuntimeConfig returns successfully", debug=True)
        return pb.UpdateRuntimeConfigResponse()

    # -- sandboxes

    async def RunPodSandbox(self, request, context):
        md = proto_text(request.config.metadata)
        started("RunPodSandbox for %s", md)
        with logged(f"RunPodSandbox for {md} failed, error"):
            sid = await sandbox_run.run_pod_sandbox(self.c, request)
        finished('RunPodSandbox for %s returns sandbox id "%s"', md, sid)
        return pb.RunPodSandboxResponse(pod_sandbox_id=sid)

    async def StopPodSandbox(self, request, context):
        sid = request.pod_sandbox_id
        started('StopPodSandbox for "%s"', sid)
        with logged(f'StopPodSandbox for "{sid}" failed'):
            await sandbox_stop.stop_pod_sandbox(self.c, sid)
        finished('StopPodSandbox for "%s" returns successfully', sid)
        return pb.StopPodSandboxResponse()

    async def RemovePodSandbox(self, request, context):
        sid = request.pod_sandbox_id
        started('RemovePodSandbox for "%s"', sid)
        with logged(f'RemovePodSandbox for "{sid}" failed'):
            await sandbox_remove.remove_pod_sandbox(self.c, sid)
        finished('RemovePodSandbox "%s" returns successfully', sid)
        return pb.RemovePodSandboxResponse()

    async def PodSandboxStatus(self, request, context):
        with logged(f'PodSandboxStatus for "{request.pod_sandbox_id}" failed', record=False):
            return sandbox_status.pod_sandbox_status(self.c, request.pod_sandbox_id, request.verbose)

    async def ListPodSandbox(self, request, context):
        flt = request.filter if request.HasField("filter") else None
        return pb.ListPodSandboxResponse(items=sandbox_status.list_pod_sandbox(self.c, flt))

    async def StreamPodSandboxes(self, request, context):
        """sandbox_stream.go: ListPodSandbox's answer in batches."""
        flt = request.filter if request.HasField("filter") else None
        for batch in batches(sandbox_status.list_pod_sandbox(self.c, flt)):
            yield pb.StreamPodSandboxesResponse(pod_sandboxes=batch)

    async def PodSandboxStats(self, request, context):
        with logged(f'PodSandboxStats for "{request.pod_sandbox_id}" failed', record=False):
            try:
                sandbox = self.c.stores.sandbox(request.pod_sandbox_id)
            except NotFound:
                raise NotFound(f'an error occurred when trying to find sandbox "{request.pod_sandbox_id}": '
                               "not found") from None
            return pb.PodSandboxStatsResponse(stats=self._sandbox_stats(sandbox))

    async def ListPodSandboxStats(self, request, context):
        flt = request.filter if request.HasField("filter") else None
        stats = [self._sandbox_stats(sb) for sb in self.c.stores.sandboxes.values()
                 if sb.state == SANDBOX_READY and (flt is None or (not flt.id or sb.id.startswith(flt.id))
                                                   and all(sb.config.labels.get(k) == v
                                                           for k, v in flt.label_selector.items()))]
        return pb.ListPodSandboxStatsResponse(stats=stats)

    async def StreamPodSandboxStats(self, request, context):
        """sandbox_stats_stream.go."""
        listed = await self.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(filter=request.filter), context)
        for batch in batches(list(listed.stats)):
            yield pb.StreamPodSandboxStatsResponse(pod_sandbox_stats=batch)

    def _sandbox_stats(self, sandbox) -> pb.PodSandboxStats:  # noqa: ANN001 - a store Sandbox
        now = time.time_ns()
        cpu, rss = process_usage(sandbox.pid)
        for record in self.c.stores.containers_of(sandbox.id):
            more_cpu, more_rss = process_usage(record.pid) if record.state == pb.CONTAINER_RUNNING else (0, 0)
            cpu, rss = cpu + more_cpu, rss + more_rss
        return pb.PodSandboxStats(
            attributes=pb.PodSandboxAttributes(id=sandbox.id, metadata=sandbox.config.metadata,
                                               labels=sandbox.config.labels, annotations=sandbox.config.annotations),
            linux=pb.LinuxPodSandboxStats(
                cpu=pb.CpuUsage(timestamp=now, usage_core_nano_seconds=pb.UInt64Value(value=cpu)),
                memory=pb.MemoryUsage(timestamp=now, working_set_bytes=pb.UInt64Value(value=rss),
                                      rss_bytes=pb.UInt64Value(value=rss)),
                containers=[container_stats._stats(self.c, r) for r in self.c.stores.containers_of(sandbox.id)]))

    # -- containers

    async def CreateContainer(self, request, context):
        sid, md = request.pod_sandbox_id, proto_text(request.config.metadata)
        started('CreateContainer within sandbox "%s" for container %s', sid, md)
        with logged(f'CreateContainer within sandbox "{sid}" for {md} failed'):
            cid = await container_create.create_container(self.c, request)
        finished('CreateContainer within sandbox "%s" for %s returns container id "%s"', sid, md, cid)
        return pb.CreateContainerResponse(container_id=cid)

    async def StartContainer(self, request, context):
        cid = request.container_id
        started('StartContainer for "%s"', cid)
        with logged(f'StartContainer for "{cid}" failed'):
            await container_start.start_container(self.c, cid)
        finished('StartContainer for "%s" returns successfully', cid)
        return pb.StartContainerResponse()

    async def StopContainer(self, request, context):
        cid = request.container_id
        started('StopContainer for "%s" with timeout %d (s)', cid, request.timeout)
        with logged(f'StopContainer for "{cid}" failed'):
            await container_stop.stop_container_by_id(self.c, cid, request.timeout)
        finished('StopContainer for "%s" returns successfully', cid)
        return pb.StopContainerResponse()

    async def RemoveContainer(self, request, context):
        cid = request.container_id
        started('RemoveContainer for "%s"', cid)
        with logged(f'RemoveContainer for "{cid}" failed'):
            await container_remove.remove_container(self.c, cid)
        finished('RemoveContainer for "%s" returns successfully', cid)
        return pb.RemoveContainerResponse()

    async def ContainerStatus(self, request, context):
        with logged(f'ContainerStatus for "{request.container_id}" failed', record=False):
            return container_status.container_status(self.c, request.container_id, request.verbose)

    async def ListContainers(self, request, context):
        flt = request.filter if request.HasField("filter") else None
        return pb.ListContainersResponse(containers=container_status.list_containers(self.c, flt))

    async def StreamContainers(self, request, context):
        """container_stream.go: ListContainers' answer in batches."""
        flt = request.filter if request.HasField("filter") else None
        for batch in batches(container_status.list_containers(self.c, flt)):
            yield pb.StreamContainersResponse(containers=batch)

    async def ExecSync(self, request, context):
        cid = request.container_id
        started('ExecSync for "%s" with command %s and timeout %d (s)', cid, go_slice(list(request.cmd)),
                request.timeout, debug=True)
        with logged(f'ExecSync for "{cid}" failed'):
            return await container_execsync.exec_sync(self.c, request)

    async def ContainerStats(self, request, context):
        with logged(f'ContainerStats for "{request.container_id}" failed', record=False):
            return pb.ContainerStatsResponse(stats=await container_stats.container_stats(self.c, request.container_id))

    async def ListContainerStats(self, request, context):
        flt = request.filter if request.HasField("filter") else None
        return pb.ListContainerStatsResponse(stats=await container_stats.list_container_stats(self.c, flt))

    async def StreamContainerStats(self, request, context):
        """container_stats_stream.go."""
        flt = request.filter if request.HasField("filter") else None
        for batch in batches(await container_stats.list_container_stats(self.c, flt)):
            yield pb.StreamContainerStatsResponse(container_stats=batch)

    async def UpdateContainerResources(self, request, context):
        cid = request.container_id
        started("UpdateContainerResources for \"%s\" with Linux: %s / Windows: <nil>", cid,
                proto_text(request.linux) if request.HasField("linux") else "<nil>")
        with logged(f'UpdateContainerResources for "{cid}" failed', record=False):
            try:
                record = self.c.stores.container(cid)
            except NotFound:
                raise NotFound(f'failed to find container: {cid}: not found') from None
            if record.state not in (pb.CONTAINER_CREATED, pb.CONTAINER_RUNNING):
                raise InvalidArgument(f"container {cid} is not running or created")
            if request.HasField("linux"):
                record.config.linux.resources.CopyFrom(request.linux)
        finished('UpdateContainerResources for "%s" returns successfully', cid)
        return pb.UpdateContainerResourcesResponse()

    async def ReopenContainerLog(self, request, context):
        cid = request.container_id
        started('ReopenContainerLog for "%s"', cid, debug=True)
        with logged(f'ReopenContainerLog for "{cid}" failed', record=False):
            try:
                record = self.c.stores.container(cid)
            except NotFound:
                raise NotFound(f'an error occurred when try to find container "{cid}": not found') from None
            if record.state != pb.CONTAINER_RUNNING:
                raise InvalidArgument("container is not running")
            # containerd reopens its own log writer; here the shim writes the log, so it is asked to.
            await self.c.client.tasks.update(record.id, {REOPEN_LOG: ""})
        finished('ReopenContainerLog for "%s" returns successfully', cid, debug=True)
        return pb.ReopenContainerLogResponse()

    async def GetContainerEvents(self, request, context):
        while True:
            yield await self.c.events.get()


@serve_errors(COMPONENT, pbgrpc.ImageServiceServicer)
class ImageService(pbgrpc.ImageServiceServicer):
    def __init__(self, c: CriService) -> None:
        self.c = c
        self.images = c.images

    async def ListImages(self, request, context):
        wanted = request.filter.image.image if request.HasField("filter") else ""
        return pb.ListImagesResponse(images=self.images.list(wanted))

    async def StreamImages(self, request, context):
        """images/image_stream.go."""
        wanted = request.filter.image.image if request.HasField("filter") else ""
        for batch in batches(self.images.list(wanted)):
            yield pb.StreamImagesResponse(images=batch)

    async def ImageStatus(self, request, context):
        with logged(f'ImageStatus for "{request.image.image}" failed', record=False):
            return self.images.status(request.image.image, request.verbose)

    async def PullImage(self, request, context):
        ref = request.image.image
        started('PullImage "%s"', ref)
        with logged(f'PullImage "{ref}" failed'):
            if not ref:
                raise InvalidArgument("ImageSpec.Image should not be empty")
            image_id = await pull_image(self.images, ref)
        finished('PullImage "%s" returns image reference "%s"', ref, image_id)
        return pb.PullImageResponse(image_ref=image_id)

    async def RemoveImage(self, request, context):
        ref = request.image.image
        started('RemoveImage "%s"', ref)
        with logged(f'RemoveImage "{ref}" failed'):
            self.images.remove(ref)
        finished('RemoveImage "%s" returns successfully', ref)
        return pb.RemoveImageResponse()

    async def ImageFsInfo(self, request, context):
        return self.images.fs_info()
