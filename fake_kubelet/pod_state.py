"""What a pod's worker knows while it syncs the pod, shared by the kubelet's steps that each module adds to it
(pod_workers, kuberuntime_manager, kuberuntime_sandbox, kuberuntime_container, image_manager, prober,
kubelet_pods): the pod, the runtime, the back-offs, the status cache and the view it reports."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_kubelet import events
from fake_kubelet.backoff import Backoff
from fake_kubelet.cri import ContainerState, CriClient
from fake_kubelet.manifests import Container, Pod
from fake_kubelet.pleg import StatusCache

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
BACKOFF_REASONS = ("CrashLoopBackOff", "ImagePullBackOff")


class SyncError(Exception):
    """A step of syncPod failed; the reason is the kubelet's (ErrImagePull, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass
class ContainerView:
    """What the kubelet reports about one container (its waiting/running/terminated state)."""

    name: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int | None = None
    restart_count: int = 0
    container_id: str = ""
    ready: bool = False


@dataclass
class PodView:
    pod: Pod
    phase: str = PENDING
    containers: dict[str, ContainerView] = field(default_factory=dict)
    sandbox_id: str = ""
    syncs: int = 0
    terminated: bool = False
    sandbox_error: str = ""
    traces: list[tuple[str, str]] = field(default_factory=list)  # (sync function, trace id) of each traced sync


# Opens the span of a sync function: (name, pod, update type) -> async context manager.
SpanFactory = Callable[[str, Pod, str], contextlib.AbstractAsyncContextManager[None]]


class PodState:
    """One pod's state for its worker and the steps it runs."""

    def __init__(self, pod: Pod, cri: CriClient, cache: StatusCache, pod_logs_dir: Path, backoff: Backoff,
                 image_backoff: Backoff, span: SpanFactory, on_view: Callable[[PodView], None],
                 recorder: events.EventRecorder | None = None) -> None:
        self.pod = pod
        self.recorder = recorder or events.EventRecorder(None, "")
        self.cri = cri
        self.cache = cache
        self.pod_logs_dir = pod_logs_dir
        self.backoff = backoff
        self.image_backoff = image_backoff
        self.span = span
        self.on_view = on_view
        self.view = PodView(pod, containers={c.name: ContainerView(c.name) for c in
                                             (*pod.init_containers, *pod.containers)})
        self._reported: set[tuple[str, str]] = set()  # (reason, container id): events recorded once per instance
        self._retry_at: float | None = None
        self.probes: dict[str, asyncio.Task] = {}  # container id → its prober

    def event(self, kind: str, reason: str, message: str, container: str = "", **notes: str) -> None:
        """Records a pod event (about one container when ``container`` is given) in the current span's trace."""
        pod = self.pod
        init = any(c.name == container for c in pod.init_containers)
        self.recorder.record(events.pod_ref(pod.namespace, pod.name, pod.uid, container, init=init), kind, reason,
                             message, notes)

    def retry_in(self, seconds: float) -> None:
        """The worker syncs again in ``seconds`` at the latest (a back-off's end)."""
        at = time.monotonic() + seconds
        self._retry_at = at if self._retry_at is None else min(self._retry_at, at)

    def first(self, key: tuple[str, str]) -> bool:
        """Whether ``key`` is new (and remembers it): syncs that look again at the same exited container
        report it once."""
        new = key not in self._reported
        self._reported.add(key)
        return new

    def spec(self, name: str) -> Container | None:
        """The pod's (regular) container named ``name``."""
        return next((x for x in self.pod.containers if x.name == name), None)

    # Defined by the step modules (see fake_kubelet.pod_workers.PodWorker); named here for the steps that call
    # across modules.
    def manage_probes(self, c: ContainerState) -> None:
        raise NotImplementedError

    async def start_container(self, spec: Container, sandbox_id: str, attempt: int) -> None:
        raise NotImplementedError

    def sandbox_config(self, attempt: int, log_dir: Path | None = None) -> pb.PodSandboxConfig:
        raise NotImplementedError
