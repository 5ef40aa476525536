"""The in-process tier: fake-crio, fake-conmon and fake-kubelet inside the test process (tests/support/inprocess.py),
each on its own event loop and real unix socket, with an in-memory span exporter. The fixtures have the names
and the handles of tests/conftest.py's process fixtures (``crio``, ``any_crio``, ``conmon_socket``), so a CRI
behaviour test reads the same on either tier."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan

from tests.conftest import POD_RUNTIME_CONF, CriStubs, crio_argv, stack_options
from tests.support import inprocess


@dataclass
class InProcessConmon:
    dir: Path
    component: inprocess.Component
    socket: Path

    def spans(self) -> list[ReadableSpan]:
        return self.component.spans()


@dataclass
class InProcessCrio(CriStubs):
    """fake-crio in this process, with what a test needs to talk to it (as tests/conftest.py's CrioHandle)."""

    dir: Path
    component: inprocess.Component
    socket: Path
    logs_root: Path
    calls_file: Path
    args: list[str] = field(default_factory=list)
    channels: list[grpc.Channel] = field(default_factory=list)
    conmon: InProcessConmon | None = None

    def spans(self) -> list[ReadableSpan]:
        """crio's spans so far (and, with runtime type pod, none of conmon's: ``conmon.spans()``)."""
        return self.component.spans()

    def log_text(self) -> str:
        return self.component.log_text()

    def restart(self) -> None:
        """Stops fake-crio as SIGTERM would and starts a new one on the same state (a crash, SIGKILL, is the
        process tier's: tests/integration/test_crio_restarts.py)."""
        self.component.stop()
        self.component, self.socket = inprocess.start_crio(self.args, self.dir / "crio.log")

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
        try:
            self.component.stop()
        finally:
            if self.conmon is not None:
                self.conmon.component.stop()


def start_conmon(base: Path) -> InProcessConmon:
    """fake-conmon as tests/conftest.py's start_conmon runs it (no tracing)."""
    sock = base / "run" / "conmon.sock"
    component = inprocess.start_conmon(sock, base / "conmon", base / "conmon.log")
    return InProcessConmon(base, component, sock)


def start_crio(base: Path, *extra: str, config: Path | None = None, confine_logs: bool = True,
               conmon: InProcessConmon | None = None) -> InProcessCrio:
    """fake-crio in this process, with tests/conftest.py's test settings (``crio_argv``)."""
    args, _sock, logs_root, calls = crio_argv(base, *extra, config=config, confine_logs=confine_logs)
    try:
        component, socket = inprocess.start_crio(args, base / "crio.log")
    except BaseException:
        if conmon is not None:
            conmon.component.stop()
        raise
    return InProcessCrio(base, component, socket, logs_root, calls, args, conmon=conmon)


def start_pod_crio(base: Path, *extra: str) -> InProcessCrio:
    """fake-crio whose default runtime is type pod, through an in-process fake-conmon."""
    conmon = start_conmon(base)
    conf = base / "crio.conf"
    conf.write_text(POD_RUNTIME_CONF.format(socket=conmon.socket))
    return start_crio(base, *extra, config=conf, conmon=conmon)


@pytest.fixture
def crio(tmp_path: Path) -> Iterator[InProcessCrio]:
    """fake-crio with the default (oci) runtime handler, in this process."""
    handle = start_crio(tmp_path)
    yield handle
    handle.close()


@pytest.fixture(params=["oci", "pod"])
def any_crio(request, tmp_path: Path) -> Iterator[InProcessCrio]:
    """fake-crio once with runtime type oci and once with pod (through fake-conmon), both in this process."""
    handle = start_crio(tmp_path) if request.param == "oci" else start_pod_crio(tmp_path)
    yield handle
    handle.close()


@pytest.fixture
def make_stack(tmp_path: Path):
    """Builds a stack of the three components in this process (inprocess.InProcessStack) with the fast test
    settings; everything it started is stopped afterwards."""
    stacks: list[inprocess.InProcessStack] = []

    def make(**overrides) -> inprocess.InProcessStack:
        stack = inprocess.InProcessStack(tmp_path / f"stack{len(stacks)}", stack_options(**overrides))
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()
