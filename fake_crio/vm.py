"""Runtime type "vm": a Kata-style handler. Each sandbox gets its own agent process (the "VM",
``fake_kata.main``) which runs the sandbox's containers; fake-crio talks to it over the
same container API it uses for fake-conmon.

The host side traces as Kata's containerd-shim-v2 does (``src/runtime/pkg/katautils/katatrace/tracing.go``):
service ``kata``, scope ``kata``, its own traces (CRI-O passes no trace context to the shim): one
``rootSpan`` per sandbox for the shim's life, under it the shim's task calls (``create``, ``Start``, ``Kill``,
``Exec``, ``Delete``, ``Shutdown``: ``pkg/containerd-shim-v2``), the agent steps of virtcontainers
(``createContainer``, ``StartVM``, ...: ``virtcontainers/kata_agent.go``) and the ``ttrpc.<Method>`` CLIENT
span of each agent call with ``RPC_CODE``/``RPC_MESSAGE`` (``virtcontainers/pkg/agent/protocols/client/
client.go``), whose context the agent's RPC spans take as parent. The agent traces as ``kata-agent`` through
frames to the trace forwarder. What is traced comes from the handler's Kata ``configuration.toml``
(``[runtime] enable_tracing``, ``[agent.kata] enable_tracing``), read when a sandbox starts: a change applies
to sandboxes started after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from cristack.config.tomlconf import read_toml
from cristack.containers.supervise import ExecResult
from cristack.lifeline import stop_child
from cristack.otel.rpctrace import inject
from cristack.otel.sampler import TracingSettings
from cristack.otel.telemetry import Telemetry
from cristack.pyexec import interpreter_env, module_argv
from cristack.wire.endpoints import accepts, parse_endpoint
from cristack.wire.errors import ConfigError, FailedPrecondition, RpcError, Unavailable
from fake_crio.runtimes import PodRuntime, Runtime
from fake_crio.state import ContainerRecord, SandboxRecord
from fake_crio.tracing import CrioTracing

log = logging.getLogger(__name__)

AGENT_START_TIMEOUT_S = 15.0
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class KataConfig:
    runtime_tracing: bool = False
    agent_tracing: bool = False
    trace_forwarder: str = ""
    agent_debug: bool = False  # [agent.kata] enable_debug: the agent logs at debug level


    @staticmethod
    def load(path: Path | None) -> KataConfig:
        if path is None:
            return KataConfig()
        doc = read_toml(path)
        runtime = doc.get("runtime", {}).get("enable_tracing", False)
        agent = doc.get("agent", {}).get("kata", {}).get("enable_tracing", False)
        debug = doc.get("agent", {}).get("kata", {}).get("enable_debug", False)
        forwarder = doc.get("cristack", {}).get("trace_forwarder", "")
        for key, value in (("runtime.enable_tracing", runtime), ("agent.kata.enable_tracing", agent),
                           ("agent.kata.enable_debug", debug)):
            if not isinstance(value, bool):
                raise ConfigError(str(path), key, f"expected bool, got {value!r}")
        if not isinstance(forwarder, str):
            raise ConfigError(str(path), "cristack.trace_forwarder", "expected a string")
        return KataConfig(runtime, agent, forwarder, debug)


SHIM_TAGS = {"source": "runtime", "package": "containerdshim"}  # containerd-shim-v2/service.go
AGENT_TAGS = {"source": "runtime", "package": "virtcontainers", "subsystem": "agent"}  # kata_agent.go
# The monitor API's calls, as the shim's ttrpc agent client names the same request.
TTRPC_METHODS = {"Version": "GetGuestDetails", "CreateNamespaces": "CreateSandbox",
                 "CreateContainer": "CreateContainer", "StartContainer": "StartContainer",
                 "StopContainer": "SignalProcess", "ExecSyncContainer": "ExecProcess"}


class _AgentClient(PodRuntime):
    """The shim's agent client: fake-conmon's container API to the agent, every call a ``ttrpc.<Method>``
    CLIENT span of the shim (none of CRI-O's own spans: its steps here are no-ops)."""

    def __init__(self, name: str, endpoint: str, shim: trace.Tracer, max_log_bytes: int) -> None:
        super().__init__(name, endpoint, CrioTracing(), max_log_bytes)
        self.shim = shim

    async def _call(self, what: str, fn, request, *, root: bool = False):  # noqa: ANN001 - any stub method
        return await self._ttrpc(what, fn, request)

    async def _untraced(self, what: str, fn, request):  # noqa: ANN001 - any stub method
        return await self._ttrpc(what, fn, request)

    async def _ttrpc(self, what: str, fn, request):  # noqa: ANN001 - any stub method
        method = TTRPC_METHODS.get(what, what)
        with self.shim.start_as_current_span(f"ttrpc.{method}", kind=SpanKind.CLIENT, record_exception=False,
                                             set_status_on_exception=False) as span:
            request.metadata.update(inject())
            request.metadata.update(self.metadata)
            try:
                response = await self._send(what, fn, request)
            except RpcError as err:
                span.set_attributes({"RPC_ERROR": True, "RPC_CODE": err.code.value[0], "RPC_MESSAGE": str(err)})
                raise
            span.set_attributes({"RPC_CODE": 0, "RPC_MESSAGE": ""})
            return response


@dataclass
class _Vm:
    proc: asyncio.subprocess.Process
    client: _AgentClient
    tracer: trace.Tracer
    root: trace.Span  # the shim's rootSpan: the sandbox's whole life
    dir: Path
    socket_dir: Path | None = None

    @contextlib.contextmanager
    def shim_call(self, name: str, step: str = "", **attrs: str) -> Iterator[None]:
        """A shim task call under the rootSpan, and in it the virtcontainers agent step ``step``."""
        with self.tracer.start_as_current_span(name, context=trace.set_span_in_context(self.root),
                                               attributes={**SHIM_TAGS, **attrs}):
            if not step:
                yield
                return
            with self.tracer.start_as_current_span(step, attributes=AGENT_TAGS):
                yield


class VmRuntime(Runtime):
    runtime_type = "vm"

    def __init__(self, name: str, config_path: str, runroot: Path, otlp_endpoint: str, otlp_enabled: bool,
                 max_log_bytes: int = 0) -> None:
        self.name = name
        self.config_path = Path(config_path) if config_path else None
        self.runroot = runroot / "vms"
        self.otlp_endpoint = otlp_endpoint
        self.otlp_enabled = otlp_enabled
        self.max_log_bytes = max_log_bytes
        self.vms: dict[str, _Vm] = {}
        self._telemetry: Telemetry | None = None

    def _tracer(self, cfg: KataConfig) -> trace.Tracer:
        if not (cfg.runtime_tracing and self.otlp_enabled):
            return trace.NoOpTracer()
        if self._telemetry is None:
            self._telemetry = Telemetry("kata", TracingSettings(True, self.otlp_endpoint, 1_000_000))
        return self._telemetry.tracer("kata")

    def _vm(self, c: ContainerRecord) -> _Vm:
        vm = self.vms.get(c.sandbox_id)
        if vm is None:
            raise FailedPrecondition(f"the VM of sandbox {c.sandbox_id[:13]} is not running")
        return vm

    async def create_sandbox(self, sb: SandboxRecord) -> None:
        try:
            cfg = KataConfig.load(self.config_path)
        except ConfigError as err:
            raise FailedPrecondition(f"runtime handler {self.name}: {err}") from None
        tracer = self._tracer(cfg)
        # The shim's traces are its own: its rootSpan has no parent (CRI-O passes no context to the shim).
        root = tracer.start_span("rootSpan", context=otel_context.Context(), attributes=SHIM_TAGS)
        vm_dir = self.runroot / sb.id[:12]
        vm_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        sock = vm_dir / "agent.sock"
        if len(str(sock)) > MAX_SOCKET_PATH:
            # Unix socket paths are short; a deep runroot gets a private dir in /tmp instead.
            sock = Path(tempfile.mkdtemp(prefix="cristack-vm-")) / "agent.sock"
        client = _AgentClient(self.name, f"unix://{sock}", tracer, self.max_log_bytes)
        vm = _Vm(None, client, tracer, root, vm_dir,  # type: ignore[arg-type] - the process comes next
                 sock.parent if sock.parent != vm_dir else None)
        try:
            with vm.shim_call("create", "createSandbox", sandbox_id=sb.id), \
                    tracer.start_as_current_span("StartVM", attributes=AGENT_TAGS):
                vm.proc = await self._boot(cfg, sock, vm_dir, sb)
                self.vms[sb.id] = vm
                await client.create_sandbox(sb)
        except BaseException:
            root.end()
            raise

    async def _boot(self, cfg: KataConfig, sock: Path, vm_dir: Path, sb: SandboxRecord) -> asyncio.subprocess.Process:
        """Starts the agent process (the VM) and waits until it serves."""
        argv = [*module_argv("fake_kata.main"), "--listen", f"unix://{sock}", "--runtime-dir",
                str(vm_dir)]
        if cfg.agent_tracing and cfg.trace_forwarder:
            argv += ["--enable-tracing", "--trace-socket", cfg.trace_forwarder]
        if cfg.agent_debug:
            argv += ["--log-level", "debug"]
        proc = await asyncio.create_subprocess_exec(*argv, env=interpreter_env(), stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=(vm_dir / "agent.log").open("ab"))
        deadline = asyncio.get_running_loop().time() + AGENT_START_TIMEOUT_S
        while not await accepts(parse_endpoint(str(sock))):
            if proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                raise Unavailable(f"the VM agent for sandbox {sb.id[:13]} did not start")
            await asyncio.sleep(0.02)
        return proc

    async def create_container(self, c: ContainerRecord, sb: SandboxRecord, exit_path: Path) -> int:
        vm = self._vm(c)
        with vm.shim_call("create", "createContainer", container_id=c.id):
            return await vm.client.create_container(c, sb, exit_path)

    async def start_container(self, c: ContainerRecord) -> int:
        vm = self._vm(c)
        with vm.shim_call("Start", "startContainer", container_id=c.id):
            return await vm.client.start_container(c)

    async def stop_container(self, c: ContainerRecord, timeout: int) -> None:
        vm = self.vms.get(c.sandbox_id)
        if vm is not None:
            with vm.shim_call("Kill", container_id=c.id):
                await vm.client.stop_container(c, timeout)

    async def exec_sync(self, c: ContainerRecord, argv: list[str], timeout: int) -> ExecResult:
        vm = self._vm(c)
        with vm.shim_call("Exec", "exec", container_id=c.id):
            return await vm.client.exec_sync(c, argv, timeout)

    async def reopen_log(self, c: ContainerRecord) -> None:
        await self._vm(c).client.reopen_log(c)

    async def remove_container(self, c: ContainerRecord) -> None:
        vm = self.vms.get(c.sandbox_id)
        if vm is not None:
            with vm.shim_call("Delete", "stopContainer", container_id=c.id):
                await vm.client.remove_container(c)

    async def lost(self, c: ContainerRecord) -> str:
        vm = self.vms.get(c.sandbox_id)
        if vm is None or vm.proc.returncode is not None:
            return "the sandbox's VM is gone"
        return ""

    async def stop_sandbox(self, sb: SandboxRecord) -> None:
        """The shim's Shutdown: stopSandbox in the VM, the agent ends its root span, flushes its frames and
        exits; then the shim's rootSpan ends."""
        vm = self.vms.pop(sb.id, None)
        if vm is None:
            return
        try:
            with vm.shim_call("Shutdown", "stopSandbox", sandbox_id=sb.id):
                await vm.client.close()
                await stop_child(vm.proc, 5)
        finally:
            vm.root.end()
        shutil.rmtree(vm.dir, ignore_errors=True)
        if vm.socket_dir is not None:
            shutil.rmtree(vm.socket_dir, ignore_errors=True)

    async def close(self) -> None:
        for sid in list(self.vms):
            vm = self.vms.pop(sid)
            vm.root.end()
            await vm.client.close()
            await stop_child(vm.proc, 3)
        if self._telemetry is not None:
            self._telemetry.shutdown()
