"""The task service a runc shim serves (cmd/containerd-shim-runc-v2/task/service.go, containerd v2.4.2),
as a plain core: ``methods()`` is its ttrpc method table for containerd.task.v3.Task.

The containers are the library's applets, run by the one container monitor (runc's part): Create spawns
the process held, Start releases it, its exit is recorded and published. Upstream's answers are kept:

- an unknown id: NOT_FOUND "container not created" (getContainer);
- Kill or Delete of an exec that has finished and was not waited for the usual way: NOT_FOUND
  "process already finished" (runc's errdefs mapping), which containerd records as code 5 on the shim;
- a second exec with an id in use: ALREADY_EXISTS "id ...";
- Shutdown while the shim still holds a container: nothing happens (the pod's other containers keep it);
- Pause, Resume and Checkpoint: UNIMPLEMENTED (runc would freeze the cgroup or call CRIU; the monitor
  has neither);
- Stats: an empty io.containerd.cgroups.v1.Metrics (the node is cgroups v1 in the recordings; the monitor
  keeps no cgroup of its own to read);
- Update, CloseIO and ResizePty: accepted for a known container; an Update annotated ``io.cristack.reopen-log``
  reopens the container's CRI log (this shim writes the log in containerd's place, see below);
- Kill of a running exec: its run is cancelled, which kills it (exit status 128 + the signal).

Events, in upstream's order and topics: /tasks/create after Create, /tasks/start after Start,
/tasks/exec-added after Exec, /tasks/exec-started after an exec's Start, /tasks/exit when a process
ends (an exec's exit before its container's), /tasks/delete after an init Delete.

Where output goes (a deliberate difference from containerd): containerd hands runc the fifos its CRI
io copies into the CRI log (internal/cri/io); here a ``file://`` URI in Create's ``stdout`` names the
CRI log itself, and the monitor writes it in the CRI format as it does for fake-crio. An exec's output
(the monitor collects it whole, bounded) is written to the files its ``stdout``/``stderr`` name when it
ends, before its exit is published and before Wait answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import any_pb2, empty_pb2, timestamp_pb2
from google.protobuf.message import Message

from cristack.containers.containerfs import BUNDLE_ENV
from cristack.containers.monitor import ContainerSpec, Monitor
from cristack.wire.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from cristack.wire.pb.containerd.events import task_pb2 as events
from cristack.wire.pb.containerd.runtime.task.v3 import shim_pb2 as api
from cristack.wire.pb.containerd.types.task import task_pb2 as types
from cristack.wire.ttrpc import CallContext, Method, TtrpcError
from fake_containerd.shim.bundle import ProcessSpec, load_json, process_spec, read_bundle, write_init_pid

log = logging.getLogger(__name__)

TASK_SERVICE = "containerd.task.v3.Task"
REOPEN_LOG = "io.cristack.reopen-log"  # an Update annotation: reopen the CRI log (see ``update``)
RUNC_ENV_KEY = "runc-env"  # CallContext.values: what service_tracing.go passes to runc (TRACEPARENT, ...)
STATS_TYPE_URL = "io.containerd.cgroups.v1.Metrics"
EXEC_WAIT_S = 0.0  # an exec runs until it ends (containerd's CRI bounds ExecSync itself, with Kill)
KILL_GRACE_S = 24 * 3600.0  # Kill only signals; containerd sends SIGKILL itself when it wants one
MAX_EXEC_OUTPUT_FILE = 16 << 20

Publish = Callable[[str, Message], Awaitable[None]]


def _stamp(ns: int) -> timestamp_pb2.Timestamp | None:
    if not ns:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(ns)
    return ts


def uri_path(uri: str) -> Path | None:
    """The file a stdio URI names: ``file:///abs`` or an absolute path; empty means none."""
    if not uri:
        return None
    text = uri[len("file://"):] if uri.startswith("file://") else uri
    if "://" in text or not text.startswith("/"):
        raise InvalidArgument(f"unsupported stdio {uri!r}: give file:///absolute/path")
    return Path(text)


@dataclass
class Proc:
    """One process of a container: its init (exec_id "") or an exec."""

    exec_id: str
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False
    spec: ProcessSpec | None = None  # an exec's, until it starts
    pid: int = 0
    status: int = types.CREATED
    exit_status: int = 0
    exited_ns: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    runner: asyncio.Task[None] | None = None  # an exec's run, cancelled to kill it
    killed_by: int = 0  # the signal a Kill sent to a running exec


