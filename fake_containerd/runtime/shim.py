"""The shim manager and a shim's task API (core/runtime/v2 shim_manager.go, binary.go, shim.go, bundle.go of
containerd v2.4.2).

- A pod's first task (its sandbox) starts the shim: the runtime's shim binary is run with the real start
  protocol (``-namespace NS -address GRPC -publish-binary BIN -id ID [-debug] start`` in the bundle directory,
  ``TTRPC_ADDRESS``/``GRPC_ADDRESS``/``NAMESPACE`` in its environment, a serialized BootstrapParams on stdin, a
  serialized BootstrapResult, JSON or a plain address on stdout), then connected over ttrpc. The log line
  ``connecting to shim <id>`` carries ``namespace`` only here (startShim adds it to the logger).
- The pod's other tasks do not run the binary (ShimManager.Start with a sandbox id): they reuse the sandbox's
  bootstrap result and open a connection of their own to the same shim.
- Every call to a shim is a ttrpc call with otelttrpc's CLIENT span (cristack.otel.ttrpctrace), the trace
  context in the request's metadata. ``Shutdown`` ignores "ttrpc: closed" (the shim exiting while it answers),
  as shimTask.Shutdown does; the span still records it.

"No host binaries": the only shim is cristack's own (fake_containerd/shim, run with this interpreter);
``runtime_type`` is checked when the config loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError, Message
from opentelemetry import trace

from cristack.files import write_atomic
from cristack.lifeline import LIFELINE_ENV
from cristack.otel.ttrpctrace import client_interceptor
from cristack.pyexec import module_argv
from cristack.wire.errors import FailedPrecondition, Internal, NotFound, Unavailable
from cristack.wire.pb.containerd.runtime.bootstrap.v1 import bootstrap_pb2
from cristack.wire.pb.containerd.runtime.task.v3 import shim_pb2 as api
from cristack.wire.ttrpc import Client, Closed, TtrpcError

log = logging.getLogger(__name__)

SHIM_MODULE = "fake_containerd.shim.main"  # containerd-shim-runc-v2
TASK_SERVICE = "containerd.task.v3.Task"
CURRENT_SHIM_VERSION = 3
START_TIMEOUT_S = 30.0
MAX_START_OUTPUT = 1 << 20
SHIM_TRACING_ENV = "CRISTACK_SHIM_TRACING"  # "0": the release build's silence (fake_containerd/shim/daemon.py)
R = TypeVar("R", bound=Message)
NAMESPACE_MD = {"containerd-namespace-ttrpc": "k8s.io"}


class ShimError(Exception):
    """A shim could not be started or reached; the message says why."""


def parse_start_response(out: bytes) -> bootstrap_pb2.BootstrapResult:
    """shim.go parseStartResponse: a serialized BootstrapResult, else JSON, else a plain ttrpc address."""
    result = bootstrap_pb2.BootstrapResult()
    try:
        result.ParseFromString(out)
        if result.address:
            return result
    except DecodeError:
        pass
    text = out.strip().decode(errors="replace")
    try:
        doc = json.loads(text)
        if isinstance(doc, dict) and int(doc.get("version", 0)) >= 2:
            result = bootstrap_pb2.BootstrapResult(version=int(doc["version"]), address=str(doc.get("address", "")),
                                                   protocol=str(doc.get("protocol", "ttrpc")))
        else:
            raise ValueError
    except (ValueError, TypeError):
        result = bootstrap_pb2.BootstrapResult(version=2, address=text, protocol="ttrpc")
    if result.version > CURRENT_SHIM_VERSION:
        raise ShimError(f"unsupported shim version ({result.version}): not implemented")
    return result


@dataclass
class ShimTask:
    """One task's connection to its pod's shim (shimTask in shim.go): the task API calls it makes."""

    id: str
    bundle: Path
    client: Client
    bootstrap: bootstrap_pb2.BootstrapResult
    sandbox_id: str = ""
    shim_pid: int = 0  # from Connect: the shim process serving this task
    forgotten: bool = False  # deleted and its connection closed by us (ShimManager.forget)

    async def _call(self, method: str, request: Message, response_type: type[R]) -> R:
        try:
            # namespaces.WithNamespace: the namespace travels in every call's ttrpc metadata.
            return await self.client.call(TASK_SERVICE, method, request, response_type, metadata=NAMESPACE_MD)
        except Closed:
            if self.forgotten:
                # Deleted meanwhile (the exit handler's Delete raced this call): the tasks service finds no such
                # task, as local.getTask answers, which callers such as StopContainer take as "already gone".
                raise NotFound(f"task {self.id} not found") from None
            raise Unavailable(f"ttrpc: closed: shim of {self.id} is gone") from None
        except TtrpcError as err:
            raise _native(err) from None

    async def create(self, request: api.CreateTaskRequest) -> api.CreateTaskResponse:
        return await self._call("Create", request, api.CreateTaskResponse)

    async def start(self, exec_id: str = "") -> api.StartResponse:
        return await self._call("Start", api.StartRequest(id=self.id, exec_id=exec_id), api.StartResponse)

    async def state(self, exec_id: str = "") -> api.StateResponse:
        return await self._call("State", api.StateRequest(id=self.id, exec_id=exec_id), api.StateResponse)

    async def kill(self, signal: int, all_: bool = False, exec_id: str = "") -> None:
        await self._call("Kill", api.KillRequest(id=self.id, exec_id=exec_id, signal=signal, all=all_),
                         empty_pb2.Empty)

    async def pid(self) -> int:
        """shimTask.PID: the task's pid, asked with Connect (which also names the shim's own pid)."""
        resp = await self._call("Connect", api.ConnectRequest(id=self.id), api.ConnectResponse)
        self.shim_pid = resp.shim_pid
        return resp.task_pid

    async def wait(self, exec_id: str = "") -> api.WaitResponse:
        return await self._call("Wait", api.WaitRequest(id=self.id, exec_id=exec_id), api.WaitResponse)

    async def exec(self, request: api.ExecProcessRequest) -> None:
        await self._call("Exec", request, empty_pb2.Empty)

    async def delete(self, exec_id: str = "") -> api.DeleteResponse:
        return await self._call("Delete", api.DeleteRequest(id=self.id, exec_id=exec_id), api.DeleteResponse)

    async def update(self, annotations: dict[str, str]) -> None:
        await self._call("Update", api.UpdateTaskRequest(id=self.id, annotations=annotations), empty_pb2.Empty)

    async def stats(self) -> api.StatsResponse:
        return await self._call("Stats", api.StatsRequest(id=self.id), api.StatsResponse)

    async def shutdown(self) -> None:
        """shimTask.Shutdown: a shim that exits while answering closes the connection; that is no error."""
        with contextlib.suppress(Unavailable):
            await self._call("Shutdown", api.ShutdownRequest(id=self.id), empty_pb2.Empty)

    async def close(self) -> None:
        self.forgotten = True
        await self.client.close()


def _native(err: TtrpcError) -> Exception:
    """errgrpc.ToNative for the codes the CRI plugin tells apart."""
    kinds = {grpc.StatusCode.NOT_FOUND: NotFound, grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
             grpc.StatusCode.UNAVAILABLE: Unavailable}
    return kinds.get(err.code, Internal)(err.message)


@dataclass
class ShimManager:
    """Starts shims and connects tasks to them (ShimManager, binary, shim in core/runtime/v2)."""

    grpc_address: str
    ttrpc_address: str
    state_dir: Path  # <state>/io.containerd.runtime.v2.task
    socket_dir: Path  # where shims bind their sockets (upstream: /run/containerd/s)
    namespace: str = "k8s.io"
    debug: bool = False
    shim_tracing: bool = True
    env: Mapping[str, str] = field(default_factory=dict)  # containerd's environment (OTEL_* inherited)
    provider: trace.TracerProvider = field(default_factory=trace.NoOpTracerProvider)
    lifeline: int | None = None  # the read end of this daemon's lifeline, handed to every shim (mock-only)
    tasks: dict[str, ShimTask] = field(default_factory=dict)

    def bundle(self, task_id: str) -> Path:
        """bundle.go NewBundle: ``<state>/io.containerd.runtime.v2.task/<ns>/<id>``."""
        return self.state_dir / self.namespace / task_id

    def _command(self, task_id: str) -> list[str]:
        args = ["-namespace", self.namespace, "-address", self.grpc_address, "-publish-binary", "fake-containerd",
                "-id", task_id]
        if self.debug:
            args.append("-debug")
        return module_argv(SHIM_MODULE, *args, "start")

    def _shim_env(self) -> dict[str, str]:
        env = {**self.env, "GOMAXPROCS": "2", "MAX_SHIM_VERSION": "2", "TTRPC_ADDRESS": self.ttrpc_address,
               "GRPC_ADDRESS": self.grpc_address, "NAMESPACE": self.namespace}
        if not self.shim_tracing:
            env[SHIM_TRACING_ENV] = "0"
        if self.lifeline is not None:
            env[LIFELINE_ENV] = str(self.lifeline)
        return env

    async def _run_start(self, task_id: str, bundle: Path, options: Message | None) -> bootstrap_pb2.BootstrapResult:
        """binary.go Start: the shim binary's ``start`` action, BootstrapParams in, BootstrapResult out."""
        params = bootstrap_pb2.BootstrapParams(
            instance_id=task_id, namespace=self.namespace, containerd_grpc_address=self.grpc_address,
            containerd_ttrpc_address=self.ttrpc_address, containerd_binary="fake-containerd",
            containerd_version="v2.4.2", socket_dir=str(self.socket_dir),
            log_level=bootstrap_pb2.LOG_LEVEL_DEBUG if self.debug else bootstrap_pb2.LOG_LEVEL_INFO)
        if options is not None:
            params.extensions.add().value.Pack(options)
        proc = await asyncio.create_subprocess_exec(
            *self._command(task_id), cwd=bundle, env=self._shim_env(), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
            pass_fds=() if self.lifeline is None else (self.lifeline,))
        try:
            out, err = await asyncio.wait_for(proc.communicate(params.SerializeToString()), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise ShimError(f"start failed: the shim did not answer within {START_TIMEOUT_S:.0f}s") from None
        if proc.returncode != 0:
            text = (out + err)[-2000:].decode(errors="replace").strip()
            raise ShimError(f"start failed: {text or f'shim exited with status {proc.returncode}'}")
        return parse_start_response(out[:MAX_START_OUTPUT])

    async def _connect(self, task_id: str, bundle: Path, result: bootstrap_pb2.BootstrapResult, sandbox_id: str,
                       *, started: bool) -> ShimTask:
        """makeConnection: ``connecting to shim <id>``, then a ttrpc connection of this task's own."""
        fields: dict[str, object] = {"address": result.address, "protocol": result.protocol or "ttrpc",
                                     "version": int(result.version)}
        if started:
            fields = {"namespace": self.namespace, **fields}
        log.info("connecting to shim %s", task_id, extra={"fields": fields})
        if (result.protocol or "ttrpc") != "ttrpc":
            raise ShimError(f"unexpected protocol: {result.protocol!r}")

        def gone() -> None:
            log.info("shim disconnected", extra={"fields": {"id": task_id}})

        try:
            client = await Client.connect(result.address, interceptor=client_interceptor(self.provider),
                                          on_close=gone)
        except (OSError, asyncio.TimeoutError) as err:
            raise ShimError(f"failed to connect to shim {task_id} at {result.address}: {err}") from None
        task = ShimTask(task_id, bundle, client, result, sandbox_id)
        self.tasks[task_id] = task
        return task

    async def start(self, task_id: str, sandbox_id: str = "", options: Message | None = None) -> ShimTask:
        """ShimManager.Start: the sandbox starts the pod's shim; a container of it connects to the same one."""
        bundle = self.bundle(task_id)
        if sandbox_id and sandbox_id != task_id:
            owner = self.tasks.get(sandbox_id)
            if owner is None:
                raise NotFound(f"can't find shim for sandbox {sandbox_id}: not found")
            (bundle / "sandbox").write_text(sandbox_id)
            (bundle / "bootstrap.json").write_text(_bootstrap_json(owner.bootstrap))
            return await self._connect(task_id, bundle, owner.bootstrap, sandbox_id, started=False)
        try:
            result = await self._run_start(task_id, bundle, options)
        except OSError as err:
            raise ShimError(f"start failed: {err}") from None
        (bundle / "bootstrap.json").write_text(_bootstrap_json(result))
        return await self._connect(task_id, bundle, result, sandbox_id, started=True)

    def shim_pids(self) -> set[int]:
        """The shim processes serving this daemon's tasks now (each pod's shim answers its tasks' Connect)."""
        return {t.shim_pid for t in self.tasks.values() if t.shim_pid}

    def get(self, task_id: str) -> ShimTask:
        task = self.tasks.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        return task

    async def forget(self, task_id: str) -> None:
        """After Delete and Shutdown: the task's connection closes and its record goes."""
        task = self.tasks.pop(task_id, None)
        if task is not None:
            await task.close()

    async def close(self) -> None:
        await asyncio.gather(*(t.close() for t in list(self.tasks.values())), return_exceptions=True)
        self.tasks.clear()


def _bootstrap_json(result: bootstrap_pb2.BootstrapResult) -> str:
    """writeBootstrapParams: the bundle's bootstrap.json (what a restarted containerd reconnects with)."""
    return json.dumps({"version": result.version, "address": result.address, "protocol": result.protocol})


def prepare_bundle(manager: ShimManager, task_id: str, spec: dict) -> Path:
    """bundle.go NewBundle: the task's directory (private) with its OCI spec as config.json."""
    bundle = manager.bundle(task_id)
    bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(bundle / "config.json", json.dumps(spec).encode(), mode=0o600)
    return bundle


def remove_bundle(manager: ShimManager, task_id: str) -> None:
    shutil.rmtree(manager.bundle(task_id), ignore_errors=True)

