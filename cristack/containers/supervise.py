"""Container process supervision, shared by fake-conmon (runtime type "pod") and fake-crio
(runtime type "oci", where CRI-O would run the process without a monitor of its own).

A container is a real child process running one of our built-in applets (never a host
binary). Like ``runc create`` it is spawned *held*: the child blocks on a pipe until
``start()`` releases it, so CreateContainer and StartContainer stay two steps. While it
runs, readers copy its stdout/stderr from real pipes (or one pseudo-terminal for a tty
container) into the CRI log file, and ``watch`` records the exit and writes it to the exit
files, in the steps conmon-rs takes (which fake-conmon's hooks turn into its spans).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cristack.containers.applets import HOLD_FD_ENV, PARENT_ENV, child_argv, resolve
from cristack.containers.crilog import CriLogWriter, format_timestamp
from cristack.containers.zygote import Zygote, ZygoteGone
from cristack.files import write_atomic
from cristack.lifeline import stop_gracefully

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

    ``span(name, **fields)`` opens a span around a step and yields a handle for it (the
    steps are conmon-rs's: ``stdout``/``stderr`` or ``read_loop``, ``watch``,
    ``cgroup_handling``, ``oom_handling_cgroup_v1``, ``wait_for_exit_code``,
    ``write_exit_path``, ``watch_grandchild``); ``event(message, on=None, **fields)``
    records what happened, on the current span or on the handle ``on``, in conmon-rs's words.
    """

    def span(self, name: str, **fields: Any) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def event(self, message: str, on: Any = None, **fields: Any) -> None:
        return None


