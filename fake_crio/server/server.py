"""fake-crio's server (CRI-O's server/server.go): the state every CRI call works on and the steps the calls
share. ``fake_crio.server.Server`` adds one module per call (named after CRI-O's ``server/*.go`` file) to it;
``fake_crio.server.grpc_service`` serves it over gRPC.

The core takes and answers protobuf messages and raises ``cristack.wire.errors`` errors; it never sees a gRPC
context. A handler that CRI-O calls from another (the evented PLEG's statuses) is called here directly, so its
step span nests as CRI-O's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from opentelemetry import context as otel_context

from cristack.rwlock import RWLock
from cristack.wire.errors import InvalidArgument, NotFound, RpcError
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio import storage
from fake_crio.config import CrioConfig
from fake_crio.events import ContainerEvents
from fake_crio.images import ImageStore
from fake_crio.runtimes import OciRuntime, PodRuntime, Runtime
from fake_crio.server.utils import LIB_SERVER, OCI_RUNTIME
from fake_crio.state import EXITED, RUNNING, UID_LABEL, ContainerRecord, SandboxRecord, Store, new_id
from fake_crio.tracing import CrioTracing

log = logging.getLogger(__name__)

SCAN_EXITS_ABOVE = 8  # running containers to refresh above which one listing beats a stat each


def make_runtimes(config: CrioConfig, store: Store, tracing: CrioTracing) -> dict[str, Runtime]:
    """One runtime per configured handler ([crio.runtime.runtimes.NAME] runtime_type)."""
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
    return runtimes


@dataclass
class ServerBase:
    """The state of both CRI services, and the steps their calls share."""

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
    # Each sandbox's stop lock (internal/lib/sandbox.Sandbox.StopMutex): CreateContainer holds it shared for the
    # whole creation, stopPodSandbox exclusive, so no container is created into a sandbox being stopped.
    _stop_locks: dict[str, RWLock] = field(default_factory=dict)

    @classmethod
    def create(cls, config: CrioConfig, tracing: CrioTracing | None = None):  # noqa: ANN206 - the subclass
        tracing = tracing or CrioTracing(faults=config.faults)
        store = Store(config.root, config.runroot)
        # containers/storage's directories, which ImageFsInfo walks (left out under the mock-only
        # image_fs_unmounted fault, which reproduces the first real-kubelet recording's runtime).
        on_disk = not config.faults.image_fs_unmounted
        if on_disk:
            storage.ensure(config.root)
        return cls(config, store, ImageStore(config.root, on_disk=on_disk), make_runtimes(config, store, tracing),
                   tracing, events=ContainerEvents(config.enable_pod_events))

    def __post_init__(self) -> None:
        self.step: Callable = self.tracing.step  # every call opens steps: one attribute lookup, not two

    @contextlib.contextmanager
    def reserved(self, reserve: Callable[[str], None]) -> Iterator[str]:
        """A fresh id for a sandbox or container, held by ``reserve(id)`` (its name's reservation, which raises
        ALREADY_EXISTS for a taken name) from before the creation's first await until the block ends, when it
        is given back: kept by the record if the creation succeeded (CRI-O's reservation and resource
        cleaner)."""
        ident = new_id()
        reserve(ident)
        try:
            yield ident
        finally:
            self.store.release_reservations(ident)

    def stop_lock(self, sandbox_id: str) -> RWLock:
        lock = self._stop_locks.get(sandbox_id)
        if lock is None:
            lock = self._stop_locks[sandbox_id] = RWLock()
        return lock

    def forget_stop_lock(self, sandbox_id: str) -> None:
        self._stop_locks.pop(sandbox_id, None)

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

    def runtime(self, handler: str) -> Runtime:
        name = handler or self.config.default_runtime
        rt = self.runtimes.get(name)
        if rt is None:
            raise InvalidArgument(f"no runtime handler {name!r} is configured "
                                  f"(configured: {', '.join(sorted(self.runtimes))})")
        return rt

    def runtime_or_none(self, handler: str) -> Runtime | None:
        return self.runtimes.get(handler)

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

    def close_runtimes(self):  # noqa: ANN201
        return asyncio.gather(*(rt.close() for rt in self.runtimes.values()), return_exceptions=True)

    # -- CRI-O's shared steps (their span trees as CRI-O 1.36.3 records them)

    async def update_status(self, rt: Runtime | None, c: ContainerRecord | None = None) -> None:
        """internal/oci.(*Runtime).UpdateContainerStatus > the runtime's own (runc state)."""
        async with self.step(OCI_RUNTIME + "UpdateContainerStatus"):
            if c is not None:
                await self.refresh(c)
            if rt is not None:
                await rt.update_status(c)

    async def state_to_disk(self, rt: Runtime | None, c: ContainerRecord | None = None) -> None:
        """internal/lib.(*ContainerServer).ContainerStateToDisk: refresh the state, then save it."""
        async with self.step(LIB_SERVER + "ContainerStateToDisk"):
            await self.update_status(rt, c)
            if c is not None:
                self.store.save_container(c)

    async def get_sandbox_from_request(self, sandbox_id: str) -> SandboxRecord:
        """server.go getPodSandboxFromRequest (with getSandbox's step)."""
        async with self.step("getPodSandboxFromRequest"), self.step("getSandbox"):
            return self.store.sandbox(sandbox_id)

    # -- evented PLEG: CRI-O's generateCRIEvent (server/server.go), only with enable_pod_events

    async def generate_event(self, container_id: str, sandbox_id: str, kind: int) -> None:
        """Publishes one ContainerEventResponse: the container's refreshed state, then its pod's
        PodSandboxStatus and the statuses of the pod's containers (by the pod UID label), each
        through the handler CRI-O calls, so their step spans nest as CRI-O's do. Failures are
        logged, never raised: the RPC that caused the event has succeeded."""
        if not self.events.enabled:
            return
        name = pb.ContainerEventType.Name(kind)
        try:
            async with self.step(OCI_RUNTIME + "UpdateContainerStatus"):
                c = self.store.containers.get(container_id)
                if c is not None:
                    await self.refresh(c)
            if sandbox_id not in self.store.sandboxes:
                return  # sandbox removed first: CRI-O sends nothing (HasSandbox is false)
            sb_status = (await self.pod_sandbox_status(pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id))).status
            statuses = await self.container_statuses(pb.ContainerFilter(
                label_selector={"io.kubernetes.pod.uid": sb_status.metadata.uid}))
        except NotFound:
            return
        except (RpcError, OSError) as err:
            log.error("GenerateCRIEvent: event type: %s, failed to get statuses of container %s: %s", name,
                      container_id, err)
            return
        self.events.publish(pb.ContainerEventResponse(
            container_id=container_id, container_event_type=kind, created_at=time.time_ns(),
            pod_sandbox_status=sb_status, containers_statuses=statuses))

    async def container_statuses(self, flt: pb.ContainerFilter) -> list[pb.ContainerStatus]:
        """ListContainers with ``flt``, then ContainerStatus of each (one removed meanwhile is skipped)."""
        listed = await self.list_containers(pb.ListContainersRequest(filter=flt))
        out = []
        for item in listed.containers:
            try:
                resp = await self.container_status(pb.ContainerStatusRequest(container_id=item.id))
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
                await self.refresh_all()
            except OSError as err:
                log.warning("exit monitor: %s", err)
                continue
            for c in list(self.store.containers.values()):
                if c.state == EXITED and c.id not in announced:
                    announced.add(c.id)
                    token = otel_context.attach(otel_context.Context())  # a background goroutine's root
                    try:
                        await self.generate_event(c.id, c.sandbox_id, pb.CONTAINER_STOPPED_EVENT)
                    finally:
                        otel_context.detach(token)
            announced &= self.store.containers.keys()

    # Defined by the call modules (see fake_crio.server.Server); named here for the shared steps above.
    async def pod_sandbox_status(self, request: pb.PodSandboxStatusRequest) -> pb.PodSandboxStatusResponse:
        raise NotImplementedError

    async def list_containers(self, request: pb.ListContainersRequest) -> pb.ListContainersResponse:
        raise NotImplementedError

    async def container_status(self, request: pb.ContainerStatusRequest) -> pb.ContainerStatusResponse:
        raise NotImplementedError
