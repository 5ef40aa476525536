"""fake-crio's CRI surface: RuntimeService and ImageService (runtime.v1)."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import json_format

from cristack import __version__
from cristack.applets import merge_command
from cristack.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    serve_errors,
)
from cristack.files import confine
from cristack.pb.runtime.v1 import api_pb2 as pb
from cristack.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from fake_crio import filters
from fake_crio.config import CrioConfig
from fake_crio.images import CATALOGUE, ImageNotFound, ImageStore, StoredImage, lookup
from fake_crio.runtimes import OciRuntime, PodRuntime, Runtime
from fake_crio.state import (
    CREATED,
    EXITED,
    RUNNING,
    SANDBOX_NOTREADY,
    SANDBOX_READY,
    ContainerRecord,
    SandboxRecord,
    Store,
    new_id,
)
from fake_crio.tracing import CrioTracing, step_span

log = logging.getLogger(__name__)

COPY_LAYER = "github.com/containers/image/v5/copy.(*imageCopier).copyLayer"
LAYER_CONCURRENCY = 3
RUNTIME_NAME = "cri-o"
RUNTIME_VERSION = "1.36.0"
CRI_VERSION = "v1"
POD_NETWORK = ipaddress.ip_network("10.85.0.0/16")  # CRI-O's default bridge network


def _dict(msg) -> dict:  # noqa: ANN001 - any message
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


@dataclass
class Crio:
    """Shared state of both services."""

    config: CrioConfig
    store: Store
    images: ImageStore
    runtimes: dict[str, Runtime]
    tracing: CrioTracing
    # List items by record id with the state they were built for: a relist of a thousand
    # pods rebuilds only what changed (nothing else a list shows changes after creation).
    _items: dict[str, tuple[int, object]] = field(default_factory=dict)

    def list_items(self, records, build) -> list:  # noqa: ANN001
        """Messages for ``records`` (newest first), from the cache where the state is unchanged."""
        out = []
        for rec in sorted(records, key=lambda r: r.created_at, reverse=True):
            hit = self._items.get(rec.id)
            if hit is None or hit[0] != rec.state:
                hit = (rec.state, build(rec))
                self._items[rec.id] = hit
            out.append(hit[1])
        if len(self._items) > 2 * (len(self.store.sandboxes) + len(self.store.containers)) + 64:
            live = self.store.sandboxes.keys() | self.store.containers.keys()
            self._items = {k: v for k, v in self._items.items() if k in live}
        return out

    @classmethod
    def create(cls, config: CrioConfig, tracing: CrioTracing | None = None) -> Crio:
        tracing = tracing or CrioTracing(faults=config.faults)
        store = Store(config.root, config.runroot)
        runtimes: dict[str, Runtime] = {}
        for name, handler in config.runtimes.items():
            if handler.runtime_type == "pod":
                runtimes[name] = PodRuntime(name, handler.monitor_endpoint, tracing, config.max_log_bytes)
            elif handler.runtime_type == "vm":
                from fake_crio.vm import VmRuntime

                runtimes[name] = VmRuntime(name, handler.runtime_config_path, config.runroot,
                                           config.tracing.tracing_endpoint, config.tracing.enable_tracing,
                                           config.max_log_bytes)
            else:
                runtimes[name] = OciRuntime(name, store.work_dir, config.max_log_bytes)
        return cls(config, store, ImageStore(config.root), runtimes, tracing)

    def runtime(self, handler: str) -> Runtime:
        name = handler or self.config.default_runtime
        rt = self.runtimes.get(name)
        if rt is None:
            raise InvalidArgument(f"no runtime handler {name!r} is configured "
                                  f"(configured: {', '.join(sorted(self.runtimes))})")
        return rt

    async def refresh(self, c: ContainerRecord, exited: set[str] | None = None) -> ContainerRecord:
        """Brings a running container's record up to date: exit file written, or process lost.
        ``exited`` is the exit directory's listing when the caller already has it."""
        if c.state != RUNNING:
            return c
        if exited is None or c.id in exited:
            exit_path = self.store.exit_path(c.id)
            try:
                st = exit_path.stat()
                code = int(exit_path.read_text().strip() or "0")
            except (FileNotFoundError, ValueError):
                st = None
            if st is not None:
                c.state, c.exit_code, c.finished_at = EXITED, code, st.st_mtime_ns
                c.reason = "Completed" if code == 0 else "Error"
                self.store.save_container(c)
                return c
        rt = self.runtimes.get(c.runtime_handler)
        reason = await rt.lost(c) if rt is not None else "its runtime handler is no longer configured"
        if reason:
            c.state, c.exit_code, c.finished_at = EXITED, 137, time.time_ns()
            c.reason, c.message = "ContainerLost", reason
            self.store.save_container(c)
        return c

    async def refresh_all(self) -> None:
        """Refreshes every running container with one listing of the exit directory (a relist
        with a thousand live pods must not cost a thousand stat calls)."""
        running = [c for c in self.store.containers.values() if c.state == RUNNING]
        if not running:
            return
        with os.scandir(self.store.exit_dir) as entries:
            exited = {e.name for e in entries}
        for c in running:
            await self.refresh(c, exited)

    def allocate_ip(self) -> str:
        used = {sb.ip for sb in self.store.sandboxes.values()}
        for host in POD_NETWORK.hosts():
            ip = str(host)
            if ip.endswith(".1") and ip == str(POD_NETWORK.network_address + 1):
                continue  # the bridge
            if ip not in used:
                return ip
        return ""

    def pod_log_dir(self, log_directory: str) -> str:
        if not log_directory:
            return ""
        try:
            path = confine(self.config.pod_logs_root, log_directory)
        except ValueError as err:
            raise InvalidArgument(f"log_directory {log_directory!r} refused: {err} "
                                  f"(container logs must stay under {self.config.pod_logs_root})") from None
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as err:
            raise FailedPrecondition(f"cannot create log directory {path}: {err.strerror}") from None
        return str(path)

    def close_runtimes(self):  # noqa: ANN201
        return asyncio.gather(*(rt.close() for rt in self.runtimes.values()), return_exceptions=True)