NO_HOOKS = Hooks()


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
    log_size_max: int = 0  # the max log size conmon-rs was given (CRI-O's log_size_max), which it announces
    terminal: bool = False  # one pseudo-terminal for stdin/stdout/stderr, read by one read_loop

    pid: int = 0
    started_at: int = 0
    _stdout: asyncio.StreamReader | None = None
    _stderr: asyncio.StreamReader | None = None
    _wait: Callable[[], Awaitable[int]] | None = None
    _hold_w: int = -1
    _log: CriLogWriter | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _killed_for_output: bool = False
    _written: int = 0
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
            self.pid = await self._spawn(hold_r)
        finally:
            os.close(hold_r)
        self._exited = asyncio.get_running_loop().create_future()
        hooks = self.hooks
        hooks.event(f"Running child on PID: {self.pid}")
        # conmon-rs hands the output to its readers before it starts watching for the exit;
        # all of them are tasks of the promise that outlive it.
        if self.terminal:
            hooks.event("Waiting for terminal socket connection")
            hooks.event("Changing terminal settings")
        else:
            hooks.event("Start reading from IO streams")
        readers = [self._spawn_task(self._read(stream, name), f"{name}-{self.id[:12]}")
                   for stream, name in self._streams()]
        self._spawn_task(self._supervise(readers), f"watch-{self.id[:12]}")
        self._spawn_task(watch_grandchild(hooks, self.pid, self._exited), f"grandchild-{self.id[:12]}")
        return self.pid

    def _spawn_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    def _streams(self) -> list[tuple[asyncio.StreamReader, str]]:
        assert self._stdout is not None
        if self.terminal:
            return [(self._stdout, "read_loop")]
        assert self._stderr is not None
        return [(self._stdout, "stdout"), (self._stderr, "stderr")]

    async def _spawn(self, hold_r: int) -> int:
        """Starts the held child with its output on our pipes (or one pseudo-terminal)."""
        if self.terminal:
            out_r, out_w = os.openpty()  # the child's stdin, stdout and stderr are the terminal
            err_r, err_w = -1, out_w
            stdin = out_w
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            stdin = os.open(os.devnull, os.O_RDONLY)
        try:
            if self.zygote is not None:
                pid = await self.zygote.spawn(self.argv, self.env, self.workdir, stdin, out_w, err_w, hold_r)
                exit_future = self.zygote.wait(pid)
                self._wait = lambda: exit_future
            else:  # a new interpreter per container
                env = {**self.env, HOLD_FD_ENV: str(hold_r), PARENT_ENV: str(os.getpid())}
                proc = await asyncio.create_subprocess_exec(
                    *child_argv(self.argv), stdin=stdin, stdout=out_w, stderr=err_w, env=env, cwd=self.workdir,
                    pass_fds=(hold_r,), start_new_session=True)
                pid = proc.pid
                self._wait = proc.wait
        except BaseException:
            for fd in (out_r, err_r):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            for fd in {stdin, out_w, err_w}:
                os.close(fd)
        self._stdout = await pipe_reader(out_r)
        self._stderr = await pipe_reader(err_r) if err_r >= 0 else None
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
        if self._hold_w >= 0 and not self._exited.done():  # never started: nothing to be graceful with
            sig, timeout = signal.SIGKILL, 0
        return await stop_gracefully(self._signal, asyncio.shield(self._exited), timeout, sig)

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

    async def _read(self, stream: asyncio.StreamReader, name: str) -> None:
        """One reader, as conmon-rs's ``stdout``/``stderr`` tasks (``read_loop`` for a
        terminal): copies the output into the CRI log."""
        hooks = self.hooks
        log_name = "stdout" if name == "read_loop" else name  # a terminal's output is stdout
        with hooks.span(name):
            while chunk := await stream.read(READ_CHUNK):
                hooks.event(f"Read {len(chunk)} bytes")
                self._log_chunk(log_name, chunk)
            if self._log is not None:
                self._log.flush_partial(log_name)
            # A terminal reports its hang-up as EIO; a pipe as end of file.
            hooks.event("Stopping read loop" if getattr(stream, "hung_up", False) else "Nothing more to read")

    def _log_chunk(self, name: str, chunk: bytes) -> None:
        if self.max_log_bytes and self._written > self.max_log_bytes:
            self._over_limit()
            return  # keep draining the pipe so the process is not blocked while it dies
        if self._log is None:
            self._written += len(chunk)
            return
        lines = (self._log.pending(name) + chunk).split(b"\n")[:-1]
        try:
            self._written += self._log.write(name, chunk)  # the cap is on what reaches the disk
        except OSError as err:
            log.error("container %s: writing log %s failed: %s", self.id, self.log_path, err)
            self._log = None
            return
        # conmon-rs's CRI logger counts each line as written: timestamp, " stdout ", tag, text, newline.
        prefix = len(format_timestamp(now_ns())) + 10
        before = self._written - sum(prefix + len(line) + 1 for line in lines)
        for line in lines:
            size = prefix + len(line) + 1
            if self.log_size_max:
                self.hooks.event(f"Verifying log size: max_log_size = {self.log_size_max}, bytes_written = {before},"
                                 f"  bytes_to_be_written = {size}, new_bytes_written = {before + size}")
            before += size
            self.hooks.event(f"Wrote log line of length {size}")

    async def _supervise(self, readers: list[asyncio.Task]) -> None:
        assert self._exited is not None

        async def after_exit() -> None:
            # The output pipes close when the process exits; let the readers drain them so the
            # log holds every line before the exit becomes visible.
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(asyncio.gather(*readers, return_exceptions=True)), 2.0)
            if self._log is not None:
                self._log.close()
            if self._hold_w >= 0:
                os.close(self._hold_w)
                self._hold_w = -1

        await watch(self.hooks, self.pid, self._wait_rc, self.exit_paths, self._exited,
                    memory_cgroup=f"/sys/fs/cgroup/memory/cristack/crio-{self.id}", after_exit=after_exit)

    async def _wait_rc(self) -> int:
        assert self._wait is not None
        try:
            return await self._wait()
        except ZygoteGone:
            return 137  # its fork server died, and the container with it (PDEATHSIG)

    async def close(self) -> None:
        """Kills the process if it still runs and waits for supervision to finish."""
        if self._exited is not None and not self._exited.done():
            self._signal(signal.SIGKILL)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 3.0)


