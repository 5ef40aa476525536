"""fake-crio's CRI surface: RuntimeService and ImageService (runtime.v1)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import json_format
from opentelemetry import context as otel_context

from cristack.containers.applets import merge_command
from cristack.otel.telemetry import REQUEST_DEADLINE
from cristack.versions import CRIO_VERSION
from cristack.wire.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    RpcError,
    serve_errors,
)
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from fake_crio import bundles, filters, logdirs, storage
from fake_crio.config import CrioConfig
from fake_crio.events import ContainerEvents
from fake_crio.images import CATALOGUE, ImageNotFound, ImageStore, StoredImage, lookup
from fake_crio.runtimes import OciRuntime, PodRuntime, Runtime
from fake_crio.state import (
    CREATED,
    EXITED,
    RUNNING,
    SANDBOX_NOTREADY,
    SANDBOX_READY,
    UID_LABEL,
    ContainerRecord,
    SandboxRecord,
    Store,
    new_id,
)
from fake_crio.tracing import CrioTracing, step_span

log = logging.getLogger(__name__)

COPY_LAYER = "github.com/containers/image/v5/copy.(*imageCopier).copyLayer"
# CRI-O's packages, for step names (see fake_crio.tracing.span_name).
OCI_RUNTIME = "internal/oci.(*Runtime)."
OCI_IMPL = "internal/oci.(*runtimeOCI)."
LIB_SERVER = "internal/lib.(*ContainerServer)."
SANDBOX = "internal/lib/sandbox.(*Sandbox)."
STORAGE = "internal/storage.(*runtimeService)."
LAYER_CONCURRENCY = 3
RUNTIME_NAME = "cri-o"
RUNTIME_VERSION = CRIO_VERSION  # the CRI-O release whose traces we reproduce
CRI_VERSION = "v1"
SCAN_EXITS_ABOVE = 8  # running containers to refresh above which one listing beats a stat each
STREAM_CHUNK_SIZE = 3000  # server/server.go streamChunkSize: items per Stream* response


class Unknown(RpcError):
    """What CRI-O answers for a plain Go error (gRPC turns it into UNKNOWN)."""

    code = grpc.StatusCode.UNKNOWN


def _description(labels: dict[str, str]) -> str:
    """CRI-O's container description: namespace/pod/container from the kubelet's labels
    (``//`` for a container crictl created without them)."""
    return "/".join(labels.get(f"io.kubernetes.{k}", "") for k in ("pod.namespace", "pod.name", "container.name"))


def _oci_state(state: int) -> str:
    return {CREATED: "created", RUNNING: "running", EXITED: "stopped"}.get(state, "unknown")


DEFAULT_STOP_TIMEOUT_S = 10


def stop_timeout() -> int:
    """CRI-O's stopTimeoutFromContext (server/utils.go): the whole seconds left before the caller's deadline,
    or 10 without one; logged at debug level."""
    deadline = REQUEST_DEADLINE.get()
    timeout = DEFAULT_STOP_TIMEOUT_S if deadline is None else int(max(deadline - time.monotonic(), 0))
    log.debug("Using stop timeout: %d", timeout)
    return timeout


class _Stages:
    """CRI-O's resource store logs each stage of a sandbox or container creation at debug level
    (internal/resourcestore): ``Setting stage for resource R from A to B``."""

    def __init__(self, resource: str, first: str, *, announce: bool = True) -> None:
        self.resource, self.stage = resource, first
        if announce:
            log.debug("Initializing stage for resource %s to %s", resource, first)

    def to(self, stage: str) -> None:
        log.debug("Setting stage for resource %s from %s to %s", self.resource, self.stage, stage)
        self.stage = stage


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
    # The evented PLEG's channel (enable_pod_events).
    events: ContainerEvents = field(default_factory=lambda: ContainerEvents(False))

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
                runtimes[name] = PodRuntime(name, handler.monitor_endpoint, tracing, config.max_log_bytes,
                                            handler.monitor_env)
            elif handler.runtime_type == "vm":
                from fake_crio.vm import VmRuntime

                runtimes[name] = VmRuntime(name, handler.runtime_config_path, config.runroot,
                                           config.tracing.tracing_endpoint, config.tracing.enable_tracing,
                                           config.max_log_bytes)
            else:
                runtimes[name] = OciRuntime(name, store.work_dir, config.max_log_bytes, tracing)
        # containers/storage's directories, which ImageFsInfo walks (left out under the mock-only
        # image_fs_unmounted fault, which reproduces the first real-kubelet recording's runtime).
        on_disk = not config.faults.image_fs_unmounted
        if on_disk:
            storage.ensure(config.root)
        return cls(config, store, ImageStore(config.root, on_disk=on_disk), runtimes, tracing,
                   events=ContainerEvents(config.enable_pod_events))

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

    async def refresh_all(self, records: Iterable[ContainerRecord] | None = None) -> None:
        """Refreshes the running ones of ``records`` (default: every container) with one listing
        of the exit directory when there are many (a relist with a thousand live pods must not
        cost a thousand stat calls) and one look at each monitor (cached by the runtime)."""
        running = [c for c in (self.store.containers.values() if records is None else records) if c.state == RUNNING]
        exited = None
        if len(running) > SCAN_EXITS_ABOVE:
            with os.scandir(self.store.exit_dir) as entries:
                exited = {e.name for e in entries}
        for c in running:
            await self.refresh(c, exited)

    def candidates(self, f: pb.ContainerFilter | pb.PodSandboxFilter | None, kind: str) -> Iterable:
        """The records a list filter can match, from the pod-uid or sandbox index when the filter
        names one (the kubelet filters by the pod uid label); every record otherwise."""
        store = self.store
        if f is not None:
            uid = f.label_selector.get(UID_LABEL)
            if uid is not None:
                return store.containers_with_uid(uid) if kind == "container" else store.sandboxes_with_uid(uid)
            if kind == "container" and f.pod_sandbox_id in store.sandboxes:
                return store.containers_of(f.pod_sandbox_id)
        return store.containers.values() if kind == "container" else store.sandboxes.values()

    def allocate_ip(self, sid: str) -> str:
        """The lowest free address of the CNI network's host-local range (fake_crio/network.py), held for
        sandbox ``sid`` from this moment (as host-local IPAM leases it), so concurrent sandboxes never share one."""
        net = self.config.network
        ip = net.allocate(self.store.ips)
        if ip is None or not self.store.reserve_ip(sid, [ip]):
            # host-local's words, as CRI-O passes them on.
            raise ResourceExhausted(f"failed to allocate for range 0: no IP addresses available in range set: "
                                    f"{net.describe()} (CNI network {net.name!r}, {net.source})")
        return ip

    def pod_log_dir(self, log_directory: str) -> str:
        if not log_directory:
            return ""
        try:
            path = logdirs.log_directory(log_directory, self.config.pod_logs_root, self.config.confine_pod_logs)
        except ValueError as err:
            where = f" (--pod-logs-root confines logs under {self.config.pod_logs_root})" \
                if self.config.confine_pod_logs else ""
            raise InvalidArgument(f"log_directory {log_directory!r} refused: {err}{where}") from None
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
    msg = pb.Image(id=img.id, repo_tags=img.repo_tags, repo_digests=img.repo_digests, size=cat.size,
                   spec=pb.ImageSpec(image=img.id), pinned=img.pinned)
    user = cat.user.split(":", 1)[0]  # USER uid:gid or name:group; the CRI reports the user part
    if user.isdigit():
        msg.uid.value = int(user)
    else:
        msg.username = user
    return msg


@serve_errors("fake-crio", pbgrpc.RuntimeServiceServicer)
class RuntimeService(pbgrpc.RuntimeServiceServicer):
    """The CRI RuntimeService."""

    def __init__(self, crio: Crio) -> None:
        self.crio = crio
        self.store = crio.store
        self.step = crio.tracing.step

    async def Version(self, request, context):
        # What CRI-O 1.36.3 answers (the CRI's version field is always "0.1.0").
        return pb.VersionResponse(version="0.1.0", runtime_name=RUNTIME_NAME, runtime_version=RUNTIME_VERSION,
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
        # server/runtime_config.go: what [crio.runtime] cgroup_manager says (the kubelet adopts it).
        driver = pb.SYSTEMD if self.crio.config.cgroup_manager == "systemd" else pb.CGROUPFS
        return pb.RuntimeConfigResponse(linux=pb.LinuxRuntimeConfiguration(cgroup_driver=driver))

    # -- evented PLEG: CRI-O's generateCRIEvent (server/server.go), only with enable_pod_events

    async def _event(self, container_id: str, sandbox_id: str, kind: int) -> None:
        """Publishes one ContainerEventResponse: the container's refreshed state, then its pod's
        PodSandboxStatus and the statuses of the pod's containers (by the pod UID label), each
        through the handler CRI-O calls, so their step spans nest as CRI-O's do. Failures are
        logged, never raised: the RPC that caused the event has succeeded."""
        if not self.crio.events.enabled:
            return
        name = pb.ContainerEventType.Name(kind)
        try:
            async with self.step(OCI_RUNTIME + "UpdateContainerStatus"):
                c = self.store.containers.get(container_id)
                if c is not None:
                    await self.crio.refresh(c)
            if sandbox_id not in self.store.sandboxes:
                return  # sandbox removed first: CRI-O sends nothing (HasSandbox is false)
            sb_status = (await _inner(RuntimeService.PodSandboxStatus)(
                self, pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id), None)).status
            statuses = await self._statuses(pb.ContainerFilter(
                label_selector={"io.kubernetes.pod.uid": sb_status.metadata.uid}))
        except NotFound:
            return
        except (RpcError, OSError) as err:
            log.error("GenerateCRIEvent: event type: %s, failed to get statuses of container %s: %s", name,
                      container_id, err)
            return
        self.crio.events.publish(pb.ContainerEventResponse(
            container_id=container_id, container_event_type=kind, created_at=time.time_ns(),
            pod_sandbox_status=sb_status, containers_statuses=statuses))

    async def _statuses(self, flt: pb.ContainerFilter) -> list[pb.ContainerStatus]:
        """ListContainers with ``flt``, then ContainerStatus of each (one removed meanwhile is skipped)."""
        listed = await _inner(RuntimeService.ListContainers)(self, pb.ListContainersRequest(filter=flt), None)
        out = []
        for item in listed.containers:
            try:
                resp = await _inner(RuntimeService.ContainerStatus)(
                    self, pb.ContainerStatusRequest(container_id=item.id), None)
            except NotFound:
                continue
            out.append(resp.status)
        return out

    async def watch_exits(self, period: float = 0.2) -> None:
        """CRI-O's exit monitor, as far as events go: a CONTAINER_STOPPED_EVENT for every container
        that has exited (its exit file appeared, or it was stopped), once. Runs until cancelled."""
        announced: set[str] = {c.id for c in self.store.containers.values() if c.state == EXITED}
        while True:
            await asyncio.sleep(period)
            try:
                await self.crio.refresh_all()
            except OSError as err:
                log.warning("exit monitor: %s", err)
                continue
            for c in list(self.store.containers.values()):
                if c.state == EXITED and c.id not in announced:
                    announced.add(c.id)
                    token = otel_context.attach(otel_context.Context())  # a background goroutine's root
                    try:
                        await self._event(c.id, c.sandbox_id, pb.CONTAINER_STOPPED_EVENT)
                    finally:
                        otel_context.detach(token)
            announced &= self.store.containers.keys()

    async def GetContainerEvents(self, request, context):
        # server/container_events.go: the stream stays open until the client leaves; with pod events
        # off it ends at once, empty.
        async for event in self.crio.events.stream():
            yield event

    async def UpdateRuntimeConfig(self, request, context):
        # CRI-O 1.36.3 (server/update_runtime_config.go) ignores the kubelet's pod CIDR: pod IPs come
        # from the CNI configuration (fake_crio/network.py).
        return pb.UpdateRuntimeConfigResponse()

    # -- sandboxes

    # -- CRI-O's shared steps (their span trees as CRI-O 1.36.3 records them)

    def _rt(self, handler: str) -> Runtime | None:
        return self.crio.runtimes.get(handler)

    async def _update_status(self, rt: Runtime | None, c: ContainerRecord | None = None) -> None:
        """internal/oci.(*Runtime).UpdateContainerStatus > the runtime's own (runc state)."""
        async with self.step(OCI_RUNTIME + "UpdateContainerStatus"):
            if c is not None:
                await self.crio.refresh(c)
            if rt is not None:
                await rt.update_status(c)

    async def _state_to_disk(self, rt: Runtime | None, c: ContainerRecord | None = None) -> None:
        """internal/lib.(*ContainerServer).ContainerStateToDisk: refresh the state, then save it."""
        async with self.step(LIB_SERVER + "ContainerStateToDisk"):
            await self._update_status(rt, c)
            if c is not None:
                self.store.save_container(c)

    async def _get_sandbox_from_request(self, sandbox_id: str) -> SandboxRecord:
        async with self.step("getPodSandboxFromRequest"), self.step("getSandbox"):
            return self.store.sandbox(sandbox_id)

    # -- sandboxes

    @step_span("runPodSandbox")
    async def RunPodSandbox(self, request, context):
        cfg = request.config
        md = cfg.metadata
        missing = [f for f in ("name", "uid", "namespace") if not getattr(md, f)]
        if missing:
            raise InvalidArgument(f"PodSandboxConfig.Metadata is missing {', '.join(missing)}")
        rt = self.crio.runtime(request.runtime_handler)
        # The name is held before the first await, and given back if the sandbox is not
        # created (CRI-O's reservePodNameOrGetExisting and its resource cleaner).
        sid = new_id()
        self.store.reserve_sandbox_name((md.name, md.namespace, md.uid, md.attempt), sid)
        try:
            return await self._run_pod_sandbox(request, rt, sid)
        finally:
            self.store.release_reservations(sid)

    async def _run_pod_sandbox(self, request, rt: Runtime, sid: str) -> pb.RunPodSandboxResponse:  # noqa: ANN001
        cfg = request.config
        md = cfg.metadata
        log.info("Running pod sandbox: %s/%s/POD", md.namespace, md.name)
        resource = f"k8s_{md.name}_{md.namespace}_{md.uid}_{md.attempt}"
        stages = _Stages(resource, "sandbox creating")
        log_dir = self.crio.pod_log_dir(cfg.log_directory)
        sb = SandboxRecord(
            id=sid, name=md.name, uid=md.uid, namespace=md.namespace, attempt=md.attempt,
            created_at=time.time_ns(), runtime_handler=rt.name, log_directory=log_dir,
            labels=dict(cfg.labels), annotations=dict(cfg.annotations), hostname=cfg.hostname,
            config=_dict(cfg))
        async with self.step("setPodSandboxMountLabel"):
            pass
        async with self.step("addSandbox"), self.step(LIB_SERVER + "AddSandbox"):
            pass
        async with self.step("configureGeneratorForSysctls"):
            pass
        async with self.step("configureGeneratorForSandboxNamespaces"):
            pass
        async with self.step("networkStart"):
            if cfg.linux.security_context.namespace_options.network != pb.NODE:
                sb.ip = self.crio.allocate_ip(sb.id)
        stages.to("sandbox network ready")
        async with self.step(SANDBOX + "SetContainerEnvFile"):
            pass
        for stage in ("sandbox storage creation", "sandbox shm creation", "sandbox spec configuration",
                      "sandbox namespace creation", "sandbox network creation", "sandbox storage start"):
            stages.to(stage)
        log.debug("Dropping infra container for pod %s", sb.id)
        stages.to("sandbox container runtime creation")
        async with self.step("addInfraContainer"):
            pass
        async with self.step("createContainerPlatform"), self.step(OCI_RUNTIME + "CreateContainer"):
            await rt.create_sandbox(sb)
        async with self.step(OCI_RUNTIME + "StartContainer"), self.step(OCI_IMPL + "StartContainer"):
            pass  # the spoofed infra container: nothing runs
        await self._state_to_disk(rt)
        self.store.save_sandbox(sb)
        # sandbox_run_linux.go: the infra container's (its id is the pod's) CREATED, then STARTED.
        await self._event(sb.id, sb.id, pb.CONTAINER_CREATED_EVENT)
        await self._event(sb.id, sb.id, pb.CONTAINER_STARTED_EVENT)
        log.info("Ran pod sandbox %s with infra container: %s/%s/POD", sb.id, md.namespace, md.name)
        return pb.RunPodSandboxResponse(pod_sandbox_id=sb.id)

    @step_span("StopPodSandbox")
    async def StopPodSandbox(self, request, context):
        log.info("Stopping pod sandbox: %s", request.pod_sandbox_id)
        try:
            sb = await self._get_sandbox_from_request(request.pod_sandbox_id)
        except NotFound as err:
            # Stopping is idempotent: a sandbox that is gone is stopped.
            log.warning("Could not get sandbox %s, it's probably been stopped already: %s",
                        request.pod_sandbox_id, err)
            return pb.StopPodSandboxResponse()
        async with self.step("stopPodSandbox"):
            stop_timeout()
            rt = self._rt(sb.runtime_handler)
            async with self.step("networkStop"):
                pass
            if sb.state == SANDBOX_NOTREADY:
                log.info("Stopped pod sandbox (already stopped): %s", sb.id)
                return pb.StopPodSandboxResponse()
            running = [c for c in self.store.containers_of(sb.id) if (await self.crio.refresh(c)).state != EXITED]
            await asyncio.gather(*(self._stop(c, 0) for c in running))
            await self._stop(None, 0, rt=rt, infra_id=sb.id)  # the (spoofed) infra container
            if rt is not None:
                await rt.stop_sandbox(sb)
            async with self.step(SANDBOX + "UnmountShm"):
                pass
            log.info("Stopped pod sandbox: %s", sb.id)
            async with self.step(SANDBOX + "SetStopped"), self.step(SANDBOX + "createFileInInfraDir"):
                sb.state = SANDBOX_NOTREADY
                self.store.save_sandbox(sb)
            # sandbox_stop_linux.go: a spoofed infra container has no exit to notice.
            await self._event(sb.id, sb.id, pb.CONTAINER_STOPPED_EVENT)
        return pb.StopPodSandboxResponse()

    @step_span("RemovePodSandbox")
    async def RemovePodSandbox(self, request, context):
        log.info("Removing pod sandbox: %s", request.pod_sandbox_id)
        try:
            sb = await self._get_sandbox_from_request(request.pod_sandbox_id)
        except NotFound as err:
            log.warning("Could not get sandbox %s, it's probably been removed already: %s",
                        request.pod_sandbox_id, err)
            return pb.RemovePodSandboxResponse()
        async with self.step("removePodSandbox"):
            for c in self.store.containers_of(sb.id):
                await self._remove(c, sb)
            rt = self._rt(sb.runtime_handler)
            async with self.step(SANDBOX + "UnmountShm"):
                pass
            async with self.step("removeInfraContainer"), self.step(LIB_SERVER + "RemoveInfraContainer"):
                pass
            await self._remove(None, sb, rt=rt)  # the (spoofed) infra container
            if rt is not None:
                await rt.stop_sandbox(sb)
            async with self.step("networkStop"):
                pass
            async with self.step("removeSandbox"), self.step(LIB_SERVER + "RemoveSandbox"):
                self.store.delete_sandbox(sb.id)
            log.info("Removed pod sandbox: %s", sb.id)
        return pb.RemovePodSandboxResponse()

    @step_span("PodSandboxStatus")
    async def PodSandboxStatus(self, request, context):
        try:
            sb = await self._get_sandbox_from_request(request.pod_sandbox_id)
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
                "id": sb.id, "image": self.crio.config.pause_image, "runtimeHandler": sb.runtime_handler,
                "logDirectory": sb.log_directory, "hostname": sb.hostname or sb.name, "ip": sb.ip,
                "config": sb.config,
            })
        resp = pb.PodSandboxStatusResponse(status=status, info=info)
        if self.crio.events.enabled:
            # server/sandbox_status.go: with pod events on, the evented PLEG reads the pod's container
            # statuses from here, and the timestamp tells it that they are there. Without, both stay
            # unset (a non-zero timestamp with no statuses makes the kubelet re-create the containers).
            resp.timestamp = time.time_ns()
            resp.containers_statuses.extend(await self._statuses(pb.ContainerFilter(pod_sandbox_id=sb.id)))
        return resp

    @step_span("ListPodSandbox")
    async def ListPodSandbox(self, request, context):
        async with self.step("filterSandboxList"):
            if request.HasField("filter"):
                items = self.crio.list_items((sb for sb in self.crio.candidates(request.filter, "sandbox")
                                              if filters.sandbox_matches(sb, request.filter)), sandbox_message)
            else:
                items = self.crio.list_items(self.store.sandboxes.values(), sandbox_message)
        return pb.ListPodSandboxResponse(items=items)

    # -- containers

    async def CreateContainer(self, request, context):
        # CRI-O 1.36's CreateContainer opens no step of its own: its log lines land on the
        # interceptor's span.
        cfg = request.config
        try:
            sb = await self._get_sandbox_from_request(request.pod_sandbox_id)
        except NotFound as err:
            raise NotFound(f"could not find pod {request.pod_sandbox_id!r}: {err}") from None
        if not cfg.metadata.name:
            raise InvalidArgument("ContainerConfig.Metadata.Name should not be empty")
        if not cfg.image.image:
            raise InvalidArgument("ContainerConfig.Image.Image should not be empty")
        if sb.state != SANDBOX_READY:
            raise FailedPrecondition(f"pod sandbox {sb.id[:13]} is not ready; cannot create container in it")
        # The name is held before the first await and given back if the container is not
        # created (CRI-O's ReserveContainerName and its resource cleaner).
        cid = new_id()
        self.store.reserve_container_name(sb, cfg.metadata.name, cfg.metadata.attempt, cid)
        try:
            # Counted with the creations in flight (which hold their names), this one included.
            if len(self.store.ctr_names) > self.crio.config.max_containers:
                raise ResourceExhausted(f"fake-crio holds {len(self.store.ctr_names) - 1} containers, its limit "
                                        f"(max_containers); remove some first")
            return await self._create_container(request, sb, cid)
        finally:
            self.store.release_reservations(cid)

    async def _create_container(self, request, sb: SandboxRecord, cid: str) -> pb.CreateContainerResponse:  # noqa: ANN001
        cfg = request.config
        description = _description(dict(cfg.labels))
        log.info("Creating container: %s", description)
        resource = f"k8s_{cfg.metadata.name}_{sb.name}_{sb.namespace}_{sb.uid}_{cfg.metadata.attempt}"
        log.debug("Initializing stage for resource %s to container creating", resource)
        rt = self.crio.runtime(sb.runtime_handler)
        async with self.step("createSandboxContainer", cfg.image.image):
            c = await self._container_spec(request, sb, rt, cid)
            try:
                # The runtime spec's mounts and sysctls (config.json), where the applets read them.
                c.bundle = str(bundles.write(self.store.runroot, c, sb))
            except ValueError as err:
                raise InvalidArgument(f"invalid mount: {err}") from None
        async with self.step("addContainer"), self.step(LIB_SERVER + "AddContainer"), \
                self.step(SANDBOX + "AddContainer"):
            pass
        async with self.step("getSandboxIDMappings"):
            pass  # no user namespaces in a mock
        log.debug("Setting stage for resource %s from container spec configuration to container runtime creation",
                  resource)
        async with self.step("createContainerPlatform"), self.step(OCI_RUNTIME + "CreateContainer"):
            c.pid = await rt.create_container(c, sb, self.store.exit_path(c.id))
        try:
            await self._state_to_disk(rt, c)
        except OSError:
            # Not recorded means not created: take the held process back down.
            await rt.remove_container(c)
            self.store.delete_container(c.id)
            raise
        await self._event(c.id, sb.id, pb.CONTAINER_CREATED_EVENT)
        log.info("Created container %s: %s", c.id, description)
        return pb.CreateContainerResponse(container_id=c.id)

    async def _container_spec(self, request, sb: SandboxRecord, rt: Runtime,  # noqa: ANN001
                              cid: str) -> ContainerRecord:
        """createSandboxContainer: the image, the command, the log path and the spec steps."""
        cfg = request.config
        async with self.step("getSandboxIDMappings"):
            pass
        stored = self.crio.images.find(cfg.image.image)
        if stored is None:
            raise NotFound(f"image {cfg.image.image!r} is not present on the node; pull it first: image not known")
        cat = stored.catalog
        try:
            argv = merge_command(list(cat.entrypoint), list(cat.cmd), list(cfg.command), list(cfg.args))
        except ValueError as err:
            raise InvalidArgument(f"no command to run: {err}") from None
        log.debug('Created storageRef = "containers-storage:%s"', stored.id)
        log.debug("Is allowed to run config image %s", cfg.image.image)
        stages = _Stages(f"k8s_{cfg.metadata.name}_{sb.name}_{sb.namespace}_{sb.uid}_{cfg.metadata.attempt}",
                         "container creating", announce=False)  # announced by CreateContainer
        for stage in ("container storage creation", "container volume configuration", "container device creation",
                      "container storage start", "container spec configuration"):
            stages.to(stage)
        # The container's root filesystem is created here in CRI-O (containers/storage, no span
        # of its own); a storage fault happens at this point, inside createSandboxContainer.
        if self.crio.tracing.faults:
            await self.crio.tracing.faults.apply("storage.CreateContainer", cfg.image.image)
        log_path = ""
        async with self.step("addOCIBindMounts"):
            if cfg.log_path:
                if not sb.log_directory:
                    raise InvalidArgument("ContainerConfig.LogPath is set but the sandbox has no log_directory")
                try:
                    log_path = str(logdirs.log_file(sb.log_directory, cfg.log_path, self.crio.config.pod_logs_root,
                                                    self.crio.config.confine_pod_logs))
                except ValueError as err:
                    raise InvalidArgument(f"log_path {cfg.log_path!r} refused: {err}") from None
                Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        async with self.step("internal/config/seccomp.(*Config).Setup"):
            log.debug("Setup seccomp from profile field: <nil>")
            log.debug("Evaluating seccomp annotations")
        async with self.step("internal/factory/container.(*container).SpecAddAnnotations"):
            pass
        async with self.step("server.setupContainerUser"):
            log.debug('Container user: "%s"', cat.user)
        async with self.step("server.addImageVolumes"):
            pass
        return ContainerRecord(
            id=cid, sandbox_id=sb.id, name=cfg.metadata.name, attempt=cfg.metadata.attempt,
            created_at=time.time_ns(), image=cfg.image.image, image_ref=stored.id,
            image_name=stored.repo_tags[0] if stored.repo_tags else cat.repo_tags[0],
            argv=argv, env={kv.key: kv.value for kv in cfg.envs}, working_dir=cfg.working_dir or "/",
            log_path=log_path, runtime_handler=rt.name, labels=dict(cfg.labels),
            annotations=dict(cfg.annotations), config=_dict(cfg),
            resources=_dict(cfg.linux.resources) if cfg.linux.HasField("resources") else {})

    @step_span("StartContainer")
    async def StartContainer(self, request, context):
        log.info("Starting container: %s", request.container_id)
        try:
            c = self.store.container(request.container_id)
        except NotFound as err:
            raise NotFound(f"could not find container {request.container_id!r}: {err}") from None
        if c.state != CREATED:
            raise Unknown(f"container {c.id} is not in created state: {_oci_state(c.state)}")
        async with self.step("getSandbox"):
            pass
        rt = self.crio.runtime(c.runtime_handler)
        try:
            async with self.step(OCI_RUNTIME + "StartContainer"):
                c.started_at = await rt.start_container(c)
            c.state = RUNNING
        finally:
            await self._state_to_disk(rt, c)
        await self._event(c.id, c.sandbox_id, pb.CONTAINER_STARTED_EVENT)
        log.info("Started container", extra={"fields": {
            "description": self._describe(c), "containerID": c.id, "sandboxID": c.sandbox_id, "PID": c.pid}})
        return pb.StartContainerResponse()

    async def _stop(self, c: ContainerRecord | None, timeout: int, rt: Runtime | None = None,
                    infra_id: str = "") -> None:
        """server.(*Server).stopContainer; ``c`` None is the sandbox's spoofed infra container
        (whose id is the sandbox's, ``infra_id``)."""
        async with self.step("stopContainer"):
            async with self.step("getSandbox"):
                pass
            rt = rt if c is None else self._rt(c.runtime_handler)
            async with self.step(OCI_RUNTIME + "StopContainer"):
                if c is not None and (await self.crio.refresh(c)).state == RUNNING and rt is not None:
                    await rt.stop_container(c, max(timeout, 0))
                else:
                    async with self.step(OCI_IMPL + "StopContainer"):
                        pass  # already stopped: runc has nothing to do
            async with self.step(STORAGE + "StopContainer"):
                log.debug("Unmounted container %s", c.id if c is not None else infra_id)
            if c is not None:
                await self._settle(c)
            await self._update_status(rt, c)
            await self._state_to_disk(rt, c)

    async def _settle(self, c: ContainerRecord) -> None:
        await self.crio.refresh(c)
        if c.state != EXITED:  # never started, or the exit file is not there yet
            c.state, c.finished_at = EXITED, c.finished_at or time.time_ns()
            if c.started_at == 0:
                c.exit_code, c.reason = 137, "Error"

    @step_span("StopContainer")
    async def StopContainer(self, request, context):
        log.info("Stopping container: %s (timeout: %ds)", request.container_id, request.timeout)
        try:
            c = self.store.container(request.container_id)
        except NotFound:
            return pb.StopContainerResponse()  # CRI-O: an unknown id is already stopped
        await self._stop(c, request.timeout)
        log.info("Stopped container %s: %s", c.id, self._describe(c))
        return pb.StopContainerResponse()

    async def _remove(self, c: ContainerRecord | None, sb: SandboxRecord | None, rt: Runtime | None = None) -> None:
        """server.(*Server).removeContainerInPod; ``c`` None is the sandbox's infra container."""
        async with self.step("removeContainerInPod"):
            if c is not None and (sb is None or sb.state != SANDBOX_NOTREADY):
                stop_timeout()
                await self._stop(c, 0)
            rt = rt if c is None else self._rt(c.runtime_handler)
            async with self.step(OCI_RUNTIME + "DeleteContainer"):
                if c is None:
                    if rt is not None:
                        await rt.delete_sandbox(sb)
                elif rt is not None:
                    await rt.remove_container(c)
            async with self.step("internal/oci.(*Container).CleanupConmonCgroup"):
                pass
            async with self.step(STORAGE + "DeleteContainer"):
                pass
            async with self.step(LIB_SERVER + "ReleaseContainerName"):
                pass
            async with self.step("removeContainer"), self.step(LIB_SERVER + "RemoveContainer"), \
                    self.step(SANDBOX + "RemoveContainer"):
                if c is not None:
                    bundles.remove(c)
                    self.store.delete_container(c.id)
            async with self.step(SANDBOX + "RemoveContainer"):
                pass

    def _describe(self, c: ContainerRecord) -> str:
        """CRI-O's container description: the kubelet's namespace/pod/container labels."""
        return _description(c.labels)

    @step_span("RemoveContainer")
    async def RemoveContainer(self, request, context):
        log.info("Removing container: %s", request.container_id)
        try:
            c = self.store.container(request.container_id)
        except NotFound:
            return pb.RemoveContainerResponse()  # CRI-O: an unknown id is already removed
        async with self.step("getSandbox"):
            sb = self.store.sandboxes.get(c.sandbox_id)
        await self._remove(c, sb)
        await self._event(c.id, c.sandbox_id, pb.CONTAINER_DELETED_EVENT)
        log.info("Removed container %s: %s", c.id, self._describe(c))
        return pb.RemoveContainerResponse()

    @step_span("ListContainers")
    async def ListContainers(self, request, context):
        candidates = self.crio.candidates(request.filter if request.HasField("filter") else None, "container")
        await self.crio.refresh_all(candidates)
        async with self.step("filterContainerList"):
            f = request.filter
            if not (f.id or f.pod_sandbox_id or f.HasField("state") or f.label_selector):
                log.debug("No filters were applied, returning full container list")
            if request.HasField("filter"):
                items = self.crio.list_items((c for c in candidates
                                              if filters.container_matches(c, request.filter)), container_message)
            else:
                items = self.crio.list_items(self.store.containers.values(), container_message)
        return pb.ListContainersResponse(containers=items)

    async def StreamContainers(self, request, context):
        # server/container_list.go: listContainers without ListContainers' own step, in chunks.
        await self.crio.refresh_all()
        if request.HasField("filter"):
            async with self.step("filterContainerList"):
                items = self.crio.list_items((c for c in self.store.containers.values()
                                              if filters.container_matches(c, request.filter)), container_message)
        else:
            items = self.crio.list_items(self.store.containers.values(), container_message)
        for i in range(0, len(items), STREAM_CHUNK_SIZE):
            yield pb.StreamContainersResponse(containers=items[i:i + STREAM_CHUNK_SIZE])

    async def StreamPodSandboxes(self, request, context):
        # server/sandbox_list.go: listPodSandboxes (filterSandboxList opens its step), in chunks.
        async with self.step("filterSandboxList"):
            items = self.crio.list_items((sb for sb in self.store.sandboxes.values()
                                          if not request.HasField("filter")
                                          or filters.sandbox_matches(sb, request.filter)), sandbox_message)
        for i in range(0, len(items), STREAM_CHUNK_SIZE):
            yield pb.StreamPodSandboxesResponse(pod_sandboxes=items[i:i + STREAM_CHUNK_SIZE])

    @step_span("ContainerStatus")
    async def ContainerStatus(self, request, context):
        try:
            c = self.store.container(request.container_id)
        except NotFound as err:
            raise NotFound(f"could not find container {request.container_id!r}: {err}") from None
        c = await self.crio.refresh(c)
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

    @step_span("UpdateContainerResources")
    async def UpdateContainerResources(self, request, context):
        c = await self.crio.refresh(self.store.container(request.container_id))
        if c.state not in (CREATED, RUNNING):
            raise FailedPrecondition(f"container {c.id[:13]} is not created or running")
        if request.HasField("linux"):
            async with self.step(OCI_RUNTIME + "UpdateContainer"), self.step(OCI_IMPL + "UpdateContainer"):
                c.resources = _dict(request.linux)
                self.store.save_container(c)
        return pb.UpdateContainerResourcesResponse()

    @step_span("ExecSync")
    async def ExecSync(self, request, context):
        try:
            c = self.store.container(request.container_id)
        except NotFound as err:
            raise NotFound(f"could not find container {request.container_id!r}: {err}") from None
        c = await self.crio.refresh(c)
        if c.state != RUNNING:
            raise NotFound(f"container is not created or running: container {c.id[:13]} is "
                           f"{_oci_state(c.state)}")
        if not request.cmd:
            raise Unknown("exec command cannot be empty")
        cap = self.crio.config.max_exec_seconds
        timeout = cap if request.timeout <= 0 else min(request.timeout, cap)
        async with self.step(OCI_RUNTIME + "ExecSyncContainer"):
            result = await self.crio.runtime(c.runtime_handler).exec_sync(c, list(request.cmd), int(timeout))
        if result.timed_out:
            raise DeadlineExceeded(f"command {' '.join(request.cmd)!r} timed out after {int(timeout)}s")
        return pb.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code)

    @step_span("ReopenContainerLog")
    async def ReopenContainerLog(self, request, context):
        c = await self.crio.refresh(self.store.container(request.container_id))
        if c.state != RUNNING:
            raise FailedPrecondition(f"container {c.id[:13]} is not running")
        async with self.step(OCI_RUNTIME + "ReopenContainerLog"):
            await self.crio.runtime(c.runtime_handler).reopen_log(c)
        return pb.ReopenContainerLogResponse()

    @step_span("ContainerStats")
    async def ContainerStats(self, request, context):
        c = await self.crio.refresh(self.store.container(request.container_id))
        return pb.ContainerStatsResponse(stats=self._stats(c))

    async def ListContainerStats(self, request, context):
        await self.crio.refresh_all()
        f = request.filter if request.HasField("filter") else None
        stats = [self._stats(c) for c in self.store.containers.values() if filters.stats_matches(c, f)]
        return pb.ListContainerStatsResponse(stats=stats)

    async def StreamContainerStats(self, request, context):
        # server/container_stats_list.go: listContainerStats, in chunks (the kubelet's CRIListStreaming gate).
        await self.crio.refresh_all()
        f = request.filter if request.HasField("filter") else None
        stats = [self._stats(c) for c in self.store.containers.values() if filters.stats_matches(c, f)]
        for i in range(0, len(stats), STREAM_CHUNK_SIZE):
            yield pb.StreamContainerStatsResponse(container_stats=stats[i:i + STREAM_CHUNK_SIZE])

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


