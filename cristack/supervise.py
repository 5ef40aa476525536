"""Container process supervision, shared by fake-conmon (runtime type "pod") and fake-crio
(runtime type "oci", where CRI-O would run the process without a monitor of its own).

A container is a real child process running one of our built-in applets (never a host
binary). Like ``runc create`` it is spawned *held*: the child blocks on a pipe until
``start()`` releases it, so CreateContainer and StartContainer stay two steps. While it
runs, ``read_loop`` copies its stdout/stderr from real pipes into the CRI log file, and
``wait_for_exit_code`` records the exit and writes it to the exit files, as conmon-rs does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cristack.applets import HOLD_FD_ENV, PARENT_ENV, child_argv, resolve
from cristack.crilog import CriLogWriter
from cristack.files import write_atomic
from cristack.zygote import Zygote, ZygoteGone

log = logging.getLogger(__name__)

READ_CHUNK = 32 * 1024
# An exec's stdout and stderr travel back in one gRPC message; keep them well under its cap.
MAX_EXEC_OUTPUT = 4 * 1024 * 1024


def now_ns() -> int:
    return time.time_ns()


@dataclass(frozen=True)
class ExitStatus:
    """How a container ended: exit code (128+N for signal N), when, and the CRI reason."""

    code: int
    finished_at: int
    reason: str
    message: str = ""

    @staticmethod
    def from_returncode(rc: int, message: str = "") -> ExitStatus:
        code = 128 - rc if rc < 0 else rc  # asyncio reports a signal death as -N
        return ExitStatus(code, now_ns(), "Completed" if code == 0 else "Error", message)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


class Hooks:
    """Where the tracing layer sees the supervision steps. The defaults do nothing.

    ``span(name, **fields)`` opens a span around a step (``read_loop``, ``watch``,
    ``wait_for_exit_code``, ``write_exit_path``); ``event(message, **fields)`` records what
    happened inside it (bytes read, the exit code), as conmon-rs's debug events do.
    """

    def span(self, name: str, **fields: Any) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def event(self, message: str, level: str = "DEBUG", **fields: Any) -> None:
        return None


def container_env(env: Mapping[str, str], *, hostname: str = "", cwd: str = "/") -> dict[str, str]:
    """The environment a container process sees: its own variables plus the usual defaults.

    Nothing of the host's environment leaks in.
    """
    out = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    if hostname:
        out["HOSTNAME"] = hostname
    out.update(env)
    out["PWD"] = cwd or "/"
    return out


@dataclass
class ContainerProcess:
    """One supervised container process."""

    id: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path  # a private scratch dir standing in for the rootfs; never a user-given host path
    log_path: Path | None
    exit_paths: Sequence[Path] = ()
    hooks: Hooks = field(default_factory=Hooks)

    zygote: Zygote | None = None
    max_log_bytes: int = 0  # 0: no cap; past it the container is killed

    pid: int = 0
    started_at: int = 0
    _stdout: asyncio.StreamReader | None = None
    _stderr: asyncio.StreamReader | None = None
    _wait: Callable[[], Awaitable[int]] | None = None
    _hold_w: int = -1
    _log: CriLogWriter | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _killed_for_output: bool = False
    _exited: asyncio.Future[ExitStatus] | None = None

    async def create(self) -> int:
        """Spawns the held process and starts reading its output; returns its pid."""
        if resolve(self.argv) is None:
            # Like a missing binary under a real runtime, the process still starts and dies
            # with 127 and a message in its log, so the applet runner handles it.
            log.debug("container %s: unknown command %r", self.id, self.argv[:1])
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.log_path is not None:
            self._log = CriLogWriter(self.log_path)
        hold_r, self._hold_w = os.pipe()
        try:
            if self.zygote is not None:
                self.pid = await self._spawn_forked(hold_r)
            else:
                self.pid = await self._spawn_exec(hold_r)
        finally:
            os.close(hold_r)
        self._exited = asyncio.get_running_loop().create_future()
        self._tasks.append(asyncio.create_task(self._supervise(), name=f"supervise-{self.id[:12]}"))
        return self.pid

    async def _spawn_exec(self, hold_r: int) -> int:
        """A new interpreter per container (no zygote)."""
        env = dict(self.env)
        env[HOLD_FD_ENV] = str(hold_r)
        env[PARENT_ENV] = str(os.getpid())
        proc = await asyncio.create_subprocess_exec(
            *child_argv(self.argv), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, cwd=self.workdir, pass_fds=(hold_r,), start_new_session=True)
        assert proc.stdout is not None and proc.stderr is not None
        self._stdout, self._stderr = proc.stdout, proc.stderr
        self._wait = proc.wait
        return proc.pid

    async def _spawn_forked(self, hold_r: int) -> int:
        """A fork of the zygote; the output pipes are ours, their write ends the child's."""
        assert self.zygote is not None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            pid = await self.zygote.spawn(self.argv, self.env, self.workdir, devnull, out_w, err_w, hold_r)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            for fd in (out_w, err_w, devnull):
                os.close(fd)
        self._stdout = await pipe_reader(out_r)
        self._stderr = await pipe_reader(err_r)
        exit_future = self.zygote.wait(pid)
        self._wait = lambda: exit_future
        return pid

    async def start(self) -> int:
        """Releases the held process; returns the start time (ns since the epoch)."""
        if self._hold_w < 0:
            raise RuntimeError("container already started")
        self.started_at = now_ns()
        try:
            os.write(self._hold_w, b"1")
        except BrokenPipeError:
            pass  # it died before start; the exit is recorded by wait_for_exit_code
        os.close(self._hold_w)
        self._hold_w = -1
        return self.started_at

    @property
    def exited(self) -> asyncio.Future[ExitStatus]:
        assert self._exited is not None, "create() first"
        return self._exited

    async def stop(self, timeout: float, sig: int = signal.SIGTERM) -> ExitStatus:
        """Sends ``sig``, then SIGKILL after ``timeout`` seconds; returns the exit status."""
        if self._exited is None:
            raise RuntimeError("container not created")
        if not self._exited.done():
            if self._hold_w >= 0:  # never started: nothing to be graceful with
                sig, timeout = signal.SIGKILL, 0
            self._signal(sig)
            if timeout > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._exited), timeout)
            if not self._exited.done():
                self._signal(signal.SIGKILL)
        return await asyncio.shield(self._exited)

    def _signal(self, sig: int) -> None:
        if not self.pid or (self._exited is not None and self._exited.done()):
            return
        try:
            # The whole session: an `sh -c` applet's work lives in the same process, but a
            # stray grandchild must not outlive its container either.
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            # A child forked a moment ago may not have made its own session yet; signal the
            # process itself rather than lose the signal.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)
        except PermissionError:
            pass

    def _over_limit(self) -> None:
        """The output cap: one note in the log, then SIGKILL (the container fails, not us)."""
        if self._killed_for_output:
            return
        self._killed_for_output = True
        message = f"cristack: container output exceeded {self.max_log_bytes} bytes; killing the container\n"
        log.warning("container %s: output over %d bytes; killing it", self.id[:13], self.max_log_bytes)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.flush_partial("stdout")
                self._log.write("stderr", message.encode())
        self._signal(signal.SIGKILL)

    def reopen_log(self) -> None:
        """Reopens the log file, so a rotated-away file stops growing."""
        if self._log is not None:
            self._log.reopen()

    async def _supervise(self) -> None:
        hooks = self.hooks
        reader = asyncio.create_task(self._read_loop())
        with hooks.span("watch", pid=self.pid):
            with hooks.span("wait_for_exit_code"):
                hooks.event("Waiting for exit code")
                status = await self._wait_for_exit_code(reader)
                hooks.event(f"Exited {status.code}", exit_code=status.code)
            self._write_exit_paths(status)
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(status)

    async def _read_loop(self) -> None:
        assert self._stdout is not None and self._stderr is not None
        hooks = self.hooks

        total = 0

        async def pump(stream: asyncio.StreamReader, name: str) -> None:
            nonlocal total
            while chunk := await stream.read(READ_CHUNK):
                hooks.event(f"Read {len(chunk)} bytes", "TRACE", stream=name, bytes=len(chunk))
                if self.max_log_bytes and total > self.max_log_bytes:
                    self._over_limit()
                    continue  # keep draining the pipe so the process is not blocked while it dies
                if self._log is not None:
                    try:
                        written = self._log.write(name, chunk)
                        total += written  # the cap is on what reaches the disk, line framing included
                        hooks.event(f"Wrote {written} bytes to log", "TRACE", stream=name, bytes=written)
                    except OSError as err:
                        log.error("container %s: writing log %s failed: %s", self.id, self.log_path, err)
                        self._log = None
                else:
                    total += len(chunk)
            if self._log is not None:
                self._log.flush_partial(name)

        with hooks.span("read_loop"):
            await asyncio.gather(pump(self._stdout, "stdout"), pump(self._stderr, "stderr"))
            hooks.event("Stopping read loop")

    async def _wait_for_exit_code(self, reader: asyncio.Task) -> ExitStatus:
        assert self._wait is not None
        try:
            rc = await self._wait()
        except ZygoteGone:
            rc = 137  # its fork server died, and the container with it (PDEATHSIG)
        # The output pipes close when the process exits; let the reader drain them so the
        # log holds every line before the exit becomes visible.
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(reader), 2.0)
        if self._log is not None:
            self._log.close()
        if self._hold_w >= 0:
            os.close(self._hold_w)
            self._hold_w = -1
        return ExitStatus.from_returncode(rc)

    def _write_exit_paths(self, status: ExitStatus) -> None:
        for path in self.exit_paths:
            with self.hooks.span("write_exit_path", path=str(path)):
                self.hooks.event("Creating exit file")
                self.hooks.event("Writing exit code to file", code=status.code)
                try:
                    write_atomic(path, f"{status.code}".encode())
                except OSError as err:
                    self.hooks.event(f"Could not write exit paths: {err}", "ERROR")
                    log.error("container %s: writing exit file %s failed: %s", self.id, path, err)
                    continue
                self.hooks.event("Done writing exit file")

    async def close(self) -> None:
        """Kills the process if it still runs and waits for supervision to finish."""
        if self._exited is not None and not self._exited.done():
            self._signal(signal.SIGKILL)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 3.0)