# -- conversions to CRI messages


def sandbox_message(sb: SandboxRecord) -> pb.PodSandbox:
    return pb.PodSandbox(
        id=sb.id, metadata=pb.PodSandboxMetadata(name=sb.name, uid=sb.uid, namespace=sb.namespace,
                                                 attempt=sb.attempt),
        state=sb.state, created_at=sb.created_at, labels=sb.labels, annotations=sb.annotations,
        runtime_handler=sb.runtime_handler)


def container_message(c: ContainerRecord) -> pb.Container:
    return pb.Container(
        id=c.id, pod_sandbox_id=c.sandbox_id, metadata=pb.ContainerMetadata(name=c.name, attempt=c.attempt),
        image=pb.ImageSpec(image=c.image), image_ref=c.image_ref, state=c.state, created_at=c.created_at,
        labels=c.labels, annotations=c.annotations, image_id=c.image_ref)


def image_message(img: StoredImage) -> pb.Image:
    cat = img.catalog
    msg = pb.Image(id=img.id, repo_tags=img.repo_tags, repo_digests=cat.repo_digests, size=cat.size,
                   spec=pb.ImageSpec(image=img.id), pinned=img.pinned)
    if cat.user.isdigit():
        msg.uid.value = int(cat.user)
    else:
        msg.username = cat.user
    return msg


