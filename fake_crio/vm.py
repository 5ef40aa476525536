"""Runtime type "vm": a Kata-style handler. Each sandbox gets its own agent process (the "VM",
``cristack.kata.agent``) which runs the sandbox's containers; fake-crio talks to it over the
same container API it uses for fake-conmon. The host side of the runtime traces as service
``kata-runtime`` (OTLP, to crio's tracing endpoint); the agent traces as ``kata-agent`` through
frames to the trace forwarder. What is traced comes from the handler's Kata
``configuration.toml`` (``[runtime] enable_tracing``, ``[agent.kata] enable_tracing``), read
when a sandbox starts: a change applies to sandboxes started after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from cristack.endpoints import parse_endpoint
from cristack.errors import ConfigError, FailedPrecondition, Unavailable
from cristack.procs import serving
from cristack.rpctrace import inject
from cristack.supervise import ExecResult
from cristack.telemetry import Telemetry, TracingSettings
from cristack.tomlconf import read_toml
from fake_crio.runtimes import PodRuntime
from fake_crio.state import ContainerRecord, SandboxRecord

log = logging.getLogger(__name__)

AGENT_START_TIMEOUT_S = 15.0
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class KataConfig:
    runtime_tracing: bool = False
    agent_tracing: bool = False
    trace_forwarder: str = ""

    @staticmethod
    def load(path: Path | None) -> KataConfig:
        if path is None:
            return KataConfig()
        doc = read_toml(path)
        runtime = doc.get("runtime", {}).get("enable_tracing", False)
        agent = doc.get("agent", {}).get("kata", {}).get("enable_tracing", False)
        forwarder = doc.get("cristack", {}).get("trace_forwarder", "")
        for key, value in (("runtime.enable_tracing", runtime), ("agent.kata.enable_tracing", agent)):
            if not isinstance(value, bool):
                raise ConfigError(str(path), key, f"expected bool, got {value!r}")
        if not isinstance(forwarder, str):
            raise ConfigError(str(path), "cristack.trace_forwarder", "expected a string")
        return KataConfig(runtime, agent, forwarder)


class _RuntimeClientTracing:
    """The runtime's side of each agent call: a ``sendReq`` CLIENT span (service kata-runtime),
    whose context rides in the request's metadata to the agent."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    @contextlib.contextmanager
    def client(self, method: str) -> Iterator[dict[str, str]]:
        with self.tracer.start_as_current_span("sendReq", kind=SpanKind.CLIENT,
                                               attributes={"request": f"{method}Request"}):
            yield inject()


@dataclass
class _Vm:
    proc: asyncio.subprocess.Process
    client: PodRuntime
    tracer: trace.Tracer
    dir: Path
    socket_dir: Path | None = None


class VmRuntime:
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
            self._telemetry = Telemetry("kata-runtime", TracingSettings(True, self.otlp_endpoint, 1_000_000))
        return self._telemetry.tracer("kata-runtime")

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
        with tracer.start_as_current_span("CreateSandbox", attributes={"sandbox_id": sb.id}):
            vm_dir = self.runroot / sb.id[:12]
            vm_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            sock = vm_dir / "agent.sock"
            if len(str(sock)) > MAX_SOCKET_PATH:
                # Unix socket paths are short; a deep runroot gets a private dir in /tmp instead.
                sock = Path(tempfile.mkdtemp(prefix="cristack-vm-")) / "agent.sock"
            with tracer.start_as_current_span("StartVM"):
                argv = [sys.executable, "-m", "cristack.kata.agent", "--listen", f"unix://{sock}",
                        "--runtime-dir", str(vm_dir)]
                if cfg.agent_tracing and cfg.trace_forwarder:
                    argv += ["--enable-tracing", "--trace-socket", cfg.trace_forwarder]
                env = {k: v for k, v in os.environ.items() if k.startswith(("PYTHON", "PATH", "HOME", "LANG"))}
                env["TRACEPARENT"] = inject().get("traceparent", "")
                proc = await asyncio.create_subprocess_exec(*argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                            stdout=asyncio.subprocess.DEVNULL,
                                                            stderr=(vm_dir / "agent.log").open("ab"))
                deadline = asyncio.get_running_loop().time() + AGENT_START_TIMEOUT_S
                while not serving(parse_endpoint(str(sock))):
                    if proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()
                        raise Unavailable(f"the VM agent for sandbox {sb.id[:13]} did not start")
                    await asyncio.sleep(0.02)
            client = PodRuntime(self.name, f"unix://{sock}", _RuntimeClientTracing(tracer), self.max_log_bytes)
            self.vms[sb.id] = _Vm(proc, client, tracer, vm_dir, sock.parent if sock.parent != vm_dir else None)
            await client.create_sandbox(sb)

    async def create_container(self, c: ContainerRecord, sb: SandboxRecord, exit_path: Path) -> int:
        vm = self._vm(c)
        with vm.tracer.start_as_current_span("CreateContainer", attributes={"container_id": c.id}):
            return await vm.client.create_container(c, sb, exit_path)

    async def start_container(self, c: ContainerRecord) -> int:
        vm = self._vm(c)
        with vm.tracer.start_as_current_span("StartContainer", attributes={"container_id": c.id}):
            return await vm.client.start_container(c)

    async def stop_container(self, c: ContainerRecord, timeout: int) -> None:
        vm = self.vms.get(c.sandbox_id)
        if vm is not None:
            with vm.tracer.start_as_current_span("StopContainer", attributes={"container_id": c.id}):
                await vm.client.stop_container(c, timeout)

    async def exec_sync(self, c: ContainerRecord, argv: list[str], timeout: int) -> ExecResult:
        vm = self._vm(c)
        with vm.tracer.start_as_current_span("ExecSync", attributes={"container_id": c.id}):
            return await vm.client.exec_sync(c, argv, timeout)

    async def reopen_log(self, c: ContainerRecord) -> None:
        await self._vm(c).client.reopen_log(c)

    async def remove_container(self, c: ContainerRecord) -> None:
        vm = self.vms.get(c.sandbox_id)
        if vm is not None:
            await vm.client.remove_container(c)

    async def lost(self, c: ContainerRecord) -> str:
        vm = self.vms.get(c.sandbox_id)
        if vm is None or vm.proc.returncode is not None:
            return "the sandbox's VM is gone"
        return ""

    async def stop_sandbox(self, sb: SandboxRecord) -> None:
        """StopVM: the agent ends its root span, flushes its frames and exits."""
        vm = self.vms.pop(sb.id, None)
        if vm is None:
            return
        with vm.tracer.start_as_current_span("StopSandbox", attributes={"sandbox_id": sb.id}):
            with vm.tracer.start_as_current_span("StopVM"):
                await vm.client.close()
                if vm.proc.returncode is None:
                    vm.proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(vm.proc.wait(), 5)
                    except asyncio.TimeoutError:
                        vm.proc.kill()
                        await vm.proc.wait()
        shutil.rmtree(vm.dir, ignore_errors=True)
        if vm.socket_dir is not None:
            shutil.rmtree(vm.socket_dir, ignore_errors=True)

    async def close(self) -> None:
        for sid in list(self.vms):
            vm = self.vms.pop(sid)
            await vm.client.close()
            if vm.proc.returncode is None:
                vm.proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(vm.proc.wait(), 3)
        if self._telemetry is not None:
            self._telemetry.shutdown()
