"""The daemon's parts put together (cmd/containerd/server of containerd v2.4.2, the plugins fake-containerd has):
the metadata store, the shim manager and tasks service, the Go client, the CRI plugin's image service, CNI and
NRI, the CRI service core; the ttrpc server shims publish events to; and the gRPC services on the main socket
(CRI RuntimeService and ImageService, containerd's Version and Events), each call in otelgrpc's SERVER span.

``Daemon`` is what a test builds in-process (with its own tracer provider); ``run`` serves it until a stop
signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from opentelemetry import trace

from cristack.lifeline import lifeline_pipe
from cristack.otel.rpctrace import ServerTracing
from cristack.versions import CONTAINERD_REVISION, CONTAINERD_VERSION
from cristack.wire.endpoints import MAX_UNIX_PATH, default_runtime_dir, private_dir
from cristack.wire.pb.containerd.services.events.v1 import events_pb2_grpc
from cristack.wire.pb.containerd.services.version.v1 import version_pb2, version_pb2_grpc
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from cristack.wire.serving import serve
from fake_containerd.client.container import Client
from fake_containerd.config import CtdConfig
from fake_containerd.cri import cni, stats_collector
from fake_containerd.cri.grpc import ImageService, RuntimeService
from fake_containerd.cri.images.service import CRIImageService, ImageConfig
from fake_containerd.cri.nri import Nri
from fake_containerd.cri.service import CriService
from fake_containerd.metadata import MetadataStore
from fake_containerd.runtime.events import EventsService, Exchange, ttrpc_server
from fake_containerd.runtime.shim import SHIM_MODULE, ShimManager
from fake_containerd.runtime.tasks import Tasks
from fake_containerd.tracing import ContainerdTracing

log = logging.getLogger("fake_containerd")

SHIM_STOP_GRACE_S = 3.0


def shim_socket_dir(state: Path) -> Path:
    """Where shims bind their sockets (upstream: /run/containerd/s): ``<state>/s``, or, when that would make a
    socket path (the directory plus a 64-character name) too long for a unix socket, a short private directory of
    the user's named after the state directory: in the user's runtime directory, or, when even that is too long
    (a long TMPDIR), in the system's /tmp. ValueError when none fits."""
    preferred = state / "s"
    name = f"containerd-s-{hashlib.sha256(os.fsencode(state)).hexdigest()[:8]}"
    for candidate in (preferred, default_runtime_dir() / name, Path("/tmp") / f"cristack-{os.getuid()}" / name):
        if len(os.fsencode(candidate)) + 65 <= MAX_UNIX_PATH:
            return candidate
    raise ValueError(f"no directory for the shims' sockets: {preferred} and the fallbacks are too long for a unix "
                     f"socket path ({MAX_UNIX_PATH} bytes with a 64-character name); choose a shorter state directory")


class VersionService(version_pb2_grpc.VersionServicer):
    """containerd.services.version.v1.Version (``ctr version``)."""

    async def Version(self, request, context):  # noqa: N802 - the generated name
        return version_pb2.VersionResponse(version=CONTAINERD_VERSION, revision=CONTAINERD_REVISION)


@dataclass
class Daemon:
    config: CtdConfig
    tracing: ContainerdTracing
    cri: CriService
    manager: ShimManager
    exchange: Exchange = field(default_factory=Exchange)
    _collector: asyncio.Task | None = None
    _ttrpc = None

    @classmethod
    def build(cls, config: CtdConfig, provider: trace.TracerProvider | None = None,
              env: Mapping[str, str] | None = None) -> Daemon:
        tracing = ContainerdTracing(provider)
        for d in (config.root, config.state):
            private_dir(d)
        lifeline = None
        if config.shim_lifeline:
            # The write end stays open, unwritten, until this process ends: then every shim reads end-of-file.
            lifeline, _holder = lifeline_pipe()
        manager = ShimManager(
            grpc_address=str(config.address.path), ttrpc_address=str(config.ttrpc_address),
            state_dir=config.state / "io.containerd.runtime.v2.task", socket_dir=shim_socket_dir(config.state),
            debug=config.log_level <= logging.DEBUG, shim_tracing=config.shim_tracing,
            env=dict(os.environ if env is None else env), provider=tracing.provider, lifeline=lifeline)
        client = Client(MetadataStore(config.root, tracing), Tasks(manager, str(config.root)), tracing)
        images = CRIImageService(config.root, ImageConfig(
            config.snapshotter, config.sandbox_image, config.registry_config_path, config.pull_latency_ms,
            config.registry_mirrors), tracing)
        network = cni.load(config.cni_conf_dir, config.cni_max_conf_num, not config.cni_conf_dir_is_default,
                           config.sources[0] if config.sources else "<defaults>")
        cri = CriService(config, tracing, client, images, cni.PodNetworks(network, config.k8s_state, tracing),
                         Nri(tracing))
        return cls(config, tracing, cri, manager)

    def register(self, server: grpc.aio.Server) -> None:
        pbgrpc.add_RuntimeServiceServicer_to_server(RuntimeService(self.cri), server)
        pbgrpc.add_ImageServiceServicer_to_server(ImageService(self.cri), server)
        version_pb2_grpc.add_VersionServicer_to_server(VersionService(), server)
        events_pb2_grpc.add_EventsServicer_to_server(EventsService(self.exchange), server)

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [ServerTracing(self.tracing.grpc, local_address=str(self.config.address.path))]

    async def start(self) -> None:
        """The ttrpc server shims publish to, then the stats collector."""
        self._ttrpc = ttrpc_server(self.exchange, self.tracing.provider)
        await self._ttrpc.listen(self.config.ttrpc_address, private_parent=self.config.address_is_default)
        self._collector = asyncio.ensure_future(
            stats_collector.collect_loop(self.cri, self.config.stats_collect_period))

    async def stop(self) -> None:
        """Background work ends, every shim this daemon started is told to stop (SIGTERM: it stops its
        containers and exits), connections close, the ttrpc socket goes."""
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        await self.cri.close()
        await stop_shims(self.manager.shim_pids())
        await self.manager.close()
        if not self.manager.socket_dir.is_relative_to(self.config.state):
            with contextlib.suppress(OSError):  # a fallback of this daemon's own, empty once its shims are gone
                self.manager.socket_dir.rmdir()
        if self._ttrpc is not None:
            await self._ttrpc.close()
            with contextlib.suppress(FileNotFoundError):
                Path(self.config.ttrpc_address).unlink()


async def stop_shims(pids: set[int], grace: float = SHIM_STOP_GRACE_S) -> None:
    """SIGTERM to each shim, SIGKILL to one still there after ``grace`` seconds. A pid whose process is not a
    shim of ours (gone, and the pid taken again) is left alone."""
    pids = {pid for pid in pids if _is_shim(pid)}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    alive = set(pids)
    while alive and loop.time() < deadline:
        alive = {pid for pid in alive if _alive(pid)}
        await asyncio.sleep(0.05)
    for pid in alive:
        log.warning("shim pid %d still running %.0fs after SIGTERM: killing it", pid, grace)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _is_shim(pid: int) -> bool:
    try:
        return SHIM_MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of someone else's is as good as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def run(config: CtdConfig, provider: trace.TracerProvider, env: Mapping[str, str]) -> None:
    daemon = Daemon.build(config, provider, env)
    await daemon.start()
    try:
        await serve("fake-containerd", config.address, daemon.register, private_parent=config.address_is_default,
                    interceptors=daemon.interceptors(), on_stop=daemon.stop)
    finally:
        if daemon._collector is not None and not daemon._collector.done():
            await daemon.stop()
