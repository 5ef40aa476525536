"""Driving the real `docker compose` CLI against a real engine, for tests/e2e/test_compose_real.py: the user's
commands with a profile's arguments, what the engine holds (containers, networks, volumes), and how each
container stopped (the engine's own kill and die events)."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class ComposeError(AssertionError):
    """A docker or docker compose command failed; the message has its output."""


def docker(*args: str, timeout: float = 120, cwd: Path | None = None, check: bool = True) -> str:
    """A docker CLI command's stdout (stderr appended when it fails)."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise ComposeError(f"`docker {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout[-3000:]}"
                           f"\n{proc.stderr[-3000:]}")
    return proc.stdout


def engine_objects() -> dict[str, set[str]]:
    """Every container (running or not), network and volume the engine holds, by id or name."""
    return {"containers": set(docker("ps", "-aq").split()),
            "networks": set(docker("network", "ls", "-q").split()),
            "volumes": set(docker("volume", "ls", "-q").split())}


@dataclass
class Stopped:
    """How one container stopped during `down`: the signals the engine sent it and its exit code."""

    service: str
    signals: list[str] = field(default_factory=list)  # "15" SIGTERM from the stop, "9" SIGKILL after the timeout
    exit_code: str = ""
    told: int = 0  # ns: the first signal
    died: int = 0  # ns: the exit

    @property
    def seconds(self) -> float:
        """From the first signal to the exit."""
        return (self.died - self.told) / 1e9 if self.told and self.died else float("nan")

    @property
    def killed(self) -> bool:
        return "9" in self.signals or self.exit_code == "137"


@dataclass
class Down:
    seconds: float
    stopped: dict[str, Stopped]  # by container name


@dataclass
class Compose:
    """`docker compose <args> ...` in the repository, as a user types it (``args``: a profile's options)."""

    repo: Path
    args: tuple[str, ...] = ()

    def __call__(self, *cmd: str, timeout: float = 300, check: bool = True) -> str:
        return docker("compose", *self.args, *cmd, timeout=timeout, cwd=self.repo, check=check)

    @property
    def project(self) -> str:
        return json.loads(self("config", "--format", "json"))["name"]

    def containers(self) -> list[dict]:
        """`docker inspect` of the project's containers (all of them, running or not)."""
        ids = self("ps", "-aq").split()
        return json.loads(docker("inspect", *ids)) if ids else []

    def service_of(self, container: dict) -> str:
        return container["Config"]["Labels"].get("com.docker.compose.service", "")

    def logs(self, *services: str) -> str:
        return self("logs", "--no-color", "--no-log-prefix", *services, check=False)

    def exec(self, service: str, *cmd: str, timeout: float = 60) -> str:
        return self("exec", "-T", service, *cmd, timeout=timeout)

    def down(self, *extra: str) -> Down:
        """`docker compose down`, timed, with how each container stopped: the engine's kill events carry the
        signal, its die events the exit code."""
        project = self.project
        since = time.time()
        started = time.monotonic()
        self("down", *extra)
        took = time.monotonic() - started
        until = time.time() + 1  # the events' clock is the same host's; a second covers its rounding
        lines = docker("events", "--since", f"{since - 1:.3f}", "--until", f"{until:.3f}", "--filter",
                       "type=container", "--filter", f"label=com.docker.compose.project={project}",
                       "--format", "{{json .}}").splitlines()
        stopped: dict[str, Stopped] = {}
        for line in lines:
            ev = json.loads(line)
            attrs = ev.get("Actor", {}).get("Attributes", {})
            if ev.get("time", 0) < int(since) or ev.get("Action") not in ("kill", "die"):
                continue
            row = stopped.setdefault(attrs.get("name", "?"), Stopped(attrs.get("com.docker.compose.service", "?")))
            if ev["Action"] == "kill":
                row.signals.append(attrs.get("signal", ""))
                row.told = row.told or ev.get("timeNano", 0)
            else:
                row.exit_code = attrs.get("exitCode", "")
                row.died = ev.get("timeNano", 0)
        return Down(took, stopped)

