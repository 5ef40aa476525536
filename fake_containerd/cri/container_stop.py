"""StopContainer (internal/cri/server/container_stop.go of containerd v2.4.2): a running container's task is
loaded (State); with a timeout its stop signal first (``client.task.Kill``) and a wait of that long; then
``Kill container`` with SIGKILL and a wait until the exit monitor has deleted the task; ``container stopped``
with the time it took. A container not running is left as it is (logged)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from opentelemetry import trace

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.cri.errors import Unknown
from fake_containerd.cri.images.image_pull import go_duration
from fake_containerd.cri.service import CriService
from fake_containerd.cri.store import ContainerRecord
from fake_containerd.tracing import add_event

log = logging.getLogger(__name__)

STATE_NAMES = {pb.CONTAINER_CREATED: "CONTAINER_CREATED", pb.CONTAINER_RUNNING: "CONTAINER_RUNNING",
               pb.CONTAINER_EXITED: "CONTAINER_EXITED", pb.CONTAINER_UNKNOWN: "CONTAINER_UNKNOWN"}


async def stop_container_by_id(c: CriService, container_id: str, timeout: int) -> None:
    try:
        record = c.stores.container(container_id)
    except NotFound:
        return  # StopContainer is idempotent: a container that is gone is stopped
    trace.get_current_span().set_attribute("container.id", record.id)
    await stop_container(c, record, timeout)


def _stop_signal(record: ContainerRecord) -> int:
    chosen = record.config.stop_signal
    if chosen != pb.RUNTIME_DEFAULT:
        name = pb.Signal.Name(chosen)
        try:
            return int(getattr(signal, name))
        except AttributeError:
            raise Unknown(f'failed to parse stop signal "{name}"') from None
    return int(signal.SIGTERM)


async def stop_container(c: CriService, record: ContainerRecord, timeout: int) -> None:
    started = time.monotonic()
    state = record.state
    if state not in (pb.CONTAINER_RUNNING, pb.CONTAINER_UNKNOWN):
        log.info('Container to stop "%s" must be in running or unknown state, current state "%s"', record.id,
                 STATE_NAMES.get(state, str(state)))
        return
    try:
        task = await record.container.task()
    except NotFound:
        return
    if timeout > 0:
        sig = _stop_signal(record)
        # Go prints a syscall.Signal by its description ("terminated").
        log.info('Stop container "%s" with signal %s', record.id, (signal.strsignal(sig) or str(sig)).lower())
        try:
            await task.kill(sig)
        except NotFound:
            pass
        try:
            await asyncio.wait_for(asyncio.shield(record.stopped.wait()), timeout)
            return
        except asyncio.TimeoutError:
            log.debug('Stop container "%s" with signal %s timed out', record.id, sig)
    log.info('Kill container "%s"', record.id)
    try:
        await task.kill(signal.SIGKILL)
    except NotFound:
        pass
    await record.stopped.wait()
    add_event("container stopped", {"container.id": record.id,
                                    "container.stop.duration": go_duration(time.monotonic() - started)})
