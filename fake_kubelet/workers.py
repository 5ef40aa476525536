"""Pod workers: one asyncio task per pod that runs the kubelet's sync functions.

The CRI calls under each span are the recorded ones (tests/data/real/kubelet/, from
pkg/kubelet/kubelet.go and pkg/kubelet/kuberuntime/kuberuntime_manager.go of v1.36.3):

- ``syncPod``: Version (on the pod's first syncs), then make the runtime match the manifest:
  sandbox (RunPodSandbox, PodSandboxStatus), init containers in order, then containers, each
  through the image manager (PullImage when the pull policy says so, else ImageStatus; then
  ImageStatus for the image's ref and user), CreateContainer, StartContainer, honouring restart
  policy and back-offs.
- ``syncTerminatingPod``: StopContainer for every running container in parallel, StopPodSandbox,
  then the pod's fresh status (ListPodSandbox, ListContainers, PodSandboxStatus, ContainerStatus).
- ``syncTerminatedPod``: no CRI calls; dead containers are removed later by the container
  deletor or the container garbage collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from cristack.config.durations import go_duration_seconds
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wording import plural
from fake_kubelet import events
from fake_kubelet.backoff import Backoff, should_restart
from fake_kubelet.cri import (
    CONTAINER_NAME_LABEL,
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
    RESTART_COUNT_ANNOTATION,
    UID_LABEL,
    ContainerState,
    CriClient,
    PodStatus,
    get_pod_status,
    operation,
)
from fake_kubelet.manifests import Container, Pod
from fake_kubelet.pleg import StatusCache

log = logging.getLogger(__name__)

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


class PodWorker:
    """Runs the sync functions for one pod, one at a time."""

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
        self.span = self._noting_traces(span)
        self.on_view = on_view
        self.view = PodView(pod, containers={c.name: ContainerView(c.name) for c in
                                             (*pod.init_containers, *pod.containers)})
        self.wake = asyncio.Event()
        self.terminate_requested = False
        self.removed = False  # terminated because its manifest went away
        self._reported: set[tuple[str, str]] = set()  # (reason, container id): events recorded once per instance
        self.done = asyncio.Event()
        self.last_sync = 0.0
        self._retry_at: float | None = None
        self.task: asyncio.Task | None = None
        self.probes: dict[str, asyncio.Task] = {}  # container id → its prober

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

    def event(self, kind: str, reason: str, message: str, container: str = "", **notes: str) -> None:
        """Records a pod event (about one container when ``container`` is given) in the current span's trace."""
        pod = self.pod
        init = any(c.name == container for c in pod.init_containers)
        self.recorder.record(events.pod_ref(pod.namespace, pod.name, pod.uid, container, init=init), kind, reason,
                             message, notes)

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

    # -- syncPod

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
                await self._sync_pod(status)
            finally:
                operation.reset(token)

    async def _sync_pod(self, status: PodStatus) -> None:
        pod = self.pod
        sandbox = status.sandbox
        if sandbox is None or sandbox.state != pb.SANDBOX_READY:
            if sandbox is not None and pod.restart_policy == "Never" and status.containers:
                self._set_phase(FAILED, "the pod sandbox died and restartPolicy is Never")
                return
            attempt = sandbox.attempt + 1 if sandbox is not None else 0
            try:
                sandbox_id = await self._run_sandbox(attempt)
            except grpc.aio.AioRpcError as err:
                reason = f"CreatePodSandboxError: {err.code().name}: {err.details()}"
                trace.get_current_span().set_status(Status(StatusCode.ERROR, reason))
                if self.view.sandbox_error != reason:
                    log.warning("pod %s: %s", pod.full_name, reason)
                self.view.sandbox_error = reason
                self._retry_in(self.backoff.next(f"{pod.uid}/sandbox"))
                return
            self.view.sandbox_error = ""
            containers: list[ContainerState] = []
        else:
            sandbox_id = sandbox.id
            containers = status.containers_in(sandbox_id)
        self.view.sandbox_id = sandbox_id
        latest = {}
        for c in containers:
            if c.name not in latest or (c.attempt, c.created_at) > (latest[c.name].attempt, latest[c.name].created_at):
                latest[c.name] = c
        for c in latest.values():
            self._observe(c)

        # Init containers, one at a time, each to success before the next.
        for spec in pod.init_containers:
            current = latest.get(spec.name)
            if current is None:
                await self._start(spec, sandbox_id, 0)
                return self._update_phase(latest)
            if current.state in (pb.CONTAINER_CREATED, pb.CONTAINER_RUNNING):
                return self._update_phase(latest)
            if current.exit_code == 0:
                continue
            if pod.restart_policy == "Never":
                self._set_phase(FAILED, f"init container {spec.name} exited with {current.exit_code}")
                return
            await self._restart(spec, sandbox_id, current)
            return self._update_phase(latest)

        for spec in pod.containers:
            current = latest.get(spec.name)
            if current is None:
                await self._start(spec, sandbox_id, 0)
            elif current.state == pb.CONTAINER_EXITED and should_restart(pod.restart_policy, current.exit_code):
                await self._restart(spec, sandbox_id, current)
        self._update_phase(latest)

    async def _run_sandbox(self, attempt: int) -> str:
        pod = self.pod
        log_dir = self.pod_logs_dir / f"{pod.namespace}_{pod.name}_{pod.uid}"
        config = self._sandbox_config(attempt, log_dir)
        resp = await self.cri.call("RunPodSandbox", pb.RunPodSandboxRequest(
            config=config, runtime_handler=pod.runtime_class))
        await self.cri.call("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=resp.pod_sandbox_id))
        log.info("pod %s: sandbox %s ready (attempt %d)", pod.full_name, resp.pod_sandbox_id[:13], attempt)
        return resp.pod_sandbox_id

    def _sandbox_config(self, attempt: int, log_dir: Path | None = None) -> pb.PodSandboxConfig:
        pod = self.pod
        log_dir = log_dir or self.pod_logs_dir / f"{pod.namespace}_{pod.name}_{pod.uid}"
        labels = {**pod.labels, POD_NAME_LABEL: pod.name, POD_NAMESPACE_LABEL: pod.namespace, UID_LABEL: pod.uid}
        annotations = {**pod.annotations, "kubernetes.io/config.source": "file",
                       "kubernetes.io/config.hash": pod.uid}
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=pod.name, uid=pod.uid, namespace=pod.namespace, attempt=attempt),
            hostname=pod.name, log_directory=str(log_dir), labels=labels, annotations=annotations,
            linux=pb.LinuxPodSandboxConfig())

    async def _restart(self, spec: Container, sandbox_id: str, current: ContainerState) -> None:
        key = f"{self.pod.uid}/{spec.name}"
        # The kubelet counts the window from the container's finish (doBackOff: IsInBackOffSince(key, finishedAt)).
        finished = current.finished_at / 1e9 if current.finished_at else self.backoff.clock()
        left = self.backoff.in_backoff_since(key, finished)
        view = self.view.containers[spec.name]
        if left > 0:
            if self._first((events.BACKOFF, current.id)):  # once per window (the real recorder counts repeats)
                self.event("Warning", events.BACKOFF, f"Back-off restarting failed container {spec.name} in pod "
                           f"{self.pod.name}_{self.pod.namespace}({self.pod.uid})", spec.name,
                           **{events.BACK_OFF: go_duration_seconds(self.backoff.delay(key))})
            self._waiting(view, "CrashLoopBackOff",
                          f"back-off {go_duration_seconds(self.backoff.delay(key))} restarting failed "
                          f"container={spec.name} pod={self.pod.name}_{self.pod.namespace}({self.pod.uid})")
            self._retry_in(left)
            return
        self.backoff.next(key, finished)  # the next crash's window is this delay doubled
        await self._start(spec, sandbox_id, current.attempt + 1)

    async def _start(self, spec: Container, sandbox_id: str, attempt: int) -> None:
        """The kubelet's startContainer: ensure the image, create, start."""
        view = self.view.containers[spec.name]
        view.restart_count = attempt
        try:
            image_ref = await self._ensure_image(spec)
            config = self._container_config(spec, attempt, image_ref)
            try:
                created = await self.cri.call("CreateContainer", pb.CreateContainerRequest(
                    pod_sandbox_id=sandbox_id, config=config, sandbox_config=self._sandbox_config(0)))
            except grpc.aio.AioRpcError as err:
                self.event("Warning", events.FAILED, f"Error: {err.details() or err.code().name}", spec.name)
                raise SyncError("CreateContainerError", err.details() or err.code().name) from None
            self.event("Normal", events.CREATED, f"Created container: {spec.name}", spec.name)
            try:
                await self.cri.call("StartContainer", pb.StartContainerRequest(container_id=created.container_id))
            except grpc.aio.AioRpcError as err:
                self.event("Warning", events.FAILED, f"Error: {err.details() or err.code().name}", spec.name)
                raise SyncError("RunContainerError", err.details() or err.code().name) from None
        except SyncError as err:
            self._waiting(view, err.reason, err.message)
            return
        self.event("Normal", events.STARTED, f"Started container {spec.name}", spec.name)
        view.container_id = created.container_id
        if view.state != "running":
            view.state, view.reason, view.message, view.exit_code = "running", "", "", None
            log.info("pod %s: container %s started (restart count %d)", self.pod.full_name, spec.name, attempt)

    async def _ensure_image(self, spec: Container) -> str:
        """The image manager: ImageStatus, PullImage if the policy says so, ImageStatus again."""
        key = f"{self.pod.uid}/{spec.name}/{spec.image}"
        present = False
        if spec.image_pull_policy != "Always":
            status = await self.cri.call("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=spec.image)))
            present = status.HasField("image")
        if present and spec.image_pull_policy != "Always":
            self.event("Normal", events.PULLED, f'Container image "{spec.image}" already present on machine',
                       spec.name)
        if spec.image_pull_policy == "Never" and not present:
            self.event("Warning", events.ERR_IMAGE_NEVER_PULL,
                       f'Container image "{spec.image}" is not present with pull policy of Never', spec.name)
            raise SyncError("ErrImageNeverPull",
                            f'Container image "{spec.image}" is not present with pull policy of Never')
        if not present:
            left = self.image_backoff.in_backoff(key)
            if left > 0:
                self._retry_in(left)
                if self.view.containers[spec.name].reason != "ImagePullBackOff":
                    self.event("Normal", events.BACKOFF, f'Back-off pulling image "{spec.image}"', spec.name,
                               **{events.BACK_OFF: go_duration_seconds(self.image_backoff.delay(key))})
                raise SyncError("ImagePullBackOff", f'Back-off pulling image "{spec.image}"')
            self.event("Normal", events.PULLING, f'Pulling image "{spec.image}"', spec.name)
            started = time.monotonic()
            try:
                await self.cri.call("PullImage", pb.PullImageRequest(
                    image=pb.ImageSpec(image=spec.image), sandbox_config=self._sandbox_config(0)))
            except grpc.aio.AioRpcError as err:
                delay = self.image_backoff.next(key)
                self._retry_in(delay)
                self.event("Warning", events.FAILED, f'Failed to pull image "{spec.image}": {err.details()}',
                           spec.name, **{events.BACK_OFF: go_duration_seconds(delay)})
                raise SyncError("ErrImagePull", f'failed to pull image "{spec.image}": {err.details()}') from None
            self.event("Normal", events.PULLED, f'Successfully pulled image "{spec.image}" in '
                       f"{time.monotonic() - started:.3f}s", spec.name)
            self.image_backoff.reset(key)
            status = await self.cri.call("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=spec.image)))
        # The container config generator looks the image up once more (its user and ref).
        await self.cri.call("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=spec.image)))
        return status.image.id or spec.image

    def _container_config(self, spec: Container, attempt: int, image_ref: str) -> pb.ContainerConfig:
        pod = self.pod
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=spec.name, attempt=attempt),
            image=pb.ImageSpec(image=image_ref, user_specified_image=spec.image),
            command=list(spec.command), args=list(spec.args), working_dir=spec.working_dir,
            envs=[pb.KeyValue(key=k, value=v) for k, v in spec.env],
            labels={CONTAINER_NAME_LABEL: spec.name, POD_NAME_LABEL: pod.name,
                    POD_NAMESPACE_LABEL: pod.namespace, UID_LABEL: pod.uid},
            annotations={RESTART_COUNT_ANNOTATION: str(attempt),
                         "io.kubernetes.container.terminationMessagePath": "/dev/termination-log"},
            log_path=f"{spec.name}/{attempt}.log", linux=pb.LinuxContainerConfig(), tty=spec.tty,
            stdin=spec.stdin)

    def _retry_in(self, seconds: float) -> None:
        at = time.monotonic() + seconds
        self._retry_at = at if self._retry_at is None else min(self._retry_at, at)

    # -- views and phases

    def _observe(self, c: ContainerState) -> None:
        view = self.view.containers.get(c.name)
        if view is None:
            return
        self._manage_probes(c)
        view.container_id, view.restart_count = c.id, c.attempt
        if c.state == pb.CONTAINER_RUNNING:
            new = ("running", "", None)
        elif c.state == pb.CONTAINER_EXITED:
            new = ("terminated", c.reason or ("Completed" if c.exit_code == 0 else "Error"), c.exit_code)
        else:
            new = ("waiting", "ContainerCreating", None)
        spec = next((x for x in self.pod.containers if x.name == c.name), None)
        if c.state != pb.CONTAINER_RUNNING:
            view.ready = False
        elif spec is not None and spec.readiness_probe is None:
            view.ready = True  # no readiness probe: ready while it runs
        if (view.state, view.reason, view.exit_code) != new:
            view.state, view.reason, view.exit_code = new
            view.message = c.message
            if view.state == "terminated" and self._first((events.EXITED, c.id)):
                log.info("pod %s: container %s terminated: %s (exit code %d)", self.pod.full_name, c.name,
                         view.reason, c.exit_code)
                self.event("Normal" if c.exit_code == 0 else "Warning", events.EXITED,
                           f"Container {c.name} exited with code {c.exit_code} ({view.reason})", c.name,
                           **{events.EXIT_CODE: str(c.exit_code)})

    def _first(self, key: tuple[str, str]) -> bool:
        """Whether ``key`` is new (and remembers it): syncs that look again at the same exited container
        report it once."""
        new = key not in self._reported
        self._reported.add(key)
        return new

    def _waiting(self, view: ContainerView, reason: str, message: str) -> None:
        # syncPod fails with this error, as the kubelet's does: the span shows it.
        span = trace.get_current_span()
        span.add_event("exception", {"exception.type": reason, "exception.message": message})
        span.set_status(Status(StatusCode.ERROR, f'failed to "StartContainer" for "{view.name}" with {reason}'))
        if (view.state, view.reason) != ("waiting", reason):
            log.warning("pod %s: container %s waiting: %s: %s", self.pod.full_name, view.name, reason, message)
        view.state, view.reason, view.message, view.exit_code = "waiting", reason, message, None

    def _set_phase(self, phase: str, why: str = "") -> None:
        if phase != self.view.phase:
            log.info("pod %s: phase %s -> %s%s", self.pod.full_name, self.view.phase, phase,
                     f" ({why})" if why else "")
            self.view.phase = phase

    def _update_phase(self, latest: dict[str, ContainerState]) -> None:
        pod = self.pod
        views = [self.view.containers[c.name] for c in pod.containers]
        if any(v.state == "running" for v in views):
            self._set_phase(RUNNING)
        elif pod.restart_policy != "Always" and all(v.state == "terminated" for v in views):
            if all(not v.exit_code for v in views):
                self._set_phase(SUCCEEDED)
            elif pod.restart_policy == "Never":
                self._set_phase(FAILED)
        # Otherwise the phase stands: Pending until something ran, Running while restarting.

    def finished_reason(self) -> str | None:
        """For --runonce: None while the pod is still working towards an outcome, '' when it
        succeeded (or, with restartPolicy Always, runs), else why it failed."""
        if self.view.phase == SUCCEEDED:
            return ""
        if self.view.phase == FAILED:
            bad = [f"{v.name}: {v.reason} (exit code {v.exit_code})" for v in self.view.containers.values()
                   if v.state == "terminated" and v.exit_code]
            return "; ".join(bad) or "failed"
        if self.view.sandbox_error:
            return self.view.sandbox_error
        for v in self.view.containers.values():
            if v.state == "waiting" and v.reason in (*BACKOFF_REASONS, "ErrImagePull", "ErrImageNeverPull",
                                                      "CreateContainerError", "RunContainerError"):
                return f"{v.name}: {v.reason}: {v.message}"
        if self.pod.restart_policy == "Always" and all(
                self.view.containers[c.name].state == "running" for c in self.pod.containers):
            return ""
        return None

    # -- probes

    def _manage_probes(self, c: ContainerState) -> None:
        spec = next((x for x in self.pod.containers if x.name == c.name), None)
        if spec is None or (spec.readiness_probe is None and spec.liveness_probe is None):
            return
        if c.state == pb.CONTAINER_RUNNING and c.id not in self.probes:
            self.probes[c.id] = asyncio.create_task(self._probe(spec, c.id), name=f"probe-{spec.name}")
        elif c.state != pb.CONTAINER_RUNNING and c.id in self.probes:
            self.probes.pop(c.id).cancel()

    def stop_probes(self) -> None:
        for task in self.probes.values():
            task.cancel()
        self.probes.clear()

    async def _probe(self, spec: Container, container_id: str) -> None:
        """The prober: ExecSync every period, outside any sync (so each probe is a trace of its
        own, as in the kubelet); readiness is reported, liveness failures restart the container."""
        otel_context.attach(otel_context.Context())
        operation.set("prober")
        view = self.view.containers[spec.name]
        probes = [(kind, p) for kind, p in (("readiness", spec.readiness_probe), ("liveness", spec.liveness_probe))
                  if p is not None]
        await asyncio.sleep(min(p.initial_delay for _, p in probes))
        failures = {kind: 0 for kind, _ in probes}
        while True:
            for kind, probe in probes:
                try:
                    resp = await self.cri.call("ExecSync", pb.ExecSyncRequest(
                        container_id=container_id, cmd=list(probe.command), timeout=probe.timeout),
                        timeout=probe.timeout + 5)
                    ok = resp.exit_code == 0
                except grpc.aio.AioRpcError as err:
                    if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                        return  # the container is gone; PLEG takes it from here
                    ok = False
                failures[kind] = 0 if ok else failures[kind] + 1
                if kind == "readiness" and view.ready != ok and (ok or failures[kind] >= probe.failure_threshold):
                    view.ready = ok
                    log.info("pod %s: container %s %s", self.pod.full_name, spec.name, "ready" if ok else "not ready")
                    self.on_view(self.view)
                if kind == "liveness" and failures[kind] >= probe.failure_threshold:
                    log.warning("pod %s: container %s failed its liveness probe %d times; restarting it",
                                self.pod.full_name, spec.name, failures[kind])
                    await self.cri.call("StopContainer", pb.StopContainerRequest(
                        container_id=container_id, timeout=self.pod.termination_grace_period))
                    return
            await asyncio.sleep(min(p.period for _, p in probes))

    # -- termination

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
                await asyncio.gather(*(self._stop_container(c) for c in running))
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

    async def _stop_container(self, c: ContainerState) -> None:
        self.event("Normal", events.KILLING, f"Stopping container {c.name}", c.name)
        await self.cri.call("StopContainer", pb.StopContainerRequest(
            container_id=c.id, timeout=self.pod.termination_grace_period),
            timeout=self.pod.termination_grace_period + self.cri.timeout)

    async def sync_terminated_pod(self) -> None:
        """Marks the pod terminated: no CRI calls (the kubelet cleans up volumes and cgroups
        here, which a mock has none of)."""
        async with self.span("syncTerminatedPod", self.pod, ""):
            log.info("pod %s: terminated", self.pod.full_name)