class OutputTooLarge(Exception):
    """An exec's output passed its cap."""


async def exec_sync(argv: list[str], env: dict[str, str], workdir: Path, timeout: float,
                    zygote: Zygote | None = None, max_output: int = 0) -> ExecResult:
    """Runs an applet beside a container and collects its output; ``timeout`` 0 means none.
    Raises OutputTooLarge (after killing it) when stdout + stderr pass ``max_output`` bytes."""
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if zygote is None:
        proc = await asyncio.create_subprocess_exec(
            *child_argv(argv), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, cwd=workdir, start_new_session=True)
        assert proc.stdout is not None and proc.stderr is not None
        pid, out, err, wait = proc.pid, proc.stdout, proc.stderr, proc.wait
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            pid = await zygote.spawn(argv, env, workdir, devnull, out_w, err_w)
        finally:
            for fd in (out_w, err_w, devnull):
                os.close(fd)
        out, err = await pipe_reader(out_r), await pipe_reader(err_r)
        exit_future = zygote.wait(pid)

        def wait() -> asyncio.Future[int]:
            return exit_future

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                os.kill(pid, signal.SIGKILL)  # not yet its own session leader

    async def collect() -> tuple[bytes, bytes, int]:
        buffers: dict[str, bytearray] = {"out": bytearray(), "err": bytearray()}

        async def drain(stream: asyncio.StreamReader, key: str) -> None:
            while chunk := await stream.read(READ_CHUNK):
                buffers[key] += chunk
                if max_output and len(buffers["out"]) + len(buffers["err"]) > max_output:
                    kill()
                    raise OutputTooLarge(f"exec output passed the {max_output}-byte cap")

        await asyncio.gather(drain(out, "out"), drain(err, "err"))
        return bytes(buffers["out"]), bytes(buffers["err"]), await wait()

    try:
        stdout, stderr, rc = await asyncio.wait_for(collect(), timeout if timeout > 0 else None)
    except asyncio.TimeoutError:
        kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(wait(), 5)
        return ExecResult(-1, b"", b"", timed_out=True)
    except OutputTooLarge:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(wait(), 5)
        raise
    return ExecResult(128 - rc if rc < 0 else rc, stdout, stderr)


async def pipe_reader(fd: int) -> asyncio.StreamReader:
    """An asyncio reader over the read end of a pipe (which it takes ownership of)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_CHUNK * 4)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    return reader
