"""fake-conmon's calls (conmon-rs's ``server/src/rpc.rs``): one monitor for many containers, like conmon-rs,
with conmon-rs's spans around the library's monitor API. A plain core: ``fake_conmon.server`` serves it over
gRPC."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

from cristack.containers.monitor_api import MonitorApi
from cristack.wire.pb.conmon.v1 import conmon_pb2 as cpb
from fake_conmon.runtime_args import ContainerIO, RuntimeArgs, rust_list, rust_str
from fake_conmon.tracing import ConmonTracing, SpanHooks

log = logging.getLogger(__name__)


class Conmon(MonitorApi):
    """Supervises the container processes fake-crio hands over."""

    def __init__(self, runtime_dir: Path, tracing: ConmonTracing | None = None,
                 runtime: RuntimeArgs | None = None) -> None:
        self.tracing = tracing or ConmonTracing()
        super().__init__(runtime_dir, SpanHooks(self.tracing))
        self.runtime = runtime or RuntimeArgs()

    async def version(self, request: cpb.VersionRequest) -> cpb.VersionResponse:
        log.debug("Got a version request")  # before conmon-rs opens the span: not an event
        with self.tracing.rpc("version", request.metadata):
            return self.version_info()

    async def create_container(self, request: cpb.CreateContainerRequest) -> cpb.CreateContainerResponse:
        tr = self.tracing
        with tr.rpc("create_container", request.metadata, container_id=request.id):
            tr.event("Got a create container request")
            connected = asyncio.Event()
            console = ContainerIO.console_socket() if request.terminal else None
            if console:
                tr.event("Creating new terminal")
                # conmon-rs listens on a console socket for runc's terminal, in a task of its own.
                self.monitor.spawn(self._listen(console, connected))
            else:
                tr.event("Creating new IO streams")
            bundle = Path(request.bundle_path) if request.bundle_path else self.runtime_dir / "workdirs" / request.id
            pidfile = bundle / "pidfile"
            tr.event(f"PID file is {pidfile}")
            args = self.runtime.create_args(request.id, bundle, pidfile, console)
            tr.event(f"Runtime args {rust_str(' '.join(args))}")
            try:
                with tr.promise("create_container"):
                    return await self._create(request, args)
            finally:
                connected.set()

    async def _listen(self, path: str, connected: asyncio.Event) -> None:
        tr = self.tracing
        with tr.span("listen"):
            tr.event(f"Listening terminal socket on {path}")
            await connected.wait()
            for message in (f"Removing socket path {path}", "Shutting down receiver stream",
                            "Received terminal file descriptor", "Shutting down listener thread"):
                tr.event(message)

    async def _create(self, request: cpb.CreateContainerRequest, args: list[str]) -> cpb.CreateContainerResponse:
        spec = self.container_spec(request)
        if spec.log_path is not None:
            self.tracing.event(f"Initializing CRI logger in path {spec.log_path}")
        self.tracing.event(f"Running: {rust_str(str(self.runtime.path))} {rust_list(args)}")
        return await self.create(spec)

    # conmon-rs has no start or stop call (CRI-O runs `runc start`/`runc kill` itself): start_container and
    # stop_container are the library's, and leave no monitor span.

    async def exec_sync_container(self, request: cpb.ExecSyncContainerRequest) -> cpb.ExecSyncContainerResponse:
        tr = self.tracing
        with tr.rpc("exec_sync_container", request.metadata, container_id=request.id):
            tr.event(f"Got exec sync container request with timeout {request.timeout_sec}")
            tr.event("Creating new IO streams")
            pidfile = self.runtime_dir / f"exec_sync{uuid.uuid4()}pid"
            args = self.runtime.exec_args(request.id, pidfile, list(request.command))
            tr.event(f"Exec args {rust_str(' '.join(args))}")
            with tr.promise("exec_sync_container"):
                return await self._exec(request, args)

    async def _exec(self, request: cpb.ExecSyncContainerRequest, args: list[str]) -> cpb.ExecSyncContainerResponse:
        self.check_exec(request)
        self.tracing.event(f"Running: {rust_str(str(self.runtime.path))} {rust_list(args)}")
        return await self.exec(request)

    async def reopen_log_container(self, request: cpb.ReopenLogContainerRequest) -> cpb.ReopenLogContainerResponse:
        with self.tracing.rpc("reopen_log_container", request.metadata, container_id=request.id):
            self.tracing.event("Got a reopen container log request")
            proc = self.container(request.id)
            with self.tracing.promise("reopen_log_container"):
                if proc.log_path is not None:
                    self.tracing.event(f"Reopen container log {proc.log_path}")
                proc.reopen_log()
                return cpb.ReopenLogContainerResponse()

    async def create_namespaces(self, request: cpb.CreateNamespacesRequest) -> cpb.CreateNamespacesResponse:
        log.debug("Got a create namespaces request")
        with self.tracing.rpc("create_namespaces", request.metadata, container_id=request.pod_id):
            return self.namespaces(request)
