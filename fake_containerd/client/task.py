"""A task and its processes as the Go client handles them (client/task.go and process.go of containerd v2.4.2),
with the spans they open: ``client.task.Start|Kill|Delete|Exec``, ``task.Wait``, ``process.Start|Wait|Kill|
Delete``. Every call goes to the in-process tasks service (fake_containerd.runtime.tasks)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass

from cristack.wire.errors import FailedPrecondition, NotFound
from fake_containerd.metadata import rfc3339
from fake_containerd.runtime.tasks import CREATED, STATUS_NAMES, STOPPED, UNKNOWN, Tasks
from fake_containerd.tracing import ContainerdTracing

UNKNOWN_EXIT_STATUS = 255  # containerd.UnknownExitStatus


@dataclass(frozen=True)
class ExitStatus:
    code: int
    exited_at_ns: int
    error: str = ""


def _ns(ts) -> int:  # noqa: ANN001 - a protobuf Timestamp
    return ts.seconds * 1_000_000_000 + ts.nanos if ts is not None else 0


async def with_process_kill(exit_wait: asyncio.Task[ExitStatus], kill) -> None:  # noqa: ANN001
    """containerd.WithProcessKill: wait started first, then SIGKILL; a process already gone (NOT_FOUND, or a
    FAILED_PRECONDITION from the shim) is no error; the deletion goes on once the process has exited."""
    try:
        await kill()
    except FailedPrecondition:
        exit_wait.cancel()
        return
    except NotFound:
        pass
    with contextlib.suppress(asyncio.CancelledError):
        await exit_wait


class Task:
    """client.task: a container's task."""

    def __init__(self, tasks: Tasks, tracing: ContainerdTracing, task_id: str, pid: int) -> None:
        self.tasks = tasks
        self.tracing = tracing
        self.id = task_id
        self.pid = pid

    async def start(self) -> int:
        with self.tracing.span("client.task.Start", {"task.id": self.id}, namespace=True) as span:
            self.pid = await self.tasks.start(self.id)
            # The Go client sets the uint32 pid, which pkg/tracing writes as its JSON text.
            span.set_attribute("task.pid", str(self.pid))
            return self.pid

    async def kill(self, sig: int, *, all_: bool = False) -> None:
        with self.tracing.span("client.task.Kill", {"task.id": self.id, "task.pid": self.pid},
                               namespace=True) as span:
            span.set_attributes({"task.exec.id": "", "task.exec.killall": all_})
            await self.tasks.kill(self.id, sig, all_)

    async def _wait(self) -> ExitStatus:
        with self.tracing.span("task.Wait", {"task.id": self.id}):
            try:
                resp = await self.tasks.wait(self.id)
            except (NotFound, FailedPrecondition) as err:
                return ExitStatus(UNKNOWN_EXIT_STATUS, time.time_ns(), str(err))
            return ExitStatus(resp.exit_status, _ns(resp.exited_at))

    def wait(self, *, background: bool = False) -> asyncio.Task[ExitStatus]:
        """task.Wait: the wait runs in a goroutine of its own; with ``background`` (the CRI passes
        ctrdutil.NamespacedContext()) its span is a root."""
        if not background:
            return asyncio.ensure_future(self._wait())

        async def run() -> ExitStatus:
            with self.tracing.background():
                return await self._wait()

        return asyncio.ensure_future(run())

    async def status(self) -> str:
        """task.Status: the task's state through the tasks service's Get (a State call)."""
        return STATUS_NAMES.get((await self.tasks.get(self.id)).status, "unknown")

    async def delete(self, *, kill: bool = False) -> ExitStatus:
        """client.task.Delete, with containerd.WithProcessKill when ``kill``: SIGKILL to every process, wait, then
        Delete (and the shim's Shutdown)."""
        with self.tracing.span("client.task.Delete", {"task.id": self.id}, namespace=True) as span:
            if kill:
                await with_process_kill(self.wait(), lambda: self.kill(signal.SIGKILL, all_=True))
            state = await self.tasks.get(self.id)
            if state.status not in (STOPPED, UNKNOWN) and not (state.status == CREATED and self.pid == 0):
                raise FailedPrecondition(f"task must be stopped before deletion: {STATUS_NAMES[state.status]}: "
                                         "failed precondition")
            resp = await self.tasks.delete(self.id)
            status = ExitStatus(resp.exit_status, _ns(resp.exited_at))
            span.set_attributes({"task.exit_status": status.code, "task.exited_at": rfc3339(status.exited_at_ns)})
            return status

    async def exec(self, exec_id: str, process: dict, stdout: str, stderr: str) -> Process:
        with self.tracing.span("client.task.Exec", {"task.id": self.id}, namespace=True) as span:
            span.set_attribute("task.exec.id", exec_id)
            await self.tasks.exec(self.id, exec_id, process, stdout, stderr)
            return Process(self, exec_id)

    async def metrics(self) -> bool:
        """task.Metrics (the tasks service's Stats); False when the task is gone."""
        return self.id in await self.tasks.metrics([self.id])


class Process:
    """client.process: an exec in a task."""

    def __init__(self, task: Task, exec_id: str) -> None:
        self.task = task
        self.id = exec_id
        self.pid = 0

    def _attrs(self, pid: bool = False) -> dict:
        attrs: dict = {"process.id": self.id}
        if pid:
            attrs["process.pid"] = self.pid
        attrs["process.task.id"] = self.task.id
        return attrs

    async def start(self) -> int:
        with self.task.tracing.span("process.Start", self._attrs()) as span:
            self.pid = await self.task.tasks.start(self.task.id, self.id)
            span.set_attribute("process.pid", self.pid)
            return self.pid

    async def _wait(self) -> ExitStatus:
        with self.task.tracing.span("process.Wait", self._attrs()):
            resp = await self.task.tasks.wait(self.task.id, self.id)
            return ExitStatus(resp.exit_status, _ns(resp.exited_at))

    def wait(self) -> asyncio.Task[ExitStatus]:
        return asyncio.ensure_future(self._wait())

    async def kill(self, sig: int) -> None:
        with self.task.tracing.span("process.Kill", self._attrs(pid=True)):
            await self.task.tasks.kill(self.task.id, sig, exec_id=self.id)

    async def delete(self, *, kill: bool = False) -> ExitStatus:
        """process.Delete (WithProcessKill when ``kill``): kill, wait, its status, then DeleteProcess."""
        with self.task.tracing.span("process.Delete", {"process.id": self.id}):
            if kill:
                await with_process_kill(self.wait(), lambda: self.kill(signal.SIGKILL))
            state = await self.task.tasks.get(self.task.id, self.id)
            if state.status not in (STOPPED, UNKNOWN, CREATED):
                raise FailedPrecondition(f"current process state: {STATUS_NAMES[state.status]}, process must be "
                                         "stopped before deletion: failed precondition")
            resp = await self.task.tasks.delete_process(self.task.id, self.id)
            return ExitStatus(resp.exit_status, _ns(resp.exited_at))