@serve_errors("fake-crio", pbgrpc.RuntimeServiceServicer)
class RuntimeService(pbgrpc.RuntimeServiceServicer):
    """The CRI RuntimeService."""

    def __init__(self, crio: Crio) -> None:
        self.crio = crio
        self.store = crio.store
        self.step = crio.tracing.step

    async def Version(self, request, context):
        return pb.VersionResponse(version="0.1.0", runtime_name=RUNTIME_NAME,
                                  runtime_version=f"{RUNTIME_VERSION}-cristack.{__version__}",
                                  runtime_api_version=CRI_VERSION)

    async def Status(self, request, context):
        conditions = [pb.RuntimeCondition(type="RuntimeReady", status=True),
                      pb.RuntimeCondition(type="NetworkReady", status=True)]
        handlers = [pb.RuntimeHandler(name=name, features=pb.RuntimeHandlerFeatures(
            recursive_read_only_mounts=False, user_namespaces=False)) for name in sorted(self.crio.runtimes)]
        info = {}
        if request.verbose:
            cfg = self.crio.config
            info["config"] = json.dumps({
                "runtime": {"default_runtime": cfg.default_runtime,
                            "runtimes": {n: {"runtime_type": h.runtime_type, "monitor_endpoint": h.monitor_endpoint}
                                         for n, h in cfg.runtimes.items()}},
                "tracing": {"enable_tracing": cfg.tracing.enable_tracing,
                            "tracing_endpoint": cfg.tracing.tracing_endpoint,
                            "tracing_sampling_rate_per_million": cfg.tracing.tracing_sampling_rate_per_million},
                "root": str(cfg.root), "runroot": str(cfg.runroot), "pod_logs_root": str(cfg.pod_logs_root),
            })
        return pb.StatusResponse(status=pb.RuntimeStatus(conditions=conditions), info=info,
                                 runtime_handlers=handlers)

    async def RuntimeConfig(self, request, context):
        return pb.RuntimeConfigResponse(linux=pb.LinuxRuntimeConfiguration(cgroup_driver=pb.SYSTEMD))

    # -- sandboxes

    @step_span("runPodSandbox")
    async def RunPodSandbox(self, request, context):
        cfg = request.config
        md = cfg.metadata
        missing = [f for f in ("name", "uid", "namespace") if not getattr(md, f)]
        if missing:
            raise InvalidArgument(f"PodSandboxConfig.Metadata is missing {', '.join(missing)}")
        rt = self.crio.runtime(request.runtime_handler)
        self.store.check_new_sandbox((md.name, md.namespace, md.uid, md.attempt))
        log.info("Running pod sandbox: %s/%s/POD", md.namespace, md.name)
        async with self.step("getSandboxIDMappings"):
            pass  # no user namespaces in a mock; the step stays visible in the waterfall
        log_dir = self.crio.pod_log_dir(cfg.log_directory)
        sb = SandboxRecord(
            id=new_id(), name=md.name, uid=md.uid, namespace=md.namespace, attempt=md.attempt,
            created_at=time.time_ns(), runtime_handler=rt.name, log_directory=log_dir,
            labels=dict(cfg.labels), annotations=dict(cfg.annotations), hostname=cfg.hostname,
            config=_dict(cfg))
        if cfg.linux.security_context.namespace_options.network != pb.NODE:
            sb.ip = self.crio.allocate_ip()
        await rt.create_sandbox(sb)
        self.store.save_sandbox(sb)
        log.info("Ran pod sandbox %s with infra container: %s/%s/POD", sb.id, md.namespace, md.name)
        return pb.RunPodSandboxResponse(pod_sandbox_id=sb.id)

    @step_span("StopPodSandbox")
    async def StopPodSandbox(self, request, context):
        try:
            sb = self.store.sandbox(request.pod_sandbox_id)
        except NotFound:
            # Stopping is idempotent: a sandbox that is gone is stopped.
            log.info("Stopping pod sandbox: %s (not found; nothing to do)", request.pod_sandbox_id)
            return pb.StopPodSandboxResponse()
        log.info("Stopping pod sandbox: %s", request.pod_sandbox_id)
        async with self.step("stopPodSandbox"):
            if sb.state == SANDBOX_NOTREADY:
                log.info("Stopped pod sandbox (already stopped): %s", sb.id)
                return pb.StopPodSandboxResponse()
            await asyncio.gather(*(self._stop(c, 0) for c in self.store.containers_of(sb.id)))
            rt = self.crio.runtimes.get(sb.runtime_handler)
            if hasattr(rt, "stop_sandbox"):
                await rt.stop_sandbox(sb)
            sb.state = SANDBOX_NOTREADY
            self.store.save_sandbox(sb)
        log.info("Stopped pod sandbox: %s", sb.id)
        return pb.StopPodSandboxResponse()

    @step_span("RemovePodSandbox")
    async def RemovePodSandbox(self, request, context):
        try:
            sb = self.store.sandbox(request.pod_sandbox_id)
        except NotFound:
            log.info("Removing pod sandbox: %s (not found; nothing to do)", request.pod_sandbox_id)
            return pb.RemovePodSandboxResponse()
        log.info("Removing pod sandbox: %s", request.pod_sandbox_id)
        async with self.step("removePodSandbox"):
            for c in self.store.containers_of(sb.id):
                await self._remove(c)
            rt = self.crio.runtimes.get(sb.runtime_handler)
            if hasattr(rt, "stop_sandbox"):
                await rt.stop_sandbox(sb)
            self.store.delete_sandbox(sb.id)
        log.info("Removed pod sandbox: %s", sb.id)
        return pb.RemovePodSandboxResponse()

    @step_span("PodSandboxStatus")
    async def PodSandboxStatus(self, request, context):
        sb = self.store.sandbox(request.pod_sandbox_id)
        status = pb.PodSandboxStatus(
            id=sb.id, metadata=sandbox_message(sb).metadata, state=sb.state, created_at=sb.created_at,
            network=pb.PodSandboxNetworkStatus(ip=sb.ip), labels=sb.labels, annotations=sb.annotations,
            runtime_handler=sb.runtime_handler)
        json_format.ParseDict(sb.config.get("linux", {}).get("security_context", {}).get("namespace_options", {}),
                              status.linux.namespaces.options, ignore_unknown_fields=True)
        info = {}
        if request.verbose:
            info["info"] = json.dumps({
                "id": sb.id, "image": self.crio.config.pause_image, "runtimeHandler": sb.runtime_handler,
                "logDirectory": sb.log_directory, "hostname": sb.hostname or sb.name, "ip": sb.ip,
                "config": sb.config,
            })
        return pb.PodSandboxStatusResponse(status=status, info=info, timestamp=time.time_ns())

    @step_span("ListPodSandbox")
    async def ListPodSandbox(self, request, context):
        if request.HasField("filter"):
            async with self.step("filterSandboxList"):
                items = self.crio.list_items((sb for sb in self.store.sandboxes.values()
                                              if filters.sandbox_matches(sb, request.filter)), sandbox_message)
        else:
            items = self.crio.list_items(self.store.sandboxes.values(), sandbox_message)
        return pb.ListPodSandboxResponse(items=items)

    # -- containers

    @step_span("createSandboxContainer")
    async def CreateContainer(self, request, context):
        sb = self.store.sandbox(request.pod_sandbox_id)
        cfg = request.config
        if not cfg.metadata.name:
            raise InvalidArgument("ContainerConfig.Metadata.Name should not be empty")
        if not cfg.image.image:
            raise InvalidArgument("ContainerConfig.Image.Image should not be empty")
        if sb.state != SANDBOX_READY:
            raise FailedPrecondition(f"pod sandbox {sb.id[:13]} is not ready; cannot create container in it")
        self.store.check_new_container(sb.id, cfg.metadata.name, cfg.metadata.attempt)
        if len(self.store.containers) >= self.crio.config.max_containers:
            raise ResourceExhausted(f"fake-crio holds {len(self.store.containers)} containers, its limit "
                                    f"(max_containers); remove some first")
        stored = self.crio.images.find(cfg.image.image)
        if stored is None:
            raise NotFound(f"image {cfg.image.image!r} is not present on the node; pull it first: image not known")
        cat = stored.catalog
        try:
            argv = merge_command(list(cat.entrypoint), list(cat.cmd), list(cfg.command), list(cfg.args))
        except ValueError as err:
            raise InvalidArgument(f"no command to run: {err}") from None
        log.info("Creating container: %s/%s/%s", sb.namespace, sb.name, cfg.metadata.name)
        async with self.step("setupContainerUser"):
            pass  # the image's user applies as is
        log_path = ""
        if cfg.log_path:
            if not sb.log_directory:
                raise InvalidArgument("ContainerConfig.LogPath is set but the sandbox has no log_directory")
            try:
                log_path = str(confine(Path(sb.log_directory), cfg.log_path))
                confine(self.crio.config.pod_logs_root, log_path)
            except ValueError as err:
                raise InvalidArgument(f"log_path {cfg.log_path!r} refused: {err}") from None
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        rt = self.crio.runtime(sb.runtime_handler)
        c = ContainerRecord(
            id=new_id(), sandbox_id=sb.id, name=cfg.metadata.name, attempt=cfg.metadata.attempt,
            created_at=time.time_ns(), image=cfg.image.image, image_ref=stored.id,
            image_name=stored.repo_tags[0] if stored.repo_tags else cat.repo_tags[0],
            argv=argv, env={kv.key: kv.value for kv in cfg.envs}, working_dir=cfg.working_dir or "/",
            log_path=log_path, runtime_handler=rt.name, labels=dict(cfg.labels),
            annotations=dict(cfg.annotations), config=_dict(cfg),
            resources=_dict(cfg.linux.resources) if cfg.linux.HasField("resources") else {})
        async with self.step("storage.(*runtimeService).CreateContainer", cfg.image.image,
                             fault_key="storage.CreateContainer"):
            pass  # the container's root filesystem; instant here unless a fault slows it down
        c.pid = await rt.create_container(c, sb, self.store.exit_path(c.id))
        try:
            self.store.save_container(c)
        except OSError:
            # Not recorded means not created: take the held process back down.
            await rt.remove_container(c)
            self.store.containers.pop(c.id, None)
            raise
        log.info("Created container %s: %s/%s/%s", c.id, sb.namespace, sb.name, c.name)
        return pb.CreateContainerResponse(container_id=c.id)

    @step_span("StartContainer")
    async def StartContainer(self, request, context):
        c = self.store.container(request.container_id)
        if c.state != CREATED:
            raise FailedPrecondition(f"container {c.id[:13]} is not in created state: "
                                     f"{pb.ContainerState.Name(c.state)}")
        log.info("Starting container: %s", request.container_id)
        c.started_at = await self.crio.runtime(c.runtime_handler).start_container(c)
        c.state = RUNNING
        self.store.save_container(c)
        log.info("Started container", extra={"fields": {
            "description": self._describe(c), "containerID": c.id, "sandboxID": c.sandbox_id, "PID": c.pid}})
        return pb.StartContainerResponse()

    async def _stop(self, c: ContainerRecord, timeout: int) -> None:
        async with self.step("stopContainer"):
            await self._stop_container(c, timeout)

    async def _stop_container(self, c: ContainerRecord, timeout: int) -> None:
        await self.crio.refresh(c)
        if c.state == EXITED:
            return
        rt = self.crio.runtimes.get(c.runtime_handler)
        if rt is not None:
            await rt.stop_container(c, max(timeout, 0))
        await self.crio.refresh(c)
        if c.state != EXITED:  # never started, or the exit file is not there yet
            c.state, c.finished_at = EXITED, c.finished_at or time.time_ns()
            if c.started_at == 0:
                c.exit_code, c.reason = 137, "Error"
            self.store.save_container(c)

    @step_span("StopContainer")
    async def StopContainer(self, request, context):
        c = self.store.container(request.container_id)
        log.info("Stopping container: %s (timeout: %ds)", request.container_id, request.timeout)
        await self._stop(c, request.timeout)
        log.info("Stopped container %s: %s", c.id, self._describe(c))
        return pb.StopContainerResponse()

    async def _remove(self, c: ContainerRecord) -> None:
        async with self.step("removeContainerInPod"):
            await self._stop(c, 0)
            rt = self.crio.runtimes.get(c.runtime_handler)
            if rt is not None:
                await rt.remove_container(c)
            self.store.delete_container(c.id)

    def _describe(self, c: ContainerRecord) -> str:
        """CRI-O's container description: namespace/pod/container."""
        sb = self.store.sandboxes.get(c.sandbox_id)
        return f"{sb.namespace}/{sb.name}/{c.name}" if sb else c.name

    @step_span("RemoveContainer")
    async def RemoveContainer(self, request, context):
        try:
            c = self.store.container(request.container_id)
        except NotFound:
            log.info("Removing container: %s (not found; nothing to do)", request.container_id)
            return pb.RemoveContainerResponse()
        log.info("Removing container: %s", request.container_id)
        await self._remove(c)
        log.info("Removed container %s: %s", c.id, self._describe(c))
        return pb.RemoveContainerResponse()

    @step_span("ListContainers")
    async def ListContainers(self, request, context):
        await self.crio.refresh_all()
        if request.HasField("filter"):
            async with self.step("filterContainerList"):
                items = self.crio.list_items((c for c in self.store.containers.values()
                                              if filters.container_matches(c, request.filter)), container_message)
        else:
            log.debug("No filters were applied, returning full container list")
            items = self.crio.list_items(self.store.containers.values(), container_message)
        return pb.ListContainersResponse(containers=items)

    @step_span("ContainerStatus")
    async def ContainerStatus(self, request, context):
        c = await self.crio.refresh(self.store.container(request.container_id))
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

    async def UpdateContainerResources(self, request, context):
        c = await self.crio.refresh(self.store.container(request.container_id))
        if c.state not in (CREATED, RUNNING):
            raise FailedPrecondition(f"container {c.id[:13]} is not created or running")
        if request.HasField("linux"):
            c.resources = _dict(request.linux)
            self.store.save_container(c)
        return pb.UpdateContainerResourcesResponse()

    @step_span("ExecSync")
    async def ExecSync(self, request, context):
        c = await self.crio.refresh(self.store.container(request.container_id))
        if not request.cmd:
            raise InvalidArgument("ExecSync needs a command")
        if c.state != RUNNING:
            raise FailedPrecondition(f"container {c.id[:13]} is not running")
        cap = self.crio.config.max_exec_seconds
        timeout = cap if request.timeout <= 0 else min(request.timeout, cap)
        result = await self.crio.runtime(c.runtime_handler).exec_sync(c, list(request.cmd), int(timeout))
        if result.timed_out:
            raise DeadlineExceeded(f"command {' '.join(request.cmd)!r} timed out after {int(timeout)}s")
        return pb.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code)

    async def ReopenContainerLog(self, request, context):
        c = await self.crio.refresh(self.store.container(request.container_id))
        if c.state != RUNNING:
            raise FailedPrecondition(f"container {c.id[:13]} is not running")
        await self.crio.runtime(c.runtime_handler).reopen_log(c)
        return pb.ReopenContainerLogResponse()

    async def ContainerStats(self, request, context):
        c = await self.crio.refresh(self.store.container(request.container_id))
        return pb.ContainerStatsResponse(stats=self._stats(c))

    async def ListContainerStats(self, request, context):
        await self.crio.refresh_all()
        f = request.filter if request.HasField("filter") else None
        stats = [self._stats(c) for c in self.store.containers.values() if filters.stats_matches(c, f)]
        return pb.ListContainerStatsResponse(stats=stats)

    def _stats(self, c: ContainerRecord) -> pb.ContainerStats:
        now = time.time_ns()
        cpu_ns, rss = _proc_usage(c.pid) if c.state == RUNNING else (0, 0)
        return pb.ContainerStats(
            attributes=pb.ContainerAttributes(id=c.id, metadata=pb.ContainerMetadata(name=c.name, attempt=c.attempt),
                                              labels=c.labels, annotations=c.annotations),
            cpu=pb.CpuUsage(timestamp=now, usage_core_nano_seconds=pb.UInt64Value(value=cpu_ns)),
            memory=pb.MemoryUsage(timestamp=now, working_set_bytes=pb.UInt64Value(value=rss),
                                  rss_bytes=pb.UInt64Value(value=rss)),
            writable_layer=pb.FilesystemUsage(timestamp=now, fs_id=pb.FilesystemIdentifier(
                mountpoint=str(self.store.work_dir)), used_bytes=pb.UInt64Value(value=0),
                inodes_used=pb.UInt64Value(value=0)))


