"""Pod workers (pkg/kubelet/pod_workers.go): one asyncio task per pod that runs the kubelet's sync functions
(pkg/kubelet/kubelet.go), one at a time.

- ``syncPod``: Version (on the pod's first syncs), then the runtime manager's SyncPod
  (kuberuntime_manager.py), which makes the runtime match the manifest.
- ``syncTerminatingPod``: StopContainer for every running container in parallel, StopPodSandbox,
  then the pod's fresh status (ListPodSandbox, ListContainers, PodSandboxStatus, ContainerStatus).
- ``syncTerminatedPod``: no CRI calls; dead containers are removed later by the container
  deletor or the container garbage collector.

The steps are the kubelet's own files' (pod_state.py holds what they share): kuberuntime_manager,
kuberuntime_sandbox, kuberuntime_container, image_manager, prober and kubelet_pods (the pod's status).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
from opentelemetry import trace

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wording import plural
from fake_kubelet import events
from fake_kubelet.backoff import Backoff
from fake_kubelet.cri import CriClient, PodStatus, get_pod_status, operation
from fake_kubelet.kuberuntime_manager import RuntimeManager
from fake_kubelet.manifests import Pod
from fake_kubelet.pleg import StatusCache
from fake_kubelet.pod_state import FAILED, SUCCEEDED, PodView, SpanFactory
from fake_kubelet.prober import Prober

log = logging.getLogger(__name__)


class PodWorker(RuntimeManager, Prober):
    """Runs the sync functions for one pod, one at a time."""

    def __init__(self, pod: Pod, cri: CriClient, cache: StatusCache, pod_logs_dir: Path, backoff: Backoff,
                 image_backoff: Backoff, span: SpanFactory, on_view: Callable[[PodView], None],
                 recorder: events.EventRecorder | None = None) -> None:
        super().__init__(pod, cri, cache, pod_logs_dir, backoff, image_backoff, self._noting_traces(span), on_view,
                         recorder)
        self.wake = asyncio.Event()
        self.terminate_requested = False
        self.removed = False  # terminated because its manifest went away
        self.done = asyncio.Event()
        self.last_sync = 0.0
        self.task: asyncio.Task | None = None

    def _noting_traces(self, factory: SpanFactory) -> SpanFactory:
        """``factory``, noting the trace each sync ran in (for --runonce's result file)."""

        @contextlib.asynccontextmanager
        async def opened(name: str, pod: Pod, update_type: str) -> AsyncIterator[None]:
            async with factory(name, pod, update_type):
                ctx = trace.get_current_span().get_span_context()
                if ctx.is_valid:
                    self.view.traces.append((name, trace.format_trace_id(ctx.trace_id)))
                yield

        return opened

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod-worker-{self.pod.name}")
        self.wake.set()

    def request_terminate(self, *, removed: bool = False) -> None:
        self.terminate_requested = True
        self.removed = self.removed or removed
        self.wake.set()

    async def _run(self) -> None:
        first = True
        while True:
            timeout = None if self._retry_at is None else max(0.0, self._retry_at - time.monotonic())
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            self._retry_at = None
            if self.terminate_requested or self.view.phase in (SUCCEEDED, FAILED):
                await self._terminate()
                self.done.set()
                return
            status = await self.cache.get_newer_than(self.pod.uid, self.last_sync)
            if self.terminate_requested:
                continue
            try:
                await self.sync_pod(status, "create" if first else "sync")
            except grpc.aio.AioRpcError as err:
                log.warning("pod %s: syncPod failed: %s: %s", self.pod.full_name, err.code().name, err.details())
                self._retry_at = time.monotonic() + 1.0
            except Exception:  # a bug of ours must not kill the worker silently
                log.exception("pod %s: syncPod failed unexpectedly", self.pod.full_name)
                self._retry_at = time.monotonic() + 1.0
            first = False
            # The next sync must see a status listed after this one finished, or it would act
            # on a listing taken before (say) its CreateContainer, and create it twice.
            self.last_sync = time.monotonic()
            self.view.syncs += 1
            self.on_view(self.view)
            if self.view.phase in (SUCCEEDED, FAILED):
                self.wake.set()  # a terminal pod is torn down, as the kubelet does

    async def sync_pod(self, status: PodStatus, update_type: str) -> None:
        pod = self.pod
        async with self.span("syncPod", pod, update_type):
            token = operation.set("syncPod")
            try:
                if update_type == "create":
                    self.event("Normal", events.ADDED, f"static pod added from {pod.source}",
                               **{events.SOURCE: pod.source})
                if self.view.syncs < 2:
                    # The recordings show Version under a pod's first two syncs only (the
                    # runtime's version feeds the pod status the kubelet generates).
                    await self.cri.call("Version", pb.VersionRequest())
                await self.sync_runtime(status)
            finally:
                operation.reset(token)

    async def _terminate(self) -> None:
        self.stop_probes()
        await self.sync_terminating_pod()
        await self.sync_terminated_pod()
        self.view.terminated = True
        self.on_view(self.view)

    async def sync_terminating_pod(self) -> None:
        """Stops every running container in parallel (grace period as the timeout) and the
        sandbox, from the cached status, then reads the pod's status afresh."""
        pod = self.pod
        async with self.span("syncTerminatingPod", pod, ""):
            token = operation.set("syncTerminatingPod")
            try:
                status = self.cache.statuses.get(pod.uid)
                if status is None or not status.sandboxes:
                    status = await get_pod_status(self.cri, pod.uid)
                running = [c for c in status.containers if c.state in (pb.CONTAINER_RUNNING, pb.CONTAINER_CREATED)]
                await asyncio.gather(*(self.kill_container(c) for c in running))
                for sb in status.sandboxes:
                    await self.cri.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sb.id))
                await self.cache.set(await get_pod_status(self.cri, pod.uid))
                log.info("pod %s: terminated (%s stopped)", pod.full_name, plural(len(running), "container"))
                if self.removed:
                    self.event("Normal", events.REMOVED, f"static pod manifest {pod.source} removed; pod stopped",
                               **{events.SOURCE: pod.source})
            except grpc.aio.AioRpcError as err:
                log.warning("pod %s: syncTerminatingPod: %s: %s", pod.full_name, err.code().name, err.details())
            finally:
                operation.reset(token)

    async def sync_terminated_pod(self) -> None:
        """Marks the pod terminated: no CRI calls (the kubelet cleans up volumes and cgroups
        here, which a mock has none of)."""
        async with self.span("syncTerminatedPod", self.pod, ""):
            log.info("pod %s: terminated", self.pod.full_name)
