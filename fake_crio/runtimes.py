"""Runtime handlers: how fake-crio makes a container's process run.

- ``oci``: fake-crio supervises the process itself through ``cristack.containers.supervise`` (there
  is no monitor hop; container processes do not survive a fake-crio restart).
- ``pod``: like CRI-O with conmon-rs, every container step goes to the monitor
  (fake-conmon) over the conmon.v1 API; the monitor keeps containers across crio restarts.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import logging
import secrets
import shutil
import time
from pathlib import Path

import grpc

from cristack.containers.containerfs import BUNDLE_ENV
from cristack.containers.monitor import ContainerSpec, Monitor
from cristack.containers.monitor_metadata import FAULTS_KEY, MAX_LOG_BYTES_KEY, MONITOR_ENV_KEY
from cristack.containers.supervise import ExecResult, container_env
from cristack.wire.endpoints import parse_endpoint
from cristack.wire.errors import FailedPrecondition, RpcError, Unavailable
from cristack.wire.pb.conmon.v1 import conmon_pb2 as cpb
from cristack.wire.pb.conmon.v1 import conmon_pb2_grpc as cgrpc
from fake_crio.state import EXITED, ContainerRecord, SandboxRecord
from fake_crio.tracing import CrioTracing

log = logging.getLogger(__name__)

MONITOR_CALL_TIMEOUT_S = 10.0
MONITOR_HEALTH_TTL_S = 0.5
PROBE_TIMEOUT_S = 2.0  # a monitor probe's own deadline
PROBE_WAIT_S = 0.5  # how long a CRI call waits for a probe before answering from the last known state
RECONNECT_WAIT_S = 2.0
UNSAMPLED_TRACEPARENT = "00-" + secrets.token_hex(16) + "-" + secrets.token_hex(8) + "-00"
# Reconnect quickly when a restarted monitor comes back; calls fail fast while it is down.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 500),
)


class Runtime(abc.ABC):
    """What the CRI server asks of a runtime handler. The steps every runtime takes are abstract; the ones
    only some take (a VM to stop with its sandbox, a fork server to warm) do nothing unless overridden."""

    name: str
    runtime_type: str

    @abc.abstractmethod
    async def create_sandbox(self, sb: SandboxRecord) -> None: ...
    @abc.abstractmethod
    async def create_container(self, c: ContainerRecord, sb: SandboxRecord, exit_path: Path) -> int: ...
    @abc.abstractmethod
    async def start_container(self, c: ContainerRecord) -> int: ...
    @abc.abstractmethod
    async def stop_container(self, c: ContainerRecord, timeout: int) -> None: ...
    @abc.abstractmethod
    async def exec_sync(self, c: ContainerRecord, argv: list[str], timeout: int) -> ExecResult: ...
    @abc.abstractmethod
    async def reopen_log(self, c: ContainerRecord) -> None: ...
    @abc.abstractmethod
    async def remove_container(self, c: ContainerRecord) -> None: ...
    @abc.abstractmethod
    async def lost(self, c: ContainerRecord) -> str:
        """Why a running container's process is gone for good ("" while it may still run)."""
    @abc.abstractmethod
    async def close(self) -> None: ...

    async def update_status(self, c: ContainerRecord | None) -> None:
        """The runtime's own look at a container's state (runc state), after the exit files were read."""
        return None  # nothing to do for most runtimes

    async def stop_sandbox(self, sb: SandboxRecord) -> None:
        """Whatever the runtime keeps per sandbox (a VM) stops with it."""
        return None  # nothing to do for most runtimes

    async def delete_sandbox(self, sb: SandboxRecord) -> None:
        """The runtime's part of removing a sandbox."""
        return None  # nothing to do for most runtimes

    async def warm_up(self) -> None:
        """Readies what the first container would otherwise wait for (a fork server)."""
        return None  # nothing to do for most runtimes


def _env(c: ContainerRecord, sb: SandboxRecord) -> dict[str, str]:
    return container_env(c.env, hostname=sb.hostname or sb.name, cwd=c.working_dir)


