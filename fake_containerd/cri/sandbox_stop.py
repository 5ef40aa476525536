"""StopPodSandbox (internal/cri/server/sandbox_stop.go of containerd v2.4.2): the pod's containers stopped
(no grace), the pause container's task killed and deleted by its exit monitor (podsandbox), the network torn
down (for a pod with its own namespace), each step an event on the call's span. An unknown id is stopped."""

from __future__ import annotations

import logging
import time

from opentelemetry import trace

from cristack.wire.errors import NotFound
from fake_containerd.cri import podsandbox
from fake_containerd.cri.container_stop import stop_container
from fake_containerd.cri.images.image_pull import go_duration
from fake_containerd.cri.service import CriService
from fake_containerd.cri.store import SANDBOX_READY, SANDBOX_UNKNOWN, Sandbox
from fake_containerd.tracing import add_event

log = logging.getLogger(__name__)


async def stop_pod_sandbox(c: CriService, sandbox_id: str) -> None:
    try:
        sandbox = c.stores.sandbox(sandbox_id)
    except NotFound:
        return
    trace.get_current_span().set_attribute("sandbox.id", sandbox.id)
    await stop_sandbox(c, sandbox)


async def stop_sandbox(c: CriService, sandbox: Sandbox) -> None:
    add_event("stopping containers in the sandbox")
    started = time.monotonic()
    for record in c.stores.containers_of(sandbox.id):
        await stop_container(c, record, 0)
    if sandbox.state in (SANDBOX_READY, SANDBOX_UNKNOWN):
        await podsandbox.stop(c, sandbox)
    add_event("sandbox container stopped", {"sandbox.stop.duration": go_duration(time.monotonic() - started)})
    if sandbox.netns_path:
        add_event("start pod network teardown")
        net_started = time.monotonic()
        if c.networks.ready:
            c.networks.teardown(sandbox.id)
        sandbox.netns_path = ""
        add_event("finished pod network teardown",
                  {"network.teardown.duration": go_duration(time.monotonic() - net_started)})
    log.info('TearDown network for sandbox "%s" successfully', sandbox.id)