@dataclass
class Container:
    id: str
    bundle: str
    init: Proc
    env: dict[str, str]
    execs: dict[str, Proc] = field(default_factory=dict)

    def process(self, exec_id: str) -> Proc:
        if not exec_id:
            return self.init
        proc = self.execs.get(exec_id)
        if proc is None:
            raise NotFound(f"process {exec_id} does not exist")
        return proc


class TaskService:
    """The task v3 service of one shim process. ``shutdown`` is called once the shim may exit."""

    def __init__(self, monitor: Monitor, publish: Publish, shutdown: Callable[[], None]) -> None:
        self.monitor = monitor
        self.publish = publish
        self.shutdown = shutdown
        self.containers: dict[str, Container] = {}
        self._mu = asyncio.Lock()  # s.mu: the container table
        self._tasks: set[asyncio.Task[None]] = set()

    def methods(self) -> dict[str, Method]:
        m = {
            "State": (api.StateRequest, self.state), "Create": (api.CreateTaskRequest, self.create),
            "Start": (api.StartRequest, self.start), "Delete": (api.DeleteRequest, self.delete),
            "Pids": (api.PidsRequest, self.pids), "Pause": (api.PauseRequest, self.unsupported("pause")),
            "Resume": (api.ResumeRequest, self.unsupported("resume")),
            "Checkpoint": (api.CheckpointTaskRequest, self.unsupported("checkpoint")),
            "Kill": (api.KillRequest, self.kill), "Exec": (api.ExecProcessRequest, self.exec),
            "ResizePty": (api.ResizePtyRequest, self.accept), "CloseIO": (api.CloseIORequest, self.accept),
            "Update": (api.UpdateTaskRequest, self.update), "Wait": (api.WaitRequest, self.wait),
            "Stats": (api.StatsRequest, self.stats), "Connect": (api.ConnectRequest, self.connect),
            "Shutdown": (api.ShutdownRequest, self.shutdown_call),
        }
        return {name: Method(req, handler) for name, (req, handler) in m.items()}

    def get(self, cid: str) -> Container:
        container = self.containers.get(cid)
        if container is None:
            raise NotFound("container not created")
        return container

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- lifecycle

    async def create(self, ctx: CallContext, r: api.CreateTaskRequest) -> api.CreateTaskResponse:
        if not r.id or not r.bundle:
            raise InvalidArgument("id and bundle are required")
        bundle = Path(r.bundle)
        spec = read_bundle(bundle)
        if not spec.process.args:
            raise InvalidArgument(f"{bundle / 'config.json'}: process.args is empty")
        log_path = uri_path(r.stdout)
        async with self._mu:
            if r.id in self.containers:
                raise AlreadyExists(f"container {r.id} already exists")
            # The applets read the bundle's mounts and sysctls (config.json), as under fake-crio and fake-conmon.
            env = {**spec.process.env, **_runc_env(ctx), BUNDLE_ENV: str(bundle)}
            pid = await self.monitor.create(ContainerSpec(r.id, list(spec.process.args), env, log_path,
                                                          terminal=r.terminal))
            init = Proc("", r.stdin, r.stdout, r.stderr, r.terminal, pid=pid)
            container = Container(r.id, r.bundle, init, env)
            self.containers[r.id] = container
        write_init_pid(bundle, pid)
        await self.publish("/tasks/create", events.TaskCreate(
            container_id=r.id, bundle=r.bundle, rootfs=r.rootfs, checkpoint=r.checkpoint, pid=pid,
            io=events.TaskIO(stdin=r.stdin, stdout=r.stdout, stderr=r.stderr, terminal=r.terminal)))
        self._spawn(self._watch_init(container))
        return api.CreateTaskResponse(pid=pid)

    async def _watch_init(self, c: Container) -> None:
        status = await asyncio.shield(self.monitor.get(c.id).exited)
        # handleInitExit: the init exit is published last, after every running exec's.
        for proc in list(c.execs.values()):
            if proc.status == types.RUNNING:
                await proc.done.wait()
        c.init.status, c.init.exit_status, c.init.exited_ns = types.STOPPED, status.code, status.finished_at
        c.init.done.set()
        await self.publish("/tasks/exit", events.TaskExit(
            container_id=c.id, id=c.id, pid=c.init.pid, exit_status=status.code, exited_at=_stamp(status.finished_at)))

    async def start(self, ctx: CallContext, r: api.StartRequest) -> api.StartResponse:
        c = self.get(r.id)
        if not r.exec_id:
            if c.init.status != types.CREATED:
                raise FailedPrecondition(f"container {r.id} is not in created state")
            await self.monitor.start(r.id)
            c.init.status = types.RUNNING
            await self.publish("/tasks/start", events.TaskStart(container_id=r.id, pid=c.init.pid))
            return api.StartResponse(pid=c.init.pid)
        proc = c.process(r.exec_id)
        if c.init.done.is_set() or c.init.status != types.RUNNING:
            raise FailedPrecondition(f"container {r.id} init process is not running")
        if proc.status != types.CREATED or proc.spec is None:
            raise FailedPrecondition(f"process {r.exec_id} was already started")
        spec, proc.spec = proc.spec, None
        proc.status = types.RUNNING
        env = {**spec.env, **_runc_env(ctx)}
        await self.publish("/tasks/exec-started", events.TaskExecStarted(
            container_id=r.id, exec_id=r.exec_id, pid=proc.pid))
        proc.runner = self._spawn(self._run_exec(c, proc, spec, env))
        return api.StartResponse(pid=proc.pid)

    async def _run_exec(self, c: Container, proc: Proc, spec: ProcessSpec, env: dict[str, str]) -> None:
        try:
            result = await self.monitor.exec(c.id, list(spec.args), env, EXEC_WAIT_S)
            code, out, err = result.exit_code, result.stdout, result.stderr
        except asyncio.CancelledError:
            if not proc.killed_by:
                raise  # the shim is closing
            code, out, err = 128 + proc.killed_by, b"", b""  # killed by a signal, as runc reports it
        except (TtrpcError, OSError, ValueError) as failure:
            code, out, err = 126, b"", f"{failure}\n".encode()
        except Exception as failure:  # noqa: BLE001 - the monitor's own errors (NotFound, ...) end the exec too
            code, out, err = 126, b"", f"{failure}\n".encode()
        for uri, data in ((proc.stdout, out), (proc.stderr, err)):
            try:
                path = uri_path(uri)
                if path is not None:
                    await asyncio.to_thread(path.write_bytes, data[:MAX_EXEC_OUTPUT_FILE])
            except (OSError, InvalidArgument) as failure:
                log.warning("exec %s of %s: cannot write its output to %s: %s", proc.exec_id, c.id, uri, failure)
        proc.status, proc.exit_status, proc.exited_ns = types.STOPPED, max(code, 0), time.time_ns()
        proc.done.set()
        await self.publish("/tasks/exit", events.TaskExit(
            container_id=c.id, id=proc.exec_id, pid=proc.pid, exit_status=proc.exit_status,
            exited_at=_stamp(proc.exited_ns)))

    async def exec(self, ctx: CallContext, r: api.ExecProcessRequest) -> empty_pb2.Empty:
        c = self.get(r.id)
        if not r.exec_id:
            raise InvalidArgument("exec id is required")
        if r.exec_id in c.execs:
            raise AlreadyExists(f"id {r.exec_id}")
        spec = process_spec(load_json(r.spec.value, f"exec {r.exec_id} spec"), f"exec {r.exec_id} spec")
        if not spec.args:
            raise InvalidArgument(f"exec {r.exec_id}: args must not be empty")
        for uri in (r.stdout, r.stderr):
            uri_path(uri)  # refuse an unsupported URI now, not when the exec ends
        c.execs[r.exec_id] = Proc(r.exec_id, r.stdin, r.stdout, r.stderr, r.terminal, spec=spec)
        await self.publish("/tasks/exec-added", events.TaskExecAdded(container_id=r.id, exec_id=r.exec_id))
        return empty_pb2.Empty()

    async def state(self, ctx: CallContext, r: api.StateRequest) -> api.StateResponse:
        c = self.get(r.id)
        p = c.process(r.exec_id)
        return api.StateResponse(id=p.exec_id or c.id, bundle=c.bundle, pid=p.pid, status=p.status,
                                 stdin=p.stdin, stdout=p.stdout, stderr=p.stderr, terminal=p.terminal,
                                 exit_status=p.exit_status, exited_at=_stamp(p.exited_ns))

    async def wait(self, ctx: CallContext, r: api.WaitRequest) -> api.WaitResponse:
        p = self.get(r.id).process(r.exec_id)
        await p.done.wait()
        return api.WaitResponse(exit_status=p.exit_status, exited_at=_stamp(p.exited_ns))

    async def kill(self, ctx: CallContext, r: api.KillRequest) -> empty_pb2.Empty:
        c = self.get(r.id)
        p = c.process(r.exec_id)
        if p.done.is_set():
            raise NotFound("process already finished")
        if r.exec_id:
            # The monitor's exec runs to its end unless its run is cancelled, which kills it.
            if p.runner is not None and not p.runner.done():
                p.killed_by = r.signal or signal.SIGKILL
                p.runner.cancel()
            return empty_pb2.Empty()
        sig = r.signal or signal.SIGTERM
        # runc kill only sends the signal: a stop waiting a day for the exit does the same, from its own task.
        self._spawn(self._signal(r.id, sig))
        return empty_pb2.Empty()

    async def _signal(self, cid: str, sig: int) -> None:
        try:
            await self.monitor.stop(cid, KILL_GRACE_S, sig)
        except NotFound:
            pass

    async def delete(self, ctx: CallContext, r: api.DeleteRequest) -> api.DeleteResponse:
        c = self.get(r.id)
        p = c.process(r.exec_id)
        if r.exec_id:
            if p.status == types.RUNNING:
                raise FailedPrecondition(f"cannot delete a running process {r.exec_id}")
            del c.execs[r.exec_id]
            return api.DeleteResponse(pid=p.pid, exit_status=p.exit_status, exited_at=_stamp(p.exited_ns))
        if p.status == types.RUNNING:
            raise FailedPrecondition(f"cannot delete running task {r.id}")
        if not p.done.is_set():  # created, never started: runc delete kills it
            await self.monitor.stop(r.id, 0, signal.SIGKILL)
            await p.done.wait()
        async with self._mu:
            self.containers.pop(r.id, None)
        await self.monitor.forget(r.id)
        await self.publish("/tasks/delete", events.TaskDelete(
            container_id=r.id, pid=p.pid, exit_status=p.exit_status, exited_at=_stamp(p.exited_ns)))
        return api.DeleteResponse(pid=p.pid, exit_status=p.exit_status, exited_at=_stamp(p.exited_ns))

    # -- information

    async def pids(self, ctx: CallContext, r: api.PidsRequest) -> api.PidsResponse:
        c = self.get(r.id)
        procs = [types.ProcessInfo(pid=c.init.pid)] if not c.init.done.is_set() else []
        return api.PidsResponse(processes=procs)

    async def stats(self, ctx: CallContext, r: api.StatsRequest) -> api.StatsResponse:
        self.get(r.id)
        return api.StatsResponse(stats=any_pb2.Any(type_url=STATS_TYPE_URL, value=b""))

    async def connect(self, ctx: CallContext, r: api.ConnectRequest) -> api.ConnectResponse:
        c = self.containers.get(r.id)
        return api.ConnectResponse(shim_pid=os.getpid(), task_pid=c.init.pid if c else 0)

    async def update(self, ctx: CallContext, r: api.UpdateTaskRequest) -> empty_pb2.Empty:
        """Resources are accepted (no cgroup to change). The annotation REOPEN_LOG asks the monitor to reopen the
        container's CRI log, which this shim writes in containerd's place (fake-containerd's ReopenContainerLog)."""
        self.get(r.id)
        if REOPEN_LOG in r.annotations:
            self.monitor.reopen_log(r.id)
        return empty_pb2.Empty()

    async def accept(self, ctx: CallContext, r: Message) -> empty_pb2.Empty:
        self.get(r.id)  # type: ignore[attr-defined]
        return empty_pb2.Empty()

    @staticmethod
    def unsupported(what: str) -> Callable[[CallContext, Message], Awaitable[empty_pb2.Empty]]:
        async def refuse(ctx: CallContext, r: Message) -> empty_pb2.Empty:
            raise TtrpcError(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not supported by cristack's shim")
        return refuse

    async def shutdown_call(self, ctx: CallContext, r: api.ShutdownRequest) -> empty_pb2.Empty:
        async with self._mu:
            if self.containers:  # the shim still serves its pod's other containers
                return empty_pb2.Empty()
        self.shutdown()
        return empty_pb2.Empty()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _runc_env(ctx: CallContext) -> dict[str, str]:
    env = ctx.values.get(RUNC_ENV_KEY)
    return dict(env) if isinstance(env, dict) else {}
