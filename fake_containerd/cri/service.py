"""The CRI plugin's service core (internal/cri/server/service.go criService of containerd v2.4.2): what every
handler module (sandbox_run, container_create, ...) works with. Built once per daemon, or per test with an
injected tracer provider and task runtime."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from cristack.files import confine
from cristack.wire.errors import InvalidArgument
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.client.container import Client
from fake_containerd.config import CtdConfig, RuntimeHandler
from fake_containerd.cri.cni import PodNetworks
from fake_containerd.cri.images.service import CRIImageService
from fake_containerd.cri.nri import Nri
from fake_containerd.cri.store import Stores
from fake_containerd.tracing import ContainerdTracing

log = logging.getLogger(__name__)


@dataclass
class CriService:
    config: CtdConfig
    tracing: ContainerdTracing
    client: Client
    images: CRIImageService
    networks: PodNetworks
    nri: Nri
    stores: Stores = field(default_factory=Stores)
    # background work (exit monitors, deferred deletes): kept so that shutdown can wait for it
    background: set[asyncio.Task] = field(default_factory=set)
    events: asyncio.Queue[pb.ContainerEventResponse] = field(default_factory=lambda: asyncio.Queue(1024))

    def runtime(self, handler: str) -> tuple[str, RuntimeHandler]:
        """GetSandboxRuntime: the handler's runtime, or the default runtime for an empty handler."""
        name = handler or self.config.default_runtime
        rt = self.config.runtimes.get(name)
        if rt is None:
            raise InvalidArgument(f"no runtime for \"{name}\" is configured")
        return name, rt

    def spawn(self, coro) -> asyncio.Task:  # noqa: ANN001 - a coroutine
        """A goroutine of containerd's started with context.Background(): it runs on its own (kept until it
        ends) with no current span, so what it logs lands on no span and what it calls starts new traces."""

        async def goroutine():  # noqa: ANN202
            with self.tracing.background():
                return await coro

        task = asyncio.ensure_future(goroutine())
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def log_path(self, sandbox_config: pb.PodSandboxConfig, container_log_path: str) -> str:
        """The container's log file: the sandbox's log directory joined with the container's log path, which
        may not leave it; with ``pod_logs_root`` the directory itself must lie under that root (a relative one is
        taken relative to it)."""
        directory = sandbox_config.log_directory
        if not directory or not container_log_path:
            return ""
        root = self.config.pod_logs_root
        if not Path(directory).is_absolute():
            if root is None:
                raise InvalidArgument(f"log_directory {directory!r} is not an absolute path")
            directory = str(root / directory)  # ours, not the kubelet's: under the confining root, as fake-crio
        if root is not None:
            try:
                confine(root, directory)
            except ValueError as err:
                raise InvalidArgument(f"log_directory {directory!r} refused: {err} (pod_logs_root confines logs "
                                      f"under {root})") from None
        try:
            path = confine(Path(directory), container_log_path)
        except ValueError as err:
            raise InvalidArgument(f"log_path {container_log_path!r} refused: {err}") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)

    def send_event(self, container_id: str, sandbox_id: str, kind: int) -> None:
        """generateAndSendContainerEvent, for GetContainerEvents (a full queue drops the event)."""
        try:
            self.events.put_nowait(pb.ContainerEventResponse(container_id=container_id, container_event_type=kind))
        except asyncio.QueueFull:
            pass

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
