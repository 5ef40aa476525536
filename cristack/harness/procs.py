"""Starting and stopping our components as real processes (used by ``cristack demo``, the
pytest plugin and our own tests): wait until a socket serves, stop with SIGTERM, then SIGKILL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cristack.lifeline import PARENT_ENV, held_sigint, stop_process
from cristack.pyexec import python_argv
from cristack.wire.endpoints import Endpoint, serving


def component_argv(name: str, *args: str) -> list[str]:
    """The command line of a console script of ours, run with the current interpreter, so that
    it works from a virtualenv that is not on PATH."""
    modules = {"fake-crio": "fake_crio.main", "fake-conmon": "fake_conmon.main", "fake-kubelet": "fake_kubelet.main",
               "fake-containerd": "fake_containerd.main", "cristack": "cristack.harness.cli"}
    return python_argv("from cristack.lifeline import from_env; from_env(); "
                       f"from {modules[name]} import main; sys.argv[0] = {name!r}; main()", *args)


@dataclass
class Proc:
    """A running component with its log file."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    endpoint: Endpoint | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_serving(self, timeout: float = 15.0) -> None:
        """Waits until the endpoint accepts connections; raises with the log if the process died."""
        assert self.endpoint is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_text()}")
            if serving(self.endpoint):
                return
            time.sleep(0.02)
        raise TimeoutError(f"{self.name} did not serve on {self.endpoint} within {timeout}s:\n{self.log_text()}")

    def terminate(self) -> None:
        """SIGTERM, without waiting (``stop`` waits)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 5.0) -> float:
        """SIGTERM, then SIGKILL after ``timeout``; returns the seconds it took to exit."""
        start = time.monotonic()
        stop_process(self.popen, timeout)
        return time.monotonic() - start

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def start(name: str, args: Sequence[str], log_path: Path, *, endpoint: Endpoint | None = None,
          env: dict[str, str] | None = None, wait: bool = True) -> Proc:
    """Starts component ``name`` with ``args``, output to ``log_path``; waits until it serves.

    The component gets SIGTERM when the thread that started it exits (``cristack.lifeline``), so a
    ``cristack up`` killed outright (SIGKILL, a crash) takes its stack with it."""
    argv = component_argv(name, *args)
    if wait and endpoint is not None and serving(endpoint):
        # Another server answers there already: waiting for "serving" would find it and take the new process
        # (which refuses the live socket and exits) for a started one.
        raise RuntimeError(f"{name}: something already serves on {endpoint}; stop it first")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out, held_sigint():
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **(env or {}), PARENT_ENV: str(os.getpid())},
                                 start_new_session=True)
    proc = Proc(name, popen, log_path, endpoint, argv)
    if wait and endpoint is not None:
        try:
            proc.wait_serving()
        except Exception:
            proc.kill()
            raise
    return proc


T = TypeVar("T")
Cleanup = list[Callable[[], object]]


def run_with_cleanup(body: Callable[[Cleanup], T]) -> T:
    """``body(cleanup)``, where ``body`` appends what undoes each thing it starts; afterwards, whatever
    happened (an error, Ctrl-C, SIGTERM, a closed pipe), each is called, last first, and one that fails
    does not keep the others from running."""
    cleanup: Cleanup = []
    try:
        return body(cleanup)
    finally:
        for fn in reversed(cleanup):
            with contextlib.suppress(Exception):
                fn()


def stop_children(grace: float = 2.0) -> list[int]:
    """SIGTERM, then after ``grace`` seconds SIGKILL, every live child process of ours: the last line of a
    cleanup, for a component whose handle was lost (a signal between its start and its bookkeeping).
    Returns the pids it had to stop."""
    me = str(os.getpid())
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            pids.append(int(entry))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG) != (0, 0):
                    break
            except ChildProcessError:
                break
            time.sleep(0.02)
        else:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    return pids


def processes_under(under: Path, marker: str = "") -> list[int]:
    """Processes of ours (not this one) whose working directory lies under ``under`` and whose command line holds
    ``marker``: what a node left running in its base directory (a containerd shim works in its bundle)."""
    root = under.resolve()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(f"/proc/{entry}/cwd"))
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if marker.encode() in cmdline and cwd.is_relative_to(root) and _running(int(entry)):
            found.append(int(entry))
    return found


def stop_strays(under: Path, marker: str, grace: float = 10.0) -> list[int]:
    """Stops what outlived the component that started it (``processes_under(under, marker)``: a containerd shim,
    whose start command leaves it to PID 1): waits up to ``grace`` seconds for each to end by itself (a shim
    whose fake-containerd died ends through its lifeline, stopping its containers), then SIGKILLs the rest and
    whatever else still works under ``under`` (a killed shim's fork server, on its way out). Returns the pids
    found first."""
    found = processes_under(under, marker)
    deadline = time.monotonic() + grace
    while processes_under(under, marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(50):  # a few seconds at most: SIGKILL is not refused
        left = processes_under(under)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, which nobody of ours will reap, has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def find_tool(name: str) -> str | None:
    """A real tool (crictl, jaeger): ``.tools/bin`` of this checkout first, then PATH."""
    here = Path(__file__).resolve().parents[2] / ".tools" / "bin" / name
    if here.exists():
        return str(here)
    return shutil.which(name)