def _proc_usage(pid: int) -> tuple[int, int]:
    """CPU time (ns) and resident memory (bytes) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) * 1_000_000_000 // ticks
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return cpu, rss
    except (OSError, IndexError, ValueError):
        return 0, 0


@serve_errors("fake-crio", pbgrpc.ImageServiceServicer)
class ImageService(pbgrpc.ImageServiceServicer):
    """The CRI ImageService over the built-in catalogue."""

    def __init__(self, crio: Crio) -> None:
        self.crio = crio
        self.images = crio.images
        self.step = crio.tracing.step

    async def ListImages(self, request, context):
        wanted = request.filter.image.image if request.HasField("filter") else ""
        found = self.images.find(wanted) if wanted else None
        items = [image_message(i) for i in self.images.images.values() if not wanted or i is found]
        return pb.ListImagesResponse(images=items)

    @step_span("ImageStatus")
    async def ImageStatus(self, request, context):
        ref = request.image.image
        if not ref:
            raise InvalidArgument("ImageSpec.Image should not be empty")
        log.info("Checking image status: %s", ref)
        stored = self.images.find(ref)
        if stored is None:
            log.info("Neither image nor artfiact %s found", ref)  # sic: CRI-O's wording
            return pb.ImageStatusResponse()
        info = {}
        if request.verbose:
            cat = stored.catalog
            info["info"] = json.dumps({"imageSpec": {"config": {
                "Entrypoint": list(cat.entrypoint), "Cmd": list(cat.cmd), "User": cat.user}},
                "layers": cat.layer_sizes()})
        return pb.ImageStatusResponse(image=image_message(stored), info=info)

    @step_span("PullImage")
    async def PullImage(self, request, context):
        ref = request.image.image
        if not ref:
            raise InvalidArgument("ImageSpec.Image should not be empty")
        try:
            img, parsed = lookup(ref)
        except ImageNotFound as err:
            log.info("Pulling image: %s", ref)
            async with self.step("pullImage", ref):
                message = f"initializing source docker://{ref}: {err}"
                log.error("Error pulling image %s: %s", ref, message, extra={"error_type": "*errors.errorString"})
                raise NotFound(message) from None
        log.info("Pulling image: %s", ref)
        async with self.step("pullImage", ref):
            log.info("Trying to access %s", f'"{parsed}"')
            if self.crio.config.pull_latency_ms > 0:
                await asyncio.sleep(self.crio.config.pull_latency_ms / 1000)
            if self.crio.config.pull_bandwidth_mbps > 0:
                await self._copy_layers(img)
            stored = self.images.add(img, parsed)
        log.info("Pulled image: %s", img.repo_digests[0])
        return pb.PullImageResponse(image_ref=stored.id)

    async def _copy_layers(self, img) -> None:  # noqa: ANN001 - a CatalogImage
        """A simulated registry: each layer takes size / bandwidth, three at a time, as
        containers/image copies them, each in a span of its own."""
        rate = self.crio.config.pull_bandwidth_mbps * 1024 * 1024
        gate = asyncio.Semaphore(LAYER_CONCURRENCY)

        async def copy(i: int, size: int) -> None:
            async with gate:
                digest = f"sha256:{hashlib.sha256(f'{img.repo}:layer{i}'.encode()).hexdigest()}"
                async with self.step(COPY_LAYER, img.repo, attributes={"layer.digest": digest, "layer.size": size,
                                                                        "layer.index": i}):
                    await asyncio.sleep(size / rate)

        await asyncio.gather(*(copy(i, size) for i, size in enumerate(img.layer_sizes())))

    async def RemoveImage(self, request, context):
        ref = request.image.image
        if not ref:
            raise InvalidArgument("ImageSpec.Image should not be empty")
        stored = self.images.find(ref)
        if stored is None:
            return pb.RemoveImageResponse()  # already gone: removal is idempotent
        users = [c.id[:13] for c in self.crio.store.containers.values() if c.image_ref == stored.id]
        if users:
            raise FailedPrecondition(f"image {ref!r} is in use by container(s) {', '.join(users)}")
        self.images.remove(stored.id)
        log.info("Removed image %s", ref)
        return pb.RemoveImageResponse()

    async def ImageFsInfo(self, request, context):
        now = time.time_ns()
        root = self.crio.config.root
        image_fs = pb.FilesystemUsage(
            timestamp=now, fs_id=pb.FilesystemIdentifier(mountpoint=str(root / "overlay-images")),
            used_bytes=pb.UInt64Value(value=self.images.used_bytes()),
            inodes_used=pb.UInt64Value(value=len(self.images.images) * 64))
        ctr_fs = pb.FilesystemUsage(
            timestamp=now, fs_id=pb.FilesystemIdentifier(mountpoint=str(root / "overlay-containers")),
            used_bytes=pb.UInt64Value(value=0), inodes_used=pb.UInt64Value(value=len(self.crio.store.containers)))
        return pb.ImageFsInfoResponse(image_filesystems=[image_fs], container_filesystems=[ctr_fs])


__all__ = ["Crio", "RuntimeService", "ImageService", "CATALOGUE"]