OCI = "internal/oci.(*runtimeOCI)."


class OciRuntime(Runtime):
    """Supervises container processes inside fake-crio (CRI-O's runtimeOCI: runc through conmon)."""

    runtime_type = "oci"

    def __init__(self, name: str, workdirs: Path, max_log_bytes: int = 0, tracing: CrioTracing | None = None) -> None:
        self.name = name
        self.max_log_bytes = max_log_bytes
        self.tracing = tracing or CrioTracing()
        self.monitor = Monitor(workdirs)

    async def create_sandbox(self, sb: SandboxRecord) -> None:
        # No infra process (CRI-O with drop_infra_ctr = true spoofs it), but runtimeOCI is asked.
        async with self.tracing.step(OCI + "CreateContainer"):
            pass

    async def create_container(self, c: ContainerRecord, sb: SandboxRecord, exit_path: Path) -> int:
        async with self.tracing.step(OCI + "CreateContainer"):
            env = _env(c, sb)
            if c.bundle:
                env[BUNDLE_ENV] = c.bundle  # the applet runner reads its mounts there (and hides the variable)
            return await self.monitor.create(ContainerSpec(
                c.id, c.argv, env, Path(c.log_path) if c.log_path else None, [exit_path],
                max_log_bytes=self.max_log_bytes))

    def _held(self, c: ContainerRecord) -> str:
        """The container's id, when the monitor still holds its process."""
        if c.id not in self.monitor:
            if c.state == EXITED:
                raise FailedPrecondition(f"container {c.id[:13]} is not running")
            raise FailedPrecondition(f"container {c.id[:13]} has no process (lost when fake-crio restarted)")
        return c.id

    async def start_container(self, c: ContainerRecord) -> int:
        async with self.tracing.step(OCI + "StartContainer"):
            return await self.monitor.start(self._held(c))

    async def stop_container(self, c: ContainerRecord, timeout: int) -> None:
        async with self.tracing.step(OCI + "StopContainer"):
            if c.id in self.monitor:
                async with self.tracing.step(OCI + "StopLoopForContainer"):
                    _warn_kill(c, timeout)
                    await self.monitor.stop(c.id, timeout)
                    _killed(timeout)

    async def exec_sync(self, c: ContainerRecord, argv: list[str], timeout: int) -> ExecResult:
        async with self.tracing.step(OCI + "ExecSyncContainer"):
            result = await self.monitor.exec(self._held(c), argv, {}, timeout)
            # CRI-O reads conmon's exec log back and splits it into stdout and stderr.
            async with self.tracing.step("internal/oci.TruncateAndReadFile"):
                pass
            async with self.tracing.step("internal/oci.parseLog"):
                pass
            return result

    async def reopen_log(self, c: ContainerRecord) -> None:
        async with self.tracing.step(OCI + "ReopenContainerLog"):
            self.monitor.reopen_log(self._held(c))

    async def remove_container(self, c: ContainerRecord) -> None:
        async with self.tracing.step(OCI + "DeleteContainer"):
            await self.monitor.forget(c.id)

    async def update_status(self, c: ContainerRecord | None) -> None:
        async with self.tracing.step(OCI + "UpdateContainerStatus"):
            _log_exit(c)

    async def delete_sandbox(self, sb: SandboxRecord) -> None:
        async with self.tracing.step(OCI + "DeleteContainer"):
            pass

    async def lost(self, c: ContainerRecord) -> str:
        if c.id in self.monitor:
            return ""
        return "the container's process was lost when fake-crio restarted (runtime type oci keeps no monitor)"

    async def warm_up(self) -> None:
        await self.monitor.warm_up()

    async def close(self) -> None:
        await self.monitor.close()


def _log_exit(c: ContainerRecord | None) -> None:
    # runtimeOCI.UpdateContainerStatus reads the exit file once the container is gone.
    if c is not None and c.state == EXITED:
        log.debug("Found exit code for %s: %d", c.id, c.exit_code)


