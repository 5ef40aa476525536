"""The tasks service the Go client calls in-process (plugins/services/tasks/local.go) over the runtime's task
manager (core/runtime/v2 task_manager.go, shim.go, process.go), as containerd v2.4.2 makes its shim calls.

Which ttrpc calls each operation makes (and so which CLIENT spans sit under the client's span) follows the
Go code: ``create`` starts or joins the pod's shim, then Create and Connect (the task's pid); ``start`` is
Start then State; ``get`` is State (an exec: State to find the process, State again for its status);
``wait`` is Connect then Wait (an exec: State, Wait); ``kill`` is Kill (an exec: State first); ``delete`` is
Delete then Shutdown; ``delete_process`` is State then Delete; ``metrics`` is Stats per task.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from google.protobuf import any_pb2

from cristack.wire.errors import AlreadyExists, NotFound
from cristack.wire.pb.containerd.runtime.task.v3 import shim_pb2 as api
from cristack.wire.pb.containerd.types import mount_pb2
from fake_containerd.runtime.shim import ShimManager, ShimTask, prepare_bundle, remove_bundle

log = logging.getLogger(__name__)

# task status values (containerd/api/types/task: UNKNOWN, CREATED, RUNNING, STOPPED, PAUSED, PAUSING)
UNKNOWN, CREATED, RUNNING, STOPPED, PAUSED, PAUSING = range(6)
STATUS_NAMES = {UNKNOWN: "unknown", CREATED: "created", RUNNING: "running", STOPPED: "stopped",
                PAUSED: "paused", PAUSING: "pausing"}


@dataclass(frozen=True)
class TaskSpec:
    """What CreateTaskRequest carries that the CRI decides: the OCI spec, the stdio URIs, the runtime."""

    container_id: str
    spec: dict
    runtime: str
    sandbox_id: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False
    snapshot_key: str = ""


def _rootfs(spec: TaskSpec, root: str) -> list[mount_pb2.Mount]:
    """The snapshot's mount as the overlayfs snapshotter would hand it over (nothing is mounted here)."""
    key = spec.snapshot_key or spec.container_id
    snap = f"{root}/io.containerd.snapshotter.v1.overlayfs/snapshots/{key}"
    return [mount_pb2.Mount(type="overlay", source="overlay",
                            options=[f"workdir={snap}/work", f"upperdir={snap}/fs", "lowerdir=/var/empty"])]


class Tasks:
    """The tasks service: containers' tasks and their processes, each call through its pod's shim."""

    def __init__(self, manager: ShimManager, root: str) -> None:
        self.manager = manager
        self.root = root

    def _task(self, container_id: str) -> ShimTask:
        return self.manager.get(container_id)

    async def create(self, spec: TaskSpec) -> int:
        """local.Create > TaskManager.Create: the bundle, the shim, Create, then the pid (Connect)."""
        if container_id_in_use(self.manager, spec.container_id):
            raise AlreadyExists(f"task {spec.container_id}: already exists")
        log.debug("creating task", extra={"fields": {"id": spec.container_id, "runtime": spec.runtime}})
        bundle = prepare_bundle(self.manager, spec.container_id, spec.spec)
        try:
            task = await self.manager.start(spec.container_id, spec.sandbox_id)
            rootfs = _rootfs(spec, self.root)
            log.debug("activating mount", extra={"fields": {"name": spec.container_id, "mounts": json.dumps(
                [{"Type": m.type, "Source": m.source, "Target": m.target, "Options": list(m.options)}
                 for m in rootfs])}})
            await task.create(api.CreateTaskRequest(
                id=spec.container_id, bundle=str(bundle), rootfs=rootfs, terminal=spec.terminal,
                stdout=spec.stdout, stderr=spec.stderr))
            return await task.pid()
        except BaseException:
            await self.manager.forget(spec.container_id)
            remove_bundle(self.manager, spec.container_id)
            raise

    async def start(self, container_id: str, exec_id: str = "") -> int:
        task = self._task(container_id)
        if exec_id:
            await task.state(exec_id)  # t.Process(ctx, execID)
        await task.start(exec_id)
        return (await task.state(exec_id)).pid

    async def get(self, container_id: str, exec_id: str = "") -> api.StateResponse:
        task = self._task(container_id)
        if exec_id:
            await task.state(exec_id)
        return await task.state(exec_id)

    async def wait(self, container_id: str, exec_id: str = "") -> api.WaitResponse:
        task = self._task(container_id)
        if exec_id:
            await task.state(exec_id)
        else:
            await task.pid()  # shimTask.Wait asks for the pid first
        return await task.wait(exec_id)

    async def kill(self, container_id: str, signal: int, all_: bool = False, exec_id: str = "") -> None:
        task = self._task(container_id)
        if exec_id:
            await task.state(exec_id)
        await task.kill(signal, all_, exec_id)

    async def exec(self, container_id: str, exec_id: str, process: dict, stdout: str, stderr: str) -> None:
        spec = any_pb2.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/Process",
                           value=json.dumps(process).encode())
        await self._task(container_id).exec(api.ExecProcessRequest(
            id=container_id, exec_id=exec_id, stdout=stdout, stderr=stderr, spec=spec))

    async def delete_process(self, container_id: str, exec_id: str) -> api.DeleteResponse:
        task = self._task(container_id)
        await task.state(exec_id)
        return await task.delete(exec_id)

    async def delete(self, container_id: str) -> api.DeleteResponse:
        """local.Delete > shimTask.delete: Delete, then Shutdown (the shim exits once it runs nothing)."""
        task = self._task(container_id)
        resp = await task.delete()
        await task.shutdown()
        await self.manager.forget(container_id)
        remove_bundle(self.manager, container_id)
        return resp

    async def update(self, container_id: str, annotations: dict[str, str]) -> None:
        await self._task(container_id).update(annotations)

    async def metrics(self, container_ids: list[str]) -> dict[str, api.StatsResponse]:
        """local.Metrics: Stats of each task that exists; one that is gone is skipped."""
        out = {}
        for cid in container_ids:
            task = self.manager.tasks.get(cid)
            if task is None:
                continue
            try:
                out[cid] = await task.stats()
            except NotFound:
                continue
        return out

    def exists(self, container_id: str) -> bool:
        return container_id in self.manager.tasks


def container_id_in_use(manager: ShimManager, container_id: str) -> bool:
    return container_id in manager.tasks
