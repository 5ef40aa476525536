"""How a process's life ends: a component's with its parent (Linux's parent-death signal) or on SIGTERM/SIGINT,
and any child's when we stop it (``stop_process``: the stop signal, a grace period, then SIGKILL).

A process we start (a component under ``cristack up``, a fork server under its supervisor, a container under
its monitor) must not outlive the process that would stop it: if that parent is killed outright, nothing else
would ever stop the child, and it would keep running under PID 1. The kernel delivers ``sig`` to the child
when the parent *thread* that started it exits, so start such children from a thread that lives as long as
the parent (the main thread).

A parent-death signal reaches only a child of the dying process. A grandchild left to PID 1 on purpose (a
containerd shim: the command containerd runs starts the serving process and exits) is given a *lifeline pipe*
instead (``lifeline_pipe``, ``inherited_lifeline``, ``watch_lifeline``): the holder keeps the write end, which no
child inherits and nobody writes; the read end, handed down by file descriptor, reads end-of-file once the
holder is gone, however it died.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> bool:
    """Asks for ``sig`` when the parent dies; if ``parent`` (its pid) is already gone, exits at once.
    Returns False where the platform has no parent-death signal."""
    try:
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent is not None and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(128 + int(sig))
    return True


PARENT_ENV = "CRISTACK_DIE_WITH_PARENT"


def from_env() -> None:
    """At a component's start: SIGINT takes its default action until the component handles it, and the
    component dies with the parent named in ``CRISTACK_DIE_WITH_PARENT`` (its pid), if set.
    Set up in the child itself, so that the parent can start it without a fork-time hook (a hook would make
    Python fork rather than spawn, and gRPC warns about forking a process with its threads)."""
    # Until the component installs its stop handlers (stop_on_signals), Ctrl-C ends it quietly as it would any
    # program without handlers, instead of a KeyboardInterrupt traceback from whatever import it was in.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Started under held_sigint, a SIGINT that came during the interpreter's own start waited until now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    parent = os.environ.pop(PARENT_ENV, "")
    if parent.isdigit():
        die_with_parent(signal.SIGTERM, int(parent))


LIFELINE_ENV = "CRISTACK_LIFELINE_FD"  # the inherited read end of a lifeline pipe (its fd number)


def lifeline_pipe() -> tuple[int, int]:
    """A lifeline: (read end, write end). The holder keeps the write end for its whole life (os.pipe's fds are
    not inherited across exec, and none is ever written); it hands the read end to each child it starts with
    ``pass_fds`` and names it in ``LIFELINE_ENV``."""
    return os.pipe()


def inherited_lifeline(environ: Mapping[str, str] = os.environ) -> int | None:
    """The read end of the lifeline this process was handed (``LIFELINE_ENV``), or None."""
    fd = environ.get(LIFELINE_ENV, "")
    if not fd.isdigit():
        return None
    try:
        os.fstat(int(fd))
    except OSError:
        return None
    return int(fd)


def watch_lifeline(fd: int, on_end: Callable[[], object]) -> None:
    """Calls ``on_end`` (once, in the running event loop) when the lifeline's holder is gone: its read end is
    readable only at end-of-file, since nobody writes."""
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(fd, 1)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            on_end()

    loop.add_reader(fd, readable)


@contextlib.contextmanager
def held_sigint() -> Iterator[None]:
    """Children started inside this block begin with SIGINT blocked (a process inherits its signal mask), so
    that a Ctrl-C during the interpreter's own start (where CPython turns it into a "Fatal Python error" with
    a traceback) waits until ``from_env`` has given SIGINT its default action, and then ends it quietly."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _no_op(signum: int, frame: object) -> None:
    """The Python-level handler of a stop signal: the work is done by the wakeup fd that the C handler writes."""


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event | None = None) -> Iterator[asyncio.Event]:
    """An event (``stop``, or a new one) set by SIGTERM or SIGINT while the block runs (in a running event loop).

    On leaving the block, further stop signals are ignored for the rest of the process's life: it is already
    stopping, and a repeated SIGTERM (a supervisor that signals twice, as ``procs.Proc.stop`` does) must neither
    kill it in the middle of flushing its spans nor reach asyncio after the loop has closed its wakeup pipe,
    where Python prints "Exception ignored when trying to write to the signal wakeup fd".

    Not asyncio's ``add_signal_handler``: its ``remove_signal_handler`` (and the loop's close) put back the
    default action, which for SIGTERM kills, before anything can say "ignore". Blocking the signal around
    that does not help, since a mask is per thread and the kernel hands a process's signal to any thread
    that does not block it (gRPC's and the exporters' threads). So the handlers here go straight from ours
    to ignored, never through the default, and the wakeup pipe is ours to unset before it closes."""
    loop = asyncio.get_running_loop()
    stop = stop if stop is not None else asyncio.Event()
    numbers = {int(sig) for sig in STOP_SIGNALS}
    read_end, write_end = os.pipe()
    for fd in (read_end, write_end):
        os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(read_end, 64)
        except BlockingIOError:
            return
        if numbers.intersection(data):
            stop.set()

    loop.add_reader(read_end, readable)
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _no_op)
    try:
        yield stop
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        signal.set_wakeup_fd(previous_fd)
        loop.remove_reader(read_end)
        os.close(read_end)
        os.close(write_end)


def stop_process(proc: subprocess.Popen, grace: float, sig: int = signal.SIGTERM) -> int:
    """Stops a child we started: ``sig``, then SIGKILL if it still runs after ``grace`` seconds. Returns its
    exit status (negative for a signal, as subprocess reports it)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    return proc.returncode


async def stop_gracefully(send: Callable[[int], None], exited: Awaitable[T], grace: float,
                          sig: int = signal.SIGTERM) -> T:
    """The same policy for anything that ``send`` can signal and whose end ``exited`` reports (an asyncio
    child, a container's process group): ``sig``, then SIGKILL after ``grace`` seconds. Returns what
    ``exited`` yields."""
    done = asyncio.ensure_future(exited)
    if not done.done():
        with contextlib.suppress(ProcessLookupError):
            send(sig)
        if grace > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), grace)
        if not done.done():
            with contextlib.suppress(ProcessLookupError):
                send(signal.SIGKILL)
    return await done


async def stop_child(proc: asyncio.subprocess.Process, grace: float, sig: int = signal.SIGTERM) -> int:
    """``stop_process`` for a child started with asyncio."""
    if proc.returncode is not None:
        return proc.returncode
    return await stop_gracefully(proc.send_signal, proc.wait(), grace, sig)