def _killed(timeout: int) -> None:
    # The kill loop's last word once the container is gone (internal/oci/runtime_oci.go StopLoopForContainer).
    if timeout <= 0:
        log.debug("Container is no longer alive")


def _warn_kill(c: ContainerRecord, timeout: int) -> None:
    # With no grace period CRI-O's stop loop times out at once and kills, with this warning.
    if timeout <= 0:
        log.warning("Stopping container %s with stop signal(15) timed out. Killing...", c.id)


class PodRuntime(Runtime):
    """Delegates container steps to fake-conmon over the conmon.v1 API.

    Like CRI-O's runtimePod (internal/oci/runtime_pod.go), only creation, exec and log reopening
    are conmon-rs calls with ``conmonrs-client`` spans; start, stop, status and delete are
    runc's work in CRI-O (runtimeOCI spans). fake-conmon still does them here, over calls that
    carry an unsampled parent so that the monitor records nothing CRI-O would not cause.
    """

    runtime_type = "pod"

    def __init__(self, name: str, endpoint: str, tracing: CrioTracing | None = None, max_log_bytes: int = 0,
                 monitor_env: list[str] | None = None) -> None:
        self.name = name
        self.max_log_bytes = max_log_bytes
        self.tracing = tracing or CrioTracing()
        self.endpoint = parse_endpoint(endpoint)
        self.channel = grpc.aio.insecure_channel(self.endpoint.grpc_target, options=CHANNEL_OPTIONS)
        self.stub = cgrpc.ConmonStub(self.channel)
        self._instance: str | None = None
        self._checked_at = 0.0
        self._probe: asyncio.Task | None = None
        self._probe_started = 0.0
        self._slow = False
        self._persist_root: Path | None = None  # <runroot>/persist, known from the first exit path
        # Mock-only metadata: the handler's monitor_env (fake-conmon exports spans only with a
        # LOG_DRIVER, as conmon-rs does) and monitor-side workshop faults.
        self.metadata: dict[str, str] = {}
        if monitor_env:
            self.metadata[MONITOR_ENV_KEY] = "\n".join(monitor_env)
        faults = self.tracing.faults.monitor_faults()
        if faults:
            self.metadata[FAULTS_KEY] = ",".join(faults)
        if max_log_bytes:
            self.metadata[MAX_LOG_BYTES_KEY] = str(max_log_bytes)

    async def _call(self, what: str, fn, request, *, root: bool = False):  # noqa: ANN001 - any stub method
        """Calls the monitor in a ``conmonrs-client: <what>`` span; like conmon-rs's client, the
        trace context travels in the request's metadata map."""
        with self.tracing.client(what, root=root) as metadata:
            request.metadata.update(metadata)
            request.metadata.update(self.metadata)
            return await self._send(what, fn, request)

    async def _untraced(self, what: str, fn, request):  # noqa: ANN001 - any stub method
        request.metadata.update({"traceparent": UNSAMPLED_TRACEPARENT, **self.metadata})
        return await self._send(what, fn, request)

    async def _send(self, what: str, fn, request):  # noqa: ANN001 - any stub method
        try:
            try:
                return await fn(request, timeout=MONITOR_CALL_TIMEOUT_S)
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                # The channel may still be backing off from a monitor that has just come
                # back: give it one short chance to reconnect before giving up.
                return await fn(request, timeout=RECONNECT_WAIT_S, wait_for_ready=True)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(f"container monitor at {self.endpoint} is unavailable ({what}): "
                                  f"{err.details()}") from None
            # The monitor's own answer (NOT_FOUND, INVALID_ARGUMENT, ...) passes through.
            raise _passthrough(err) from None

    async def instance(self, wait: float = PROBE_WAIT_S) -> str | None:
        """The monitor's instance id as last seen: "" once its socket refuses connections (it is
        gone), None while nothing is known yet. A probe runs at most every MONITOR_HEALTH_TTL_S,
        shared by every caller; a caller waits for it at most ``wait`` seconds after it began and
        otherwise gets the last known answer: a slow monitor is not a dead one."""
        if time.monotonic() - self._checked_at > MONITOR_HEALTH_TTL_S and (self._probe is None or self._probe.done()):
            self._probe_started = time.monotonic()
            # In a context of its own: the probe's log lines belong to no CRI call's span.
            self._probe = asyncio.create_task(self._run_probe(), name="monitor-probe", context=contextvars.Context())
        if self._probe is not None and not self._probe.done():
            left = self._probe_started + wait - time.monotonic()
            if left > 0:
                await asyncio.wait({self._probe}, timeout=left)  # never cancels the shared probe
        return self._instance

    async def _run_probe(self) -> None:
        # A liveness probe, not work: an explicitly unsampled parent keeps conmon-rs's
        # ParentBased(AlwaysOn) sampler from recording a root span for every probe.
        probe = cpb.VersionRequest(metadata={"traceparent": UNSAMPLED_TRACEPARENT, **self.metadata})
        try:
            resp = await self.stub.Version(probe, timeout=PROBE_TIMEOUT_S)
            if self._slow:
                log.info("container monitor at %s answers again", self.endpoint)
            self._instance, self._slow = resp.instance_id, False
        except grpc.aio.AioRpcError as err:
            if await self._refused():
                self._instance = ""
            elif not self._slow:
                # Paused, overloaded or still starting: what we knew stays true until it answers.
                self._slow = True
                log.warning("container monitor at %s did not answer a probe (%s); keeping the last known "
                            "container states", self.endpoint, err.code().name)
        finally:
            self._checked_at = time.monotonic()

    async def _refused(self) -> bool:
        """True when nothing listens at the monitor's address any more (a refused connection or
        a missing socket): the only proof that the monitor, and its containers with it, is gone."""
        ep = self.endpoint
        try:
            if ep.path is not None:
                connect = asyncio.open_unix_connection(str(ep.path))
            else:
                connect = asyncio.open_connection(ep.host, ep.port)
            _, writer = await asyncio.wait_for(connect, timeout=PROBE_TIMEOUT_S)
        except (ConnectionRefusedError, FileNotFoundError):
            return True
        except (OSError, asyncio.TimeoutError):
            return False  # a full backlog or a slow network is not a refusal
        writer.close()
        return False

    async def create_sandbox(self, sb: SandboxRecord) -> None:
        """CRI-O starts one conmon-rs per pod (client.New: probe, startServer, then Version polls
        in waitUntilServerUp; all from a background context, so roots of their own), then asks
        it for its version in the sandbox's CreateContainer. fake-conmon serves every pod from one
        process that is already up: the probe answers, and one poll suffices."""
        with self.tracing.client("New", root=True):
            await self._call("Version", self.stub.Version, cpb.VersionRequest())
        with self.tracing.client("startServer", root=True):
            pass  # fake-conmon already runs; there is no process to start
        with self.tracing.client("waitUntilServerUp", root=True):
            await self._call("Version", self.stub.Version, cpb.VersionRequest(), root=True)
        version = await self._call("Version", self.stub.Version, cpb.VersionRequest())
        log.debug("Using conmonrs version: %s, tag: %s, commit: %s, build: %s, target: %s, %s", version.version,
                  version.tag, version.commit, version.build_date, version.target, version.python_version)

    async def create_container(self, c: ContainerRecord, sb: SandboxRecord, exit_path: Path) -> int:
        # CRI-O's default log_size_max (-1) gives conmon-rs no max size; our safety cap rides in the metadata.
        drivers = [cpb.LogDriver(type=cpb.LogDriver.CONTAINER_RUNTIME_INTERFACE, path=c.log_path)] \
            if c.log_path else []
        # CRI-O hands conmon-rs two exit paths (internal/oci/runtime_pod.go): the exits dir it watches, and
        # the container's own persist dir, where the status survives a restart of CRI-O.
        self._persist_root = exit_path.parent.parent / "persist"
        persist = self._persist_root / c.id
        persist.mkdir(parents=True, exist_ok=True, mode=0o700)
        req = cpb.CreateContainerRequest(
            id=c.id, bundle_path=c.bundle, exit_paths=[str(exit_path), str(persist / "exit")], log_drivers=drivers,
            command_args=c.argv, env_vars=_env(c, sb), cwd=c.working_dir,
            terminal=bool(c.config.get("tty")), stdin=bool(c.config.get("stdin")))
        resp = await self._call("CreateContainer", self.stub.CreateContainer, req)
        self._checked_at = 0.0
        c.monitor_instance = await self.instance(wait=PROBE_TIMEOUT_S) or ""
        return resp.container_pid

    async def start_container(self, c: ContainerRecord) -> int:
        async with self.tracing.step(OCI + "StartContainer"):
            req = cpb.StartContainerRequest(id=c.id)
            resp = await self._untraced("StartContainer", self.stub.StartContainer, req)
            return resp.started_at

    async def stop_container(self, c: ContainerRecord, timeout: int) -> None:
        async with self.tracing.step(OCI + "StopContainer"), self.tracing.step(OCI + "StopLoopForContainer"):
            _warn_kill(c, timeout)
            await self._stop(c, timeout)
            _killed(timeout)

    async def _stop(self, c: ContainerRecord, timeout: int) -> None:
        req = cpb.StopContainerRequest(id=c.id, timeout_sec=timeout)
        try:
            await self._untraced("StopContainer", self.stub.StopContainer, req)
        except RpcError as err:
            if err.code != grpc.StatusCode.NOT_FOUND:
                raise
            # The monitor already forgot it: it exited and its exit file is written.

    async def exec_sync(self, c: ContainerRecord, argv: list[str], timeout: int) -> ExecResult:
        req = cpb.ExecSyncContainerRequest(id=c.id, timeout_sec=max(timeout, 0), command=argv)
        resp = await self._call("ExecSyncContainer", self.stub.ExecSyncContainer, req)
        return ExecResult(resp.exit_code, resp.stdout, resp.stderr, resp.timed_out)

    async def reopen_log(self, c: ContainerRecord) -> None:
        req = cpb.ReopenLogContainerRequest(id=c.id)
        await self._call("ReopenLogContainer", self.stub.ReopenLogContainer, req)

    async def remove_container(self, c: ContainerRecord) -> None:
        async with self.tracing.step(OCI + "DeleteContainer"):
            # conmon-rs forgets a container once it exited; stopping an unknown one is harmless.
            if c.monitor_instance and c.monitor_instance == await self.instance():
                try:
                    await self._stop(c, 0)
                except Exception as err:  # noqa: BLE001 - removal goes on regardless
                    log.debug("stopping %s before removal: %s", c.id[:13], err)
            if self._persist_root is not None:
                shutil.rmtree(self._persist_root / c.id, ignore_errors=True)

    async def update_status(self, c: ContainerRecord | None) -> None:
        async with self.tracing.step(OCI + "UpdateContainerStatus"):
            _log_exit(c)

    async def delete_sandbox(self, sb: SandboxRecord) -> None:
        """Deleting the infra container shuts the pod's conmon-rs down (a root span: the client
        uses context.TODO()). fake-conmon serves other pods too, so it stays up."""
        async with self.tracing.step(OCI + "DeleteContainer"):
            pass
        with self.tracing.client("Shutdown", root=True):
            pass

    async def lost(self, c: ContainerRecord) -> str:
        current = await self.instance()
        if current is None:
            return ""  # nothing known yet: not a proof of anything
        if not current:
            return f"container monitor at {self.endpoint} is gone (its socket refuses connections)"
        if c.monitor_instance and current != c.monitor_instance:
            return "container monitor restarted; the container's process went with the old monitor"
        return ""

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self.channel.close(grace=None)


def _passthrough(err: grpc.aio.AioRpcError) -> RpcError:
    """Re-raises a status the monitor answered (NOT_FOUND, INVALID_ARGUMENT, ...) to our caller."""
    e = RpcError(err.details() or err.code().name)
    e.code = err.code()
    return e
