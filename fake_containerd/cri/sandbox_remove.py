"""RemovePodSandbox (internal/cri/server/sandbox_remove.go of containerd v2.4.2): the sandbox forcibly stopped
(again: a stopped one takes no time), its containers removed, the pause container deleted (podsandbox
shutdown: ``container.Delete``), the sandbox's metadata deleted (``metadata.sandbox.Delete``), its name given
back; ``pod sandbox removed`` with the time it took. An unknown id is removed already."""

from __future__ import annotations

import logging
import time

from opentelemetry import trace

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.cri import podsandbox
from fake_containerd.cri.container_remove import remove_container
from fake_containerd.cri.images.image_pull import go_duration
from fake_containerd.cri.sandbox_stop import stop_sandbox
from fake_containerd.cri.service import CriService
from fake_containerd.tracing import add_event

log = logging.getLogger(__name__)


async def remove_pod_sandbox(c: CriService, sandbox_id: str) -> None:
    started = time.monotonic()
    try:
        sandbox = c.stores.sandbox(sandbox_id)
    except NotFound:
        return  # RemovePodSandbox called for a sandbox that does not exist
    trace.get_current_span().set_attribute("sandbox.id", sandbox.id)
    log.info('Forcibly stopping sandbox "%s"', sandbox.id)
    await stop_sandbox(c, sandbox)
    for record in c.stores.containers_of(sandbox.id):
        await remove_container(c, record.id)
    await podsandbox.shutdown(c, sandbox)
    c.send_event(sandbox.id, sandbox.id, pb.CONTAINER_DELETED_EVENT)
    c.stores.sandboxes.pop(sandbox.id, None)
    try:
        c.client.metadata.delete_sandbox(sandbox.id)
    except NotFound:
        log.warning('failed to delete sandbox metadata from store: "%s" maybe recovered from v1.x release', sandbox.id)
    c.stores.sandbox_names.release(sandbox.name)
    add_event("pod sandbox removed", {"sandbox.remove.duration": go_duration(time.monotonic() - started)})
