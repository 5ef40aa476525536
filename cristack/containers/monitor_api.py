"""The container monitor's API (conmon.v1, as conmon-rs serves it) over one ``Monitor``, without spans: a plain
core whose methods take and answer conmon.v1 messages (``create_container`` for CreateContainer, ...) and raise
``cristack.wire.errors``; ``cristack.wire.servicer.servicer_for`` serves it over gRPC.

fake-conmon adds conmon-rs's spans around each call, the Kata agent the agent's: both subclass ``MonitorApi``
and wrap its calls, so that the requests are checked and carried out in one place.
"""

from __future__ import annotations

import logging
import platform
import re
import time
import uuid
from pathlib import Path

from cristack.containers.containerfs import BUNDLE_ENV
from cristack.containers.monitor import ContainerSpec, Monitor
from cristack.containers.monitor_metadata import MAX_LOG_BYTES_KEY
from cristack.containers.supervise import NO_HOOKS, ContainerProcess, Hooks, container_env
from cristack.versions import CONMONRS_COMMIT, CONMONRS_VERSION
from cristack.wire.errors import AlreadyExists, InvalidArgument
from cristack.wire.pb.conmon.v1 import conmon_pb2 as cpb
from cristack.wording import plural, shown

log = logging.getLogger(__name__)

VALID_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
NAMESPACE_DIRS = {cpb.CreateNamespacesRequest.IPC: "ipc", cpb.CreateNamespacesRequest.NET: "net",
                  cpb.CreateNamespacesRequest.PID: "pid", cpb.CreateNamespacesRequest.USER: "user",
                  cpb.CreateNamespacesRequest.UTS: "uts"}


def _int(text: str | None) -> int:
    """A metadata number, or 0 when absent or not a number."""
    try:
        return max(int(text or 0), 0)
    except ValueError:
        return 0


def check_id(cid: str) -> None:
    """Container ids name directories here: nothing that could be a path, nothing too long."""
    if not cid:
        raise InvalidArgument("container id should not be empty")
    if not VALID_ID.fullmatch(cid):
        raise InvalidArgument(f"container id {cid[:40]!r}{'...' if len(cid) > 40 else ''} is not valid "
                              "(1-128 letters, digits, '.', '_' or '-')")