def _rust_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(f'"{p}"' for p in paths) + "]"


async def watch(hooks: Hooks, pid: int, wait: Callable[[], Awaitable[int]], exit_paths: Sequence[Path],
                exited: asyncio.Future[ExitStatus], *, memory_cgroup: str | None,
                after_exit: Callable[[], Awaitable[None]] | None = None,
                timed_out: Callable[[], bool] = lambda: False) -> None:
    """conmon-rs's ``watch`` task: waits for the exit (watching for OOM beside it), writes the
    exit files, then reports the exit through ``exited``."""
    with hooks.span("watch", pid=str(pid)):
        hooks.event("Running task")
        stop = asyncio.Event()
        oom = asyncio.create_task(_watch_oom(hooks, pid, stop, memory_cgroup))
        with hooks.span("wait_for_exit_code"):
            hooks.event("Waiting for exit code")
            rc = await wait()
            hooks.event(_exit_message(rc))
        stop.set()
        with contextlib.suppress(Exception):
            await oom
        if after_exit is not None:
            await after_exit()
        status = ExitStatus.from_returncode(rc)
        hooks.event("Write to exit paths", exit_paths=_rust_list(exit_paths))
        write_exit_paths(hooks, status.code, exit_paths)
        hooks.event(f"Sending exit struct to channel: ExitChannelData {{ exit_code: {status.code}, oomed: false, "
                    f"timed_out: {str(timed_out()).lower()} }}")
        if not exited.done():
            exited.set_result(status)
        hooks.event("Task done")


def _exit_message(rc: int) -> str:
    """conmon-rs's words for an exit: ``Exited N`` or ``Signaled: SIGKILL``. asyncio reports a
    signal as -N, the zygote as 128+N (an exit code above 128 reads as a signal here too)."""
    num = -rc if rc < 0 else rc - 128 if rc > 128 else 0
    try:
        return f"Signaled: {signal.Signals(num).name}" if num else f"Exited {rc}"
    except ValueError:
        return f"Exited {rc}"


async def _watch_oom(hooks: Hooks, pid: int, stop: asyncio.Event, memory_cgroup: str | None) -> None:
    """conmon-rs's cgroup v1 OOM watcher; there are no cgroups here, so it only waits for the exit.
    ``memory_cgroup`` None is the short-lived process whose cgroup is already gone (an exec)."""
    with hooks.span("cgroup_handling") as handling, hooks.span("oom_handling_cgroup_v1", pid=str(pid)):
        hooks.event(f"Using cgroup path: /proc/{pid}/cgroup")
        if memory_cgroup is None:
            hooks.event(f"Cgroup path not found: /proc/{pid}/cgroup")
            hooks.event("Stopping OOM handler because no cgroup subsystem path exists")
            return
        hooks.event(f"Using memory cgroup v1 path: {memory_cgroup}")
        hooks.event("Setup cgroup v1 oom handling", path=f"{memory_cgroup}/memory.oom_control")
        # conmon-rs holds this span's guard across an await, so its later events land on the
        # parent span (as the recording shows); ours say so explicitly.
        hooks.event("Successfully setup cgroup v1 oom detection", on=handling)
        await stop.wait()
        hooks.event("Loop cancelled", on=handling)
        hooks.event("Done watching for ooms", on=handling)


async def watch_grandchild(hooks: Hooks, pid: int, exited: asyncio.Future[ExitStatus]) -> None:
    """conmon-rs's ``watch_grandchild`` task: lasts until the exit is reported."""
    with hooks.span("watch_grandchild", pid=str(pid)), contextlib.suppress(Exception):
        await asyncio.shield(exited)


