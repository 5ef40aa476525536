"""What the CRI plugin does when a task exits (internal/cri/server/events.go startContainerExitMonitor,
handleContainerExit; podsandbox/events.go and sandbox_stop.go for the pause container), each from a background
context, so every call it makes starts a trace of its own, as recorded:

- a container's exit: the task is loaded (a root ``Task/State``); an exit code of 137 makes the plugin read
  the task's metrics to tell an OOM kill (a root ``Task/Stats``); NRI's lookup for the exit notice (a root
  ``Task/State``); then ``client.task.Delete`` with WithProcessKill (a root: Kill, task.Wait, State, Delete,
  Shutdown); the container's status is then final and its waiters released;
- a sandbox's exit: the task is loaded, deleted the same way, the sandbox becomes NOTREADY.
"""

from __future__ import annotations

import asyncio
import logging

from cristack.wire.errors import NotFound, RpcError
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.client.task import ExitStatus
from fake_containerd.cri.service import CriService
from fake_containerd.cri.store import SANDBOX_NOTREADY, ContainerRecord, Sandbox

log = logging.getLogger(__name__)

OOM_EXIT_CODE = 137  # oomExitCodeInLinux
OOM_REASON = "OOMKilled"


def start_container_exit_monitor(c: CriService, record: ContainerRecord, exit_wait: asyncio.Task[ExitStatus]) -> None:
    async def monitor() -> None:
        status = await exit_wait
        log.info("received container exit event container_id:%s id:%s pid:%d exit_status:%d", record.id, record.id,
                 record.pid, status.code)
        with c.tracing.background():
            try:
                await handle_container_exit(c, record, status)
            except RpcError as err:
                log.error("failed to handle container TaskExit event for %s: %s", record.id, err)
                record.finished_at = record.finished_at or status.exited_at_ns
                record.stopped.set()

    c.spawn(monitor())


async def handle_container_exit(c: CriService, record: ContainerRecord, status: ExitStatus) -> None:
    try:
        task = await record.container.task()
    except NotFound:
        task = None
    if task is not None:
        if status.code == OOM_EXIT_CODE and record.reason != OOM_REASON:
            await task.metrics()  # oomMetricsEventOccurred: a memory cgroup we do not have says no OOM kill
        await c.nri.container(record)  # NRI's WithContainerExit looks the container up
        try:
            await task.delete(kill=True)
        except NotFound:
            pass
    log.info("Ensure that container %s in task-service has been cleanup successfully", record.id)
    if not record.finished_at:
        record.pid = 0
        record.finished_at = status.exited_at_ns
        record.exit_code = status.code
    record.task = None
    record.stopped.set()
    c.send_event(record.id, record.sandbox_id, pb.CONTAINER_STOPPED_EVENT)


def start_sandbox_exit_monitor(c: CriService, sandbox: Sandbox, exit_wait: asyncio.Task[ExitStatus]) -> None:
    async def monitor() -> None:
        status = await exit_wait
        with c.tracing.background():
            try:
                await handle_sandbox_exit(c, sandbox, status)
            except RpcError as err:
                log.error("failed to handle sandbox TaskExit event for %s: %s", sandbox.id, err)
                sandbox.state = SANDBOX_NOTREADY
                sandbox.stopped.set()

    c.spawn(monitor())


async def handle_sandbox_exit(c: CriService, sandbox: Sandbox, status: ExitStatus) -> None:
    if sandbox.container is not None:
        try:
            task = await sandbox.container.task()
            await task.delete(kill=True)
        except NotFound:
            pass
    sandbox.state = SANDBOX_NOTREADY
    sandbox.pid = 0
    sandbox.exited_at = status.exited_at_ns
    sandbox.task = None
    sandbox.stopped.set()
    c.send_event(sandbox.id, sandbox.id, pb.CONTAINER_STOPPED_EVENT)
