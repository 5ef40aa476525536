"""The kubelet: watches static pod manifests, runs a worker per pod, relists (PLEG), does its
periodic runtime work and garbage collection (periodic.py), serves its HTTP API (api.py), and in
--runonce mode runs the pods until each is running or has finished, then returns (tearing them down first with
--runonce-teardown)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from cristack.dirwatch import DirWatch
from cristack.otel.rpctrace import KUBELET_OTELGRPC_VERSION, OTELGRPC_SCOPE, client_server_address
from cristack.otel.telemetry import Telemetry
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wording import plural
from fake_kubelet.api import OTELRESTFUL_SCOPE, OTELRESTFUL_VERSION, KubeletApi
from fake_kubelet.backoff import Backoff
from fake_kubelet.config import KubeletConfig
from fake_kubelet.cri import CriClient, operation
from fake_kubelet.events import FAILED_VALIDATION, EventRecorder
from fake_kubelet.manifests import ManifestCache, Pod, UnreadableDir, scan
from fake_kubelet.periodic import IMAGES_SCOPE, KUBERUNTIME_SCOPE, RuntimeLoops, every, keep_running
from fake_kubelet.pleg import Pleg, StatusCache
from fake_kubelet.pod_state import PodView, SpanFactory
from fake_kubelet.pod_workers import PodWorker
from fake_kubelet.result import write_result

log = logging.getLogger(__name__)


KUBELET_SCOPE = "k8s.io/kubernetes/pkg/kubelet"


def pod_span_factory(tracer: trace.Tracer, start_parent: otel_context.Context | None = None) -> SpanFactory:
    """Opens the kubelet's sync spans: each a root (a new trace), with the pod's attributes; a pod's start (the
    ``create`` syncPod) is a child of ``start_parent`` when one is given (TRACEPARENT, see envcontext)."""

    @contextlib.asynccontextmanager
    async def span(name: str, pod: Pod | None, update_type: str) -> AsyncIterator[None]:
        attrs: dict[str, str] = {}
        if pod is not None:
            attrs = {"k8s.pod.uid": pod.uid, "k8s.pod": f"{pod.namespace}/{pod.name}", "k8s.pod.name": pod.name,
                     "k8s.namespace.name": pod.namespace}
            if update_type:
                attrs["k8s.pod.update_type"] = update_type
        parent = start_parent if start_parent is not None and update_type == "create" else otel_context.Context()
        with tracer.start_as_current_span(name, context=parent, attributes=attrs):
            yield

    return span


class Kubelet:
    def __init__(self, cfg: KubeletConfig, telemetry: Telemetry | None = None,
                 start_parent: otel_context.Context | None = None) -> None:
        self.cfg = cfg
        provider = telemetry.provider if telemetry is not None else trace.NoOpTracerProvider()
        self.span = pod_span_factory(provider.get_tracer(KUBELET_SCOPE), start_parent)
        self.cri = CriClient(cfg.runtime_endpoint, cfg.runtime_request_timeout, cfg.record_cri_calls,
                             provider.get_tracer(OTELGRPC_SCOPE, KUBELET_OTELGRPC_VERSION),
                             client_server_address(cfg.runtime_endpoint))
        self.pods: dict[str, Pod] = {}  # the pods whose manifests are present
        self.manifests = ManifestCache()  # each manifest parsed once per change, not on every scan
        self.deleted: set[str] = set()  # uids of pods whose manifest went away
        self.loops = RuntimeLoops(self.cri, cfg.node_name, provider.get_tracer(KUBERUNTIME_SCOPE),
                                  provider.get_tracer(IMAGES_SCOPE), lambda: set(self.pods), self._removable,
                                  # --runonce (ours: run to completion, tear down) leaves the logs to its caller
                                  None if cfg.runonce else cfg.pod_logs_dir)
        self.api = KubeletApi(self.cri, provider.get_tracer(OTELRESTFUL_SCOPE, OTELRESTFUL_VERSION), cfg.node_name,
                              lambda: list(self.views.values()))
        self.cache = StatusCache()
        self.pleg = Pleg(self.cri, self.cache, cfg.relist_period, self._on_pleg_change)
        self.backoff = Backoff(cfg.backoff_base, cfg.backoff_max)
        self.image_backoff = Backoff(cfg.backoff_base, cfg.backoff_max)
        self.workers: dict[str, PodWorker] = {}
        self.events = EventRecorder(cfg.events_file, cfg.node_name)
        self.finished: set[str] = set()  # uids whose pods ran to a terminal phase and were torn down
        self.views: dict[str, dict[str, Any]] = {}
        self._reported: set[str] = set()
        self._tasks: list[asyncio.Task] = []

    # -- wiring

    def _removable(self) -> set[str]:
        """Deleted pods whose workers have finished: their containers and sandboxes may go."""
        return {uid for uid in self.deleted if uid not in self.workers}

    def _on_pleg_change(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None:
            worker.wake.set()
        elif uid in self._removable():
            # The pod container deletor: a deleted pod's dead containers go as PLEG reports them.
            self._tasks.append(asyncio.create_task(self._delete_dead_containers(uid), name="container-deletor"))

    async def _delete_dead_containers(self, uid: str) -> None:
        status = self.cache.statuses.get(uid)
        for c in status.containers if status is not None else ():
            if c.state != pb.CONTAINER_EXITED:
                continue
            try:
                got = await self.cri.call("ContainerStatus", pb.ContainerStatusRequest(container_id=c.id))
                self.loops.clean_logs(got.status.log_path)  # removeContainer -> removeContainerLog
                await self.cri.call("RemoveContainer", pb.RemoveContainerRequest(container_id=c.id))
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.NOT_FOUND:  # the container GC may have been first
                    log.warning("removing container %s of deleted pod %s: %s", c.id[:13], uid, err.details())

    def _on_view(self, view: PodView) -> None:
        if view.pod.uid in self.deleted:
            return  # a deleted pod is gone from the pod manager: /pods and containerLogs no longer see it
        self.views[view.pod.uid] = {
            "metadata": {"name": view.pod.name, "namespace": view.pod.namespace, "uid": view.pod.uid},
            "spec": {"restartPolicy": view.pod.restart_policy,
                     "containers": [{"name": c.name, "image": c.image} for c in view.pod.containers]},
            "status": {"phase": view.phase, "containerStatuses": [
                {"name": c.name, "ready": c.ready, "restartCount": c.restart_count,
                 "containerID": f"cri-o://{c.container_id}"
                 if c.container_id else "",
                 "state": {c.state: {k: v for k, v in (("reason", c.reason), ("message", c.message),
                                                      ("exitCode", c.exit_code)) if v not in ("", None)}}}
                for c in view.containers.values()]},
        }

    def _start_worker(self, pod: Pod) -> PodWorker:
        worker = PodWorker(pod, self.cri, self.cache, self.cfg.pod_logs_dir, self.backoff, self.image_backoff,
                           self.span, self._on_view, self.events)
        self.workers[pod.uid] = worker
        log.info("pod %s (uid %s) added from %s", pod.full_name, pod.uid, pod.source)
        worker.start()

        def reap(_task: asyncio.Task) -> None:
            if self.workers.get(pod.uid) is worker:
                del self.workers[pod.uid]
                if not worker.terminate_requested:
                    self.finished.add(pod.uid)

        assert worker.task is not None
        worker.task.add_done_callback(reap)
        return worker

    async def sync_manifests(self) -> dict[str, Pod]:
        """Starts pods for new manifests and terminates pods whose manifest went away."""
        if self.cfg.static_pod_path is None:
            return {}
        unreadable: set[str] = set()
        try:
            # In a thread: a manifest near the 10 MiB limit takes a second or more to parse here, and the API,
            # PLEG and the pod workers go on meanwhile (the real kubelet reads its files in a goroutine of its
            # own). One scan at a time: the watch loop awaits each.
            pods, errors = await asyncio.to_thread(scan, self.cfg.static_pod_path, self.cfg.node_name, unreadable,
                                                   self.manifests)
        except UnreadableDir as err:
            # Not being able to look is not the same as the pods being gone: keep what runs.
            if str(err) not in self._reported:
                log.error("%s; keeping the %s it had", err.strerror, plural(len(self.pods), "pod"))
                self._reported.add(str(err))
            return self.pods
        # A manifest that exists but cannot be read keeps its pod (if it had one) until it reads again.
        pods.update({uid: pod for uid, pod in self.pods.items() if pod.source in unreadable and uid not in pods})
        for err in errors:
            if err not in self._reported:
                log.error("skipping static pod manifest: %s", err)
                self._reported.add(err)
                self.events.record({"kind": "Pod", "apiVersion": "v1"}, "Warning", FAILED_VALIDATION, err)
        for uid, pod in pods.items():
            if uid not in self.workers and uid not in self.finished:
                self._start_worker(pod)
        for uid, worker in list(self.workers.items()):
            if uid not in pods and not worker.terminate_requested:
                log.info("pod %s: manifest %s removed or changed; terminating", worker.pod.full_name,
                         worker.pod.source)
                worker.request_terminate(removed=True)
        self.finished &= set(pods)
        self.deleted |= set(self.pods) - set(pods)
        self.deleted -= set(pods)
        for uid in self.deleted:
            self.views.pop(uid, None)
        self.pods = pods
        return pods

    async def garbage_collect(self) -> None:
        """Containers/GarbageCollect, now (also run at the end of --runonce)."""
        token = operation.set("gc")
        try:
            await self.loops.container_gc()
        finally:
            operation.reset(token)

    # -- loops

    async def _watch_manifests(self, watch: DirWatch) -> None:
        """Reads the static pod directory when it changes (``watch``: an inotify watch, as the real kubelet's
        fsnotify watch, started before the first listing) and in any case every fileCheckFrequency."""
        async def check() -> None:
            await self.sync_manifests()

        await keep_running(self.cfg.file_check_frequency, check, "static pod check",
                           first=self.cfg.file_check_frequency, pause=watch.wait)

    async def wait_for_runtime(self, timeout: float | None = None) -> None:
        """Waits until the CRI endpoint answers Version (the runtime may start after us); RuntimeUnavailable
        after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        warned = False
        while True:
            try:
                v = await self.cri.call("Version", pb.VersionRequest(), timeout=2.0)
                log.info("container runtime %s %s (CRI %s) at %s", v.runtime_name, v.runtime_version,
                         v.runtime_api_version, self.cfg.runtime_endpoint)
                return
            except grpc.aio.AioRpcError as err:
                if deadline is not None and time.monotonic() > deadline:
                    raise RuntimeUnavailable(f"the container runtime at {self.cfg.runtime_endpoint} did not answer "
                                             f"within {timeout:g}s ({err.code().name}: {err.details()})") from None
                if not warned:
                    log.warning("container runtime at %s not ready (%s); waiting", self.cfg.runtime_endpoint,
                                err.code().name)
                    warned = True
                await asyncio.sleep(0.05)

    async def startup(self) -> None:
        """What the real kubelet asks the runtime before its loops start: Version (the runtime is
        up), ImageFsInfo (the stats provider), RuntimeConfig (the cgroup driver), Version again
        (the runtime manager)."""
        await self.wait_for_runtime(None if not self.cfg.runonce else self.cfg.runtime_request_timeout)
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self.cri.call("ImageFsInfo", pb.ImageFsInfoRequest())
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self.cri.call("RuntimeConfig", pb.RuntimeConfigRequest())
        await self.cri.call("Version", pb.VersionRequest())
        await self.update_pod_cidr()

    async def update_pod_cidr(self) -> None:
        """NewMainKubelet's updatePodCIDR(kubeCfg.PodCIDR) (pkg/kubelet/kubelet_network.go): a
        standalone kubelet hands its podCIDR to the runtime with UpdateRuntimeConfig, only when one
        is set; a failure is logged and the kubelet carries on."""
        cidr = self.cfg.pod_cidr
        if not cidr:
            return
        log.info("Updating runtime config through cri with podcidr CIDR=%s", cidr)
        request = pb.UpdateRuntimeConfigRequest(runtime_config=pb.RuntimeConfig(
            network_config=pb.NetworkConfig(pod_cidr=cidr)))
        try:
            await self.cri.call("UpdateRuntimeConfig", request)
        except grpc.aio.AioRpcError as err:
            log.error("Pod CIDR update failed: %s: %s", err.code().name, err.details())
            return
        log.info('Updating Pod CIDR originalPodCIDR="" newPodCIDR=%s', cidr)

    def _start_loops(self) -> None:
        cfg, loops = self.cfg, self.loops
        for period, fn, what, op in (
                (cfg.runtime_status_period, loops.runtime_status, "runtime status check", "status"),
                (cfg.gc_period, loops.container_gc, "container GC", "gc"),
                (cfg.image_gc_period, loops.image_gc, "image GC", "imagegc"),
                (cfg.image_cache_period, loops.image_cache, "image cache", "imagecache"),
                (cfg.housekeeping_period, loops.housekeeping, "housekeeping", "housekeeping"),
                (cfg.eviction_period, loops.eviction, "eviction manager", "eviction"),
                (cfg.log_monitor_period, loops.rotate_logs, "container log manager", "logs")):
            self._tasks.append(asyncio.create_task(every(period, fn, what, op), name=what))

    async def _serve_http(self) -> list[asyncio.AbstractServer]:
        """The API on ``port`` and, unless it is 0, the read-only API on ``readOnlyPort``. A port
        that is taken is reported and skipped (the real kubelet would exit)."""
        servers = []
        for port, read_only in ((self.cfg.port, False), (self.cfg.read_only_port, True)):
            if not port:
                continue
            try:
                servers.append(await self.api.serve(self.cfg.address, port, read_only=read_only))
            except OSError as err:
                log.error("cannot serve the kubelet API on %s:%d: %s", self.cfg.address, port, err)
                continue
            log.info("%s HTTP API on http://%s:%d", "read-only" if read_only else "kubelet", self.cfg.address, port)
        return servers

    async def run(self, stop: asyncio.Event) -> int:
        """Runs until ``stop`` is set (or, with --runonce, until the pods are done)."""
        servers: list[asyncio.AbstractServer] = []
        watch: DirWatch | None = None
        try:
            if not await _unless_stopped(self.startup(), stop):
                return 0  # stopped while waiting for the runtime
            servers = await self._serve_http()
            await self.pleg.relist()  # adopt what already runs before starting any pod
            self._tasks.append(asyncio.create_task(self.pleg.run(), name="pleg"))
            if not self.cfg.runonce:
                self._start_loops()
                if self.cfg.static_pod_path is not None:
                    watch = DirWatch(self.cfg.static_pod_path)
                    watch.start()  # before the first listing: nothing that changes after it goes unseen
            await self.sync_manifests()
            if self.cfg.runonce:
                return await self._runonce(stop)
            if watch is not None:
                self._tasks.append(asyncio.create_task(self._watch_manifests(watch), name="manifests"))
            await stop.wait()
            return 0
        finally:
            for server in servers:
                server.close()
            for task in self._tasks:
                task.cancel()
            for worker in self.workers.values():
                worker.stop_probes()
                if worker.task is not None:
                    worker.task.cancel()
            await asyncio.gather(*self._tasks, *(w.task for w in self.workers.values() if w.task),
                                 return_exceptions=True)
            if watch is not None:
                watch.close()
            await self.cri.close()
            self.events.close()

    async def _runonce(self, stop: asyncio.Event) -> int:
        workers = list(self.workers.values())
        if not workers:
            log.warning("--runonce: no static pods to run")
            return 0
        deadline = time.monotonic() + self.cfg.runonce_timeout
        outcome: dict[str, str] = {}
        while len(outcome) < len(workers) and not stop.is_set():
            for w in workers:
                if w.pod.uid not in outcome:
                    reason = w.finished_reason()
                    if reason is not None:
                        outcome[w.pod.uid] = reason
            if time.monotonic() > deadline:
                for w in workers:
                    outcome.setdefault(w.pod.uid, f"did not finish within {self.cfg.runonce_timeout:g}s")
                break
            await asyncio.sleep(0.05)
        # The real kubelet returns once each pod runs (runonce.go runPod) and exits, its pods left to the runtime;
        # --runonce-teardown (cristack demo, the tests) stops them first, so that nothing outlives the run.
        if self.cfg.runonce_teardown:
            for w in workers:
                w.request_terminate()
            await asyncio.gather(*(w.done.wait() for w in workers))
            # The pods are done with: their containers and sandboxes are garbage now.
            self.deleted |= set(self.pods)
            self.pods = {}
            await self.garbage_collect()
        failed = [(w.pod, outcome.get(w.pod.uid, "interrupted")) for w in workers if outcome.get(w.pod.uid, "x")]
        for pod, why in failed:
            log.error("--runonce: pod %s failed: %s", pod.full_name, why)
            print(f"fake-kubelet: pod {pod.full_name} failed: {why}", flush=True)
        for w in workers:
            if w.pod.uid in outcome and not outcome[w.pod.uid]:
                log.info("--runonce: pod %s %s", w.pod.full_name, w.view.phase.lower())
        code = 1 if failed else 0
        if self.cfg.result_file is not None:
            try:
                write_result(self.cfg.result_file, workers, outcome, code)
            except OSError as err:
                log.error("cannot write the --result-file %s: %s", self.cfg.result_file, err)
        return code

class RuntimeUnavailable(RuntimeError):
    """The container runtime never answered (under --runonce, within runtimeRequestTimeout)."""


async def _unless_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Runs ``work`` unless ``stop`` is set first (then cancels it); whether it ran to the end."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False
    stopped.cancel()
    task.result()
    return True

