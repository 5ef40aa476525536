"""RemoveContainer (internal/cri/server/container_remove.go of containerd v2.4.2): a running container is
stopped first (forcibly, no grace); the containerd container is deleted (``container.Delete`` with
``metadata.containers.Delete``); the record, its name and its log go; ``container removed`` with the time it
took. An unknown id is removed already."""

from __future__ import annotations

import logging
import time

from opentelemetry import trace

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.cri.container_stop import stop_container
from fake_containerd.cri.errors import Unknown
from fake_containerd.cri.images.image_pull import go_duration
from fake_containerd.cri.service import CriService
from fake_containerd.tracing import add_event

log = logging.getLogger(__name__)


async def remove_container(c: CriService, container_id: str) -> None:
    started = time.monotonic()
    try:
        record = c.stores.container(container_id)
    except NotFound:
        return  # RemoveContainer called for a container that does not exist
    trace.get_current_span().set_attribute("container.id", record.id)
    if record.state in (pb.CONTAINER_RUNNING, pb.CONTAINER_UNKNOWN):
        await stop_container(c, record, 0)
    if record.removing:
        raise Unknown(f'failed to set removing state for container "{record.id}": container is already in removing '
                      "state")
    record.removing = True
    try:
        try:
            await record.container.delete()
        except NotFound:
            pass
        c.stores.containers.pop(record.id, None)
        c.stores.container_names.release(record.name)
    finally:
        record.removing = False
    c.send_event(record.id, record.sandbox_id, pb.CONTAINER_DELETED_EVENT)
    add_event("container removed", {"container.id": record.id,
                                    "container.remove.duration": go_duration(time.monotonic() - started)})
