"""The CRI plugin's NRI adaptation as it shows in a trace (internal/cri/nri/nri_api_linux.go of containerd
v2.4.2): NRI is on by default, and with no NRI plugin connected the only trace of it is the container lookup it
makes for each event (StartContainer, PostStartContainer, a container's exit): ``nriContainer`` loads the
container's task with ``ctrdutil.NamespacedContext()``, a background context, so each lookup is a root
``containerd.task.v3.Task/State`` span (recorded: nine such roots in a lifecycle run)."""

from __future__ import annotations

import logging

from cristack.wire.errors import NotFound, RpcError
from fake_containerd.cri.store import ContainerRecord
from fake_containerd.tracing import ContainerdTracing

log = logging.getLogger(__name__)


class Nri:
    def __init__(self, tracing: ContainerdTracing, enabled: bool = True) -> None:
        self.tracing = tracing
        self.enabled = enabled

    async def container(self, record: ContainerRecord) -> int:
        """nriContainer: the container's task pid (0 without a task), from a background context."""
        if not self.enabled:
            return 0
        with self.tracing.background():
            try:
                task = await record.container.task()
            except NotFound:
                return 0
            except RpcError as err:
                log.error("failed to get task for container %s: %s", record.id, err)
                return 0
            return task.pid
