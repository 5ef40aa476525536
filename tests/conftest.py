"""Shared fixtures: real fake-crio / fake-conmon processes on real unix sockets in tmp dirs; and the test tiers,
one marker per folder (docs/architecture.md, "Tests")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from cristack.harness.procs import Proc, find_tool, start
from cristack.wire.endpoints import parse_endpoint
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc

IN_CI = os.environ.get("CI", "").lower() == "true"

# A test's tier is the folder it lives in: `make test-fast` runs `-m "unit or component"` (on
# their two folders), `make test` all four.
TIERS = ("unit", "component", "integration", "e2e")
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            tier = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:  # a test outside tests/ (pytest run on another directory) has no tier of ours
            continue
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test belongs in one of tests/{{{','.join(TIERS)}}}/ "
                                    "(its folder is its tier)")
        item.add_marker(tier)


def require_tool(name: str) -> str:
    """The path of a real tool; a skip with the reason when absent, a failure under CI=true."""
    path = find_tool(name)
    if path is None:
        msg = f"{name} not found in .tools/bin or PATH; run `make tools` (needs Go)"
        if IN_CI:
            pytest.fail(f"CI=true: {msg}")
        pytest.skip(msg)
    return path


class CriStubs:
    """CRI stubs on channels to a fake-crio's ``socket``, each kept in ``channels`` to be closed with the handle
    (a process here, an in-process one in tests/component/conftest.py)."""

    socket: Path
    channels: list[grpc.Channel]

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def channel(self) -> grpc.Channel:
        ch = grpc.insecure_channel(self.endpoint)
        self.channels.append(ch)
        return ch

    def runtime(self) -> pbgrpc.RuntimeServiceStub:
        return pbgrpc.RuntimeServiceStub(self.channel())

    def images(self) -> pbgrpc.ImageServiceStub:
        return pbgrpc.ImageServiceStub(self.channel())


@dataclass
class CrioHandle(CriStubs):
    """A running fake-crio plus what a test needs to talk to it and to restart it."""

    dir: Path
    proc: Proc
    args: list[str]
    socket: Path
    logs_root: Path
    calls_file: Path
    channels: list[grpc.Channel] = field(default_factory=list)
    conmon: ConmonHandle | None = None

    def restart(self, *, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            self.proc.stop()
        self.proc = start("fake-crio", self.args, self.dir / "crio.log", endpoint=parse_endpoint(str(self.socket)))

    def close(self) -> None:
        """Stops fake-crio, then its fake-conmon when it has one."""
        for ch in self.channels:
            ch.close()
        self.proc.stop()
        if self.conmon is not None:
            self.conmon.proc.stop()


def crio_argv(base: Path, *extra: str, config: Path | None = None,
              confine_logs: bool = True) -> tuple[list[str], Path, Path, Path]:
    """The test settings of a fake-crio in ``base``: its command line, socket, pod logs root and calls file.
    ``confine_logs`` False leaves out --pod-logs-root (any absolute log_directory is then accepted, as CRI-O
    does)."""
    sock = base / "run" / "crio.sock"
    logs_root = base / "pods"
    calls = base / "calls.txt"
    args = ["--listen", f"unix://{sock}", "--root", str(base / "root"), "--runroot", str(base / "runroot"),
            *(["--pod-logs-root", str(logs_root)] if confine_logs else []),
            "--pull-latency-ms", "1", "--record-calls", str(calls), "--log-level", "debug", *extra]
    if config is not None:
        args += ["--config", str(config)]
    return args, sock, logs_root, calls


def start_crio(base: Path, *extra: str, config: Path | None = None, confine_logs: bool = True) -> CrioHandle:
    """fake-crio as a process in ``base`` (see ``crio_argv``)."""
    args, sock, logs_root, calls = crio_argv(base, *extra, config=config, confine_logs=confine_logs)
    proc = start("fake-crio", args, base / "crio.log", endpoint=parse_endpoint(str(sock)))
    return CrioHandle(base, proc, args, sock, logs_root, calls)


@pytest.fixture
def crio(tmp_path: Path) -> Iterator[CrioHandle]:
    """fake-crio with the default (oci) runtime handler."""
    handle = start_crio(tmp_path)
    yield handle
    handle.close()


@dataclass
class ContainerdHandle:
    """A running fake-containerd (its shims run beside it) and what a test needs to talk to it."""

    dir: Path
    proc: Proc
    socket: Path

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def log_text(self) -> str:
        return self.proc.log_text()

    def close(self) -> None:
        self.proc.stop()


CONTAINERD_CONF = "version = 4\nroot = '{base}/root'\nstate = '{base}/st'\n[debug]\nlevel = 'debug'\n" \
                  "[cristack]\npull_latency_ms = 1\n"


def start_containerd(base: Path, config: Path | None = None, *, otlp_endpoint: str | None = None,
                     env: dict[str, str] | None = None) -> ContainerdHandle:
    """fake-containerd in ``base`` (a default config there unless one is given), tracing through the OTEL_*
    environment to ``otlp_endpoint`` as containerd's recipe sets it; no stray OTEL_* of the caller's shell."""
    if config is None:
        base.mkdir(parents=True, exist_ok=True)
        config = base / "containerd.toml"
        config.write_text(CONTAINERD_CONF.format(base=base))
    socket = base / "st" / "containerd.sock"
    run_env = {k: "" for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                               "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "TRACEPARENT", "TRACESTATE")}
    run_env["OTEL_SDK_DISABLED"] = "false"
    if otlp_endpoint:
        run_env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{otlp_endpoint}", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                       OTEL_EXPORTER_OTLP_INSECURE="true", OTEL_TRACES_SAMPLER="traceidratio",
                       OTEL_TRACES_SAMPLER_ARG="1.0")
    run_env.update(env or {})
    proc = start("fake-containerd", ["--config", str(config)], base / "containerd.log",
                 endpoint=parse_endpoint(str(socket)), env=run_env)
    return ContainerdHandle(base, proc, socket)


def pod_config(name: str = "web", uid: str = "uid-1", namespace: str = "default", attempt: int = 0,
               labels: dict[str, str] | None = None) -> pb.PodSandboxConfig:
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=attempt),
        log_directory=f"{namespace}_{name}_{uid}", labels=labels or {"app": name})


def container_config(name: str = "main", image: str = "busybox", command: list[str] | None = None,
                     args: list[str] | None = None, labels: dict[str, str] | None = None) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=image),
        command=command or [], args=args or [], log_path=f"{name}/0.log", labels=labels or {"ctr": name},
        envs=[pb.KeyValue(key="GREETING", value="hi")])


@dataclass
class ConmonHandle:
    dir: Path
    proc: Proc
    args: list[str]
    socket: Path

    def restart(self) -> None:
        self.proc.kill()
        self.proc = start("fake-conmon", self.args, self.dir / "conmon.log", endpoint=parse_endpoint(str(self.socket)))


def start_conmon(base: Path, *extra: str) -> ConmonHandle:
    sock = base / "run" / "conmon.sock"
    args = ["--listen", f"unix://{sock}", "--runtime-dir", str(base / "conmon"), "--log-level", "debug", *extra]
    proc = start("fake-conmon", args, base / "conmon.log", endpoint=parse_endpoint(str(sock)))
    return ConmonHandle(base, proc, args, sock)


POD_RUNTIME_CONF = """
[crio.runtime]
default_runtime = "conmonrs"
[crio.runtime.runtimes.crun]
runtime_type = "oci"
[crio.runtime.runtimes.conmonrs]
runtime_type = "pod"
monitor_endpoint = "unix://{socket}"
"""


def start_pod_crio(base: Path, *extra: str, confine_logs: bool = True) -> CrioHandle:
    """fake-crio whose default runtime is type pod, through a fake-conmon process (``handle.conmon``; ``close``
    stops both)."""
    conmon = start_conmon(base)
    conf = base / "crio.conf"
    conf.write_text(POD_RUNTIME_CONF.format(socket=conmon.socket))
    try:
        handle = start_crio(base, *extra, config=conf, confine_logs=confine_logs)
    except BaseException:
        conmon.proc.stop()
        raise
    handle.conmon = conmon
    return handle


@pytest.fixture(params=["oci", "pod"])
def any_crio(request, tmp_path: Path) -> Iterator[CrioHandle]:
    """fake-crio once with runtime type oci and once with pod (through a real fake-conmon)."""
    handle = start_crio(tmp_path) if request.param == "oci" else start_pod_crio(tmp_path)
    yield handle
    handle.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_options(**overrides):  # noqa: ANN201 - a StackOptions
    """The fast test settings of a stack, with ``overrides``."""
    from cristack.harness.stack import StackOptions

    opts = StackOptions(relist_period="0.1s", backoff_base="0.3s", gc_period="0.3s",
                        file_check_frequency="0.1s", record_calls=True, pull_latency_ms=1, log_level="debug")
    opts.kubelet_config = {"readOnlyPort": free_port()}
    for k, v in overrides.items():
        setattr(opts, k, v)
    return opts


@pytest.fixture
def make_stack(tmp_path: Path):
    """Builds a Stack with fast test settings; everything it started is stopped afterwards."""
    from cristack.harness.stack import Stack

    stacks = []

    def make(**overrides) -> Stack:
        stack = Stack(tmp_path / f"stack{len(stacks)}", stack_options(**overrides))
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture
def sink():
    """The embedded OTLP sink on free loopback ports."""
    from cristack.harness.sink.receiver import Sink

    s = Sink()
    s.start()
    yield s
    s.stop()
