"""Containers as the Go client makes and loads them (client/client.go NewContainer, client/container.go
NewTask, Delete, Task of containerd v2.4.2), with their spans: ``client.NewContainer`` (the metadata store's
``metadata.containers.Create`` under it), ``container.NewTask`` (the shim's Create and Connect under it, the
``task created`` event), ``container.Delete``."""

from __future__ import annotations

import contextlib
import logging

from cristack.wire.errors import FailedPrecondition, NotFound
from fake_containerd.client.task import Task
from fake_containerd.metadata import ContainerMeta, MetadataStore
from fake_containerd.runtime.tasks import STATUS_NAMES, STOPPED, Tasks, TaskSpec
from fake_containerd.tracing import ContainerdTracing, add_event

log = logging.getLogger(__name__)


class Client:
    """containerd.Client with in-memory services (the CRI plugin's)."""

    def __init__(self, metadata: MetadataStore, tasks: Tasks, tracing: ContainerdTracing) -> None:
        self.metadata = metadata
        self.tasks = tasks
        self.tracing = tracing

    async def new_container(self, meta: ContainerMeta, *, cdi: bool = False) -> Container:
        """client.NewContainer: the container's options run (the CRI's CDI option logs at debug), then the
        metadata record."""
        with self.tracing.span("client.NewContainer") as span:
            if cdi:
                log.debug("Container %s: CDI devices from CRI Config.CDIDevices: []", meta.id)
            stored = self.metadata.create_container(meta)
            span.set_attributes({"container.id": stored.id, "container.image.ref": stored.image,
                                 "container.runtime.name": stored.runtime,
                                 "container.snapshotter.name": stored.snapshotter})
            return Container(self, stored)

    def load(self, container_id: str) -> Container:
        return Container(self, self.metadata.container(container_id))


class Container:
    """client.container: one container's record and what can be done with it."""

    def __init__(self, client: Client, meta: ContainerMeta) -> None:
        self.client = client
        self.meta = meta

    @property
    def id(self) -> str:
        return self.meta.id

    async def new_task(self, *, stdout: str = "", stderr: str = "", terminal: bool = False) -> Task:
        tracing = self.client.tracing
        with tracing.span("container.NewTask") as span:
            spec = TaskSpec(self.meta.id, self.meta.spec, self.meta.runtime, self.meta.sandbox_id, stdout, stderr,
                            terminal, self.meta.snapshot_key)
            pid = await self.client.tasks.create(spec)
            span.set_attributes({"task.container.id": self.meta.id, "task.request.options": "<nil>",
                                 "task.runtime.name": self.meta.runtime})
            add_event("task created", {"task.process.id": pid})
            return Task(self.client.tasks, tracing, self.meta.id, pid)

    async def task(self) -> Task:
        """container.Task: load the task (the tasks service's Get: a State call); NotFound without one."""
        if not self.client.tasks.exists(self.meta.id):
            raise NotFound(f"no running task found: task {self.meta.id} not found")
        state = await self.client.tasks.get(self.meta.id)
        return Task(self.client.tasks, self.client.tracing, self.meta.id, state.pid)

    async def delete(self) -> None:
        """container.Delete (with the snapshot cleanup the CRI asks for): refused while a task runs."""
        with self.client.tracing.span("container.Delete", {"container.id": self.meta.id}):
            state = None
            if self.client.tasks.exists(self.meta.id):
                with contextlib.suppress(NotFound):  # deleted meanwhile by the exit handler: no task, as wanted
                    state = await self.client.tasks.get(self.meta.id)
                if state is not None and state.status != STOPPED:
                    raise FailedPrecondition(f"cannot delete running task {self.meta.id}: "
                                             f"{STATUS_NAMES[state.status]}: failed precondition")
            self.client.metadata.delete_container(self.meta.id)