class MonitorApi:
    """conmon.v1 over a Monitor whose containers live under ``runtime_dir``; ``hooks`` see the supervision
    steps (conmon-rs's span names)."""

    def __init__(self, runtime_dir: Path, hooks: Hooks = NO_HOOKS) -> None:
        self.runtime_dir = runtime_dir
        # conmon-rs forgets a container once its exit is reported; the monitor keeps it a while
        # (monitor.FORGET_AFTER_S) so that a late StopContainer still learns the exit code.
        self.monitor = Monitor(runtime_dir / "workdirs", hooks)
        self.instance_id = uuid.uuid4().hex

    def container(self, cid: str) -> ContainerProcess:
        check_id(cid)
        return self.monitor.get(cid)

    # -- the work of each call

    def version_info(self) -> cpb.VersionResponse:
        # The conmon-rs release whose spans we reproduce (tests/data/real/crio/VERSIONS.txt), so that CRI-O's
        # "Using conmonrs version" line and a user's version check say what the traces claim.
        return cpb.VersionResponse(
            version=CONMONRS_VERSION, tag=f"v{CONMONRS_VERSION}", commit=CONMONRS_COMMIT, build_date="",
            target=f"{platform.machine()}-unknown-linux-gnu", python_version=platform.python_version(),
            instance_id=self.instance_id)

    def container_spec(self, request: cpb.CreateContainerRequest) -> ContainerSpec:
        """The checked request: INVALID_ARGUMENT for what cannot run, ALREADY_EXISTS for a taken id."""
        cid = request.id
        check_id(cid)
        if not request.command_args:
            raise InvalidArgument(f"container {cid}: command_args should not be empty")
        if cid in self.monitor:
            raise AlreadyExists(f"container {cid} already exists")
        log_path = None
        max_log = 0
        for driver in request.log_drivers:
            if not Path(driver.path).is_absolute():
                raise InvalidArgument(f"log driver path {shown(driver.path)} is not absolute")
            log_path = Path(driver.path)
            max_log = max(driver.max_size, 0)
        exit_paths = [Path(p) for p in request.exit_paths]
        if any(not p.is_absolute() for p in exit_paths):
            raise InvalidArgument("exit paths must be absolute")
        env = dict(request.env_vars) or container_env({}, cwd=request.cwd)
        if request.bundle_path:
            if not Path(request.bundle_path).is_absolute():
                raise InvalidArgument(f"bundle path {shown(request.bundle_path)} is not absolute")
            env[BUNDLE_ENV] = request.bundle_path  # the container's mounts and sysctls (config.json)
        return ContainerSpec(cid, list(request.command_args), env, log_path, exit_paths,
                             max_log_bytes=max_log or _int(request.metadata.get(MAX_LOG_BYTES_KEY)),
                             log_size_max=max_log, terminal=request.terminal)

    async def create(self, spec: ContainerSpec) -> cpb.CreateContainerResponse:
        pid = await self.monitor.create(spec)
        log.info("created container %s (pid %d): %s", spec.id[:13], pid, " ".join(spec.argv))
        return cpb.CreateContainerResponse(container_pid=pid)

    async def start(self, request: cpb.StartContainerRequest) -> cpb.StartContainerResponse:
        check_id(request.id)
        started = await self.monitor.start(request.id)
        log.info("started container %s", request.id[:13])
        return cpb.StartContainerResponse(started_at=started)

    async def stop(self, request: cpb.StopContainerRequest) -> cpb.StopContainerResponse:
        check_id(request.id)
        status = await self.monitor.stop(request.id, request.timeout_sec, request.signal or 15)
        log.info("stopped container %s: exit code %d", request.id[:13], status.code)
        # Its exit is recorded in the exit files; the caller has no further use for it here.
        await self.monitor.forget(request.id)
        return cpb.StopContainerResponse(exit_code=status.code, finished_at=status.finished_at)

    def check_exec(self, request: cpb.ExecSyncContainerRequest) -> None:
        self.container(request.id)
        if not request.command:
            raise InvalidArgument("exec needs a command")

    async def exec(self, request: cpb.ExecSyncContainerRequest) -> cpb.ExecSyncContainerResponse:
        result = await self.monitor.exec(request.id, list(request.command), dict(request.env_vars),
                                         float(request.timeout_sec))
        return cpb.ExecSyncContainerResponse(exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr,
                                             timed_out=result.timed_out)

    def namespaces(self, request: cpb.CreateNamespacesRequest) -> cpb.CreateNamespacesResponse:
        check_id(request.pod_id)
        base = Path(request.base_path) if request.base_path else self.runtime_dir / "ns"
        out = [cpb.NamespaceResponse(type=ns, path=str(base / f"{NAMESPACE_DIRS.get(ns, 'ns')}ns" / request.pod_id))
               for ns in request.namespaces]
        return cpb.CreateNamespacesResponse(namespaces=out)

    # -- the calls, untraced

    async def version(self, request: cpb.VersionRequest) -> cpb.VersionResponse:
        return self.version_info()

    async def create_container(self, request: cpb.CreateContainerRequest) -> cpb.CreateContainerResponse:
        return await self.create(self.container_spec(request))

    async def start_container(self, request: cpb.StartContainerRequest) -> cpb.StartContainerResponse:
        return await self.start(request)

    async def stop_container(self, request: cpb.StopContainerRequest) -> cpb.StopContainerResponse:
        return await self.stop(request)

    async def exec_sync_container(self, request: cpb.ExecSyncContainerRequest) -> cpb.ExecSyncContainerResponse:
        self.check_exec(request)
        return await self.exec(request)

    async def reopen_log_container(self, request: cpb.ReopenLogContainerRequest) -> cpb.ReopenLogContainerResponse:
        self.container(request.id).reopen_log()
        return cpb.ReopenLogContainerResponse()

    async def create_namespaces(self, request: cpb.CreateNamespacesRequest) -> cpb.CreateNamespacesResponse:
        return self.namespaces(request)

    # -- life

    async def warm_up(self) -> None:
        await self.monitor.warm_up()

    async def close(self) -> None:
        """Kills what still runs: without a monitor nobody would record their exit."""
        started = time.monotonic()
        held = await self.monitor.close()
        log.info("closed %s in %.2fs", plural(held, "container"), time.monotonic() - started)