def write_exit_paths(hooks: Hooks, code: int, paths: Sequence[Path]) -> None:
    """Writes the exit code into each exit file, one ``write_exit_path`` span each."""
    for path in paths:
        with hooks.span("write_exit_path", path=str(path)):
            hooks.event("Creating exit file")
            hooks.event("Writing exit code to file", code=code)
            try:
                write_atomic(path, f"{code}".encode())
            except OSError as err:
                hooks.event(f"Could not write exit file to path: {err}")
                log.error("writing exit file %s failed: %s", path, err)
                continue
            hooks.event("Flushing file")
            hooks.event("Done writing exit file")


class OutputTooLarge(Exception):
    """An exec's output passed its cap."""


async def exec_sync(argv: list[str], env: dict[str, str], workdir: Path, timeout: float,
                    zygote: Zygote | None = None, max_output: int = 0, hooks: Hooks = NO_HOOKS) -> ExecResult:
    """Runs an applet beside a container and collects its output; ``timeout`` 0 means none.
    Raises OutputTooLarge (after killing it) when stdout + stderr pass ``max_output`` bytes.
    ``hooks`` see the same steps as a container's (readers, ``watch``), without exit files."""
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

    hooks.event(f"Running child on PID: {pid}")
    hooks.event("Start reading from IO streams")

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                os.kill(pid, signal.SIGKILL)  # not yet its own session leader

    buffers: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    async def drain(stream: asyncio.StreamReader, name: str) -> None:
        with hooks.span(name):
            while chunk := await stream.read(READ_CHUNK):
                hooks.event(f"Read {len(chunk)} bytes")
                buffers[name] += chunk
                if max_output and len(buffers["stdout"]) + len(buffers["stderr"]) > max_output:
                    kill()
                    raise OutputTooLarge(f"exec output passed the {max_output}-byte cap")
            hooks.event("Nothing more to read")

    exited: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
    late = False
    readers = [asyncio.create_task(drain(out, "stdout")), asyncio.create_task(drain(err, "stderr"))]
    watcher = asyncio.create_task(watch(hooks, pid, wait, (), exited, memory_cgroup=None, timed_out=lambda: late))
    grandchild = asyncio.create_task(watch_grandchild(hooks, pid, exited))

    async def collect() -> int:
        await asyncio.gather(*readers)
        return (await asyncio.shield(exited)).code

    async def settle() -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(watcher, grandchild, *readers, return_exceptions=True), 5)

    try:
        code = await asyncio.wait_for(collect(), timeout if timeout > 0 else None)
    except asyncio.TimeoutError:
        late = True
        kill()
        await settle()
        return ExecResult(-1, b"", b"", timed_out=True)
    except asyncio.CancelledError:
        # Whoever waited gave up (a shim told to kill the exec, a caller gone): the process must not outlive it.
        late = True
        kill()
        await asyncio.shield(settle())
        raise
    except OutputTooLarge:
        await settle()
        raise
    await settle()
    return ExecResult(code, bytes(buffers["stdout"]), bytes(buffers["stderr"]))


class _TerminalProtocol(asyncio.StreamReaderProtocol):
    """Reads a pseudo-terminal: the hang-up (EIO once the child side is closed) is its end of
    file, noted on the reader as ``hung_up``, not an error that would lose buffered output."""

    def connection_lost(self, exc: Exception | None) -> None:
        reader = self._stream_reader
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            exc = None
            if reader is not None:
                reader.hung_up = True  # type: ignore[attr-defined]
        super().connection_lost(exc)


async def pipe_reader(fd: int) -> asyncio.StreamReader:
    """An asyncio reader over the read end of a pipe or a terminal (which it takes ownership of)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_CHUNK * 4)
    protocol = _TerminalProtocol if os.isatty(fd) else asyncio.StreamReaderProtocol
    await loop.connect_read_pipe(lambda: protocol(reader), os.fdopen(fd, "rb", buffering=0))
    return reader
