"""StartContainer (internal/cri/server/container_start.go of containerd v2.4.2): the container's task made
(``container.NewTask``: Create, Connect on its pod's shim, the CRI log named as the task's stdout), the exit
monitor's ``task.Wait`` started from a background context (a root), NRI's lookup before and after the start
(roots), ``client.task.Start``, and the ``container started`` event."""

from __future__ import annotations

import logging
import time

from opentelemetry import trace

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.cri import events
from fake_containerd.cri.errors import Unknown
from fake_containerd.cri.images.image_pull import go_duration
from fake_containerd.cri.service import CriService
from fake_containerd.cri.store import SANDBOX_READY
from fake_containerd.tracing import add_event

log = logging.getLogger(__name__)

ERROR_START_EXIT_CODE = 128  # errorStartExitCode
ERROR_START_REASON = "StartError"


async def start_container(c: CriService, container_id: str) -> None:
    span = trace.get_current_span()
    started = time.monotonic()
    try:
        record = c.stores.container(container_id)
    except NotFound:
        raise NotFound(f'an error occurred when try to find container "{container_id}": not found') from None
    span.set_attribute("container.id", record.id)
    if record.starting or record.started_at or record.finished_at or record.removing:
        state = "starting" if record.starting else "removing" if record.removing else "not created"
        raise Unknown(f'failed to set starting state for container "{record.id}": container is in {state} state')
    record.starting = True
    try:
        try:
            sandbox = c.stores.sandbox(record.sandbox_id)
        except NotFound:
            raise NotFound(f'sandbox "{record.sandbox_id}" not found: not found') from None
        if sandbox.state != SANDBOX_READY:
            raise Unknown(f'sandbox container "{sandbox.id}" is not running')
        span.set_attribute("sandbox.id", sandbox.id)
        stdout = f"file://{record.log_path}" if record.log_path else ""
        try:
            task = await record.container.new_task(stdout=stdout, stderr=stdout, terminal=record.config.tty)
        except Exception as err:
            _failed(record, f"failed to create containerd task: {err}")
            raise
        exit_wait = task.wait(background=True)
        await c.nri.container(record)  # NRI StartContainer
        try:
            await task.start()
        except Exception as err:
            _failed(record, f'failed to start containerd task "{record.id}": {err}')
            exit_wait.cancel()
            with c.tracing.background():
                await task.delete(kill=True)
            raise
        record.task = task
        record.pid = task.pid
        record.started_at = time.time_ns()
        events.start_container_exit_monitor(c, record, exit_wait)
        c.send_event(record.id, sandbox.id, pb.CONTAINER_STARTED_EVENT)
        await c.nri.container(record)  # NRI PostStartContainer
        add_event("container started", {"container.start.duration": go_duration(time.monotonic() - started)})
    finally:
        record.starting = False


def _failed(record, message: str) -> None:  # noqa: ANN001 - a ContainerRecord
    record.pid = 0
    record.finished_at = time.time_ns()
    record.exit_code = ERROR_START_EXIT_CODE
    record.reason = ERROR_START_REASON
    record.message = message