def _inner(method):  # noqa: ANN001, ANN202 - a servicer method
    """A handler without serve_errors' wrapper (errors raise instead of aborting a call), for the calls
    CRI-O makes to its own handlers; its step span stays."""
    return method.__wrapped__


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

    @step_span("ListImages")
    async def ListImages(self, request, context):
        wanted = request.filter.image.image if request.HasField("filter") else ""
        found = self.images.find(wanted) if wanted else None
        items = [image_message(i) for i in self.images.images.values() if not wanted or i is found]
        return pb.ListImagesResponse(images=items)

    async def StreamImages(self, request, context):
        # server/image_list.go: listImages (no step of its own), in chunks.
        wanted = request.filter.image.image if request.HasField("filter") else ""
        found = self.images.find(wanted) if wanted else None
        items = [image_message(i) for i in self.images.images.values() if not wanted or i is found]
        for i in range(0, len(items), STREAM_CHUNK_SIZE):
            yield pb.StreamImagesResponse(images=items[i:i + STREAM_CHUNK_SIZE])

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
        log.info("Pulling image: %s", ref)
        async with self.step("pullImage", ref):
            log.debug('Using pull policy path for image %s: "%s"', ref, "/etc/containers/policy.json")
            try:
                img, parsed = lookup(ref)
            except ImageNotFound as err:
                # CRI-O returns the registry's error as is (gRPC UNKNOWN) and logs nothing at
                # info level: the message is on the SERVER span and in the kubelet's event.
                raise Unknown(f"initializing source docker://{ref}: {err}") from None
            if self.crio.config.pull_latency_ms > 0:
                await asyncio.sleep(self.crio.config.pull_latency_ms / 1000)
            if self.crio.config.pull_bandwidth_mbps > 0:
                await self._copy_layers(img)
            stored = self.images.add(img, parsed)
        log.info("Pulled image: %s", stored.id)
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

    @step_span("RemoveImage")
    async def RemoveImage(self, request, context):
        ref = request.image.image
        if not ref:
            raise InvalidArgument("ImageSpec.Image should not be empty")
        async with self.step("removeImage", ref):
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
        root = self.crio.config.root
        if self.images.on_disk:
            try:
                return await asyncio.to_thread(storage.image_fs_info, root)
            except OSError as err:
                # server/image_fs_info.go answers the walk's error (gRPC UNKNOWN).
                raise Unknown(f"get image fs info unable to get usage for {storage.images_dir(root)}: "
                              f"get disk usage for path {storage.images_dir(root)}: {err}") from None
        # The image_fs_unmounted fault: fake-crio's answer up to 625725f (see fake_crio.faults).
        now = time.time_ns()
        image_fs = pb.FilesystemUsage(
            timestamp=now, fs_id=pb.FilesystemIdentifier(mountpoint=str(root / "overlay-images")),
            used_bytes=pb.UInt64Value(value=self.images.used_bytes()),
            inodes_used=pb.UInt64Value(value=len(self.images.images) * 64))
        ctr_fs = pb.FilesystemUsage(
            timestamp=now, fs_id=pb.FilesystemIdentifier(mountpoint=str(root / "overlay-containers")),
            used_bytes=pb.UInt64Value(value=0), inodes_used=pb.UInt64Value(value=len(self.crio.store.containers)))
        return pb.ImageFsInfoResponse(image_filesystems=[image_fs], container_filesystems=[ctr_fs])


__all__ = ["Crio", "RuntimeService", "ImageService", "CATALOGUE"]
