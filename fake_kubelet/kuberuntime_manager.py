"""The runtime manager's SyncPod (pkg/kubelet/kuberuntime/kuberuntime_manager.go: computePodActions,
SyncPod, doBackOff): make the runtime match the manifest, a step at a time.

Under the syncPod span, the recorded CRI calls (tests/data/real/kubelet/, v1.36.3): the sandbox
(RunPodSandbox, PodSandboxStatus) when there is no ready one, init containers in order, each to success
before the next, then the containers, each through the image manager, CreateContainer, StartContainer,
honouring the restart policy and the crash loop back-off.
"""

from __future__ import annotations

import logging

import grpc
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from cristack.config.durations import go_duration_seconds
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_kubelet import events
from fake_kubelet.backoff import should_restart
from fake_kubelet.cri import ContainerState, PodStatus
from fake_kubelet.kuberuntime_container import ContainerRuntime
from fake_kubelet.manifests import Container
from fake_kubelet.pod_state import FAILED

log = logging.getLogger(__name__)


class RuntimeManager(ContainerRuntime):
    async def sync_runtime(self, status: PodStatus) -> None:
        """SyncPod's steps for the pod's ``status`` (from the PLEG's cache)."""
        pod = self.pod
        sandbox = status.sandbox
        if sandbox is None or sandbox.state != pb.SANDBOX_READY:
            if sandbox is not None and pod.restart_policy == "Never" and status.containers:
                self.set_phase(FAILED, "the pod sandbox died and restartPolicy is Never")
                return
            attempt = sandbox.attempt + 1 if sandbox is not None else 0
            try:
                sandbox_id = await self.run_sandbox(attempt)
            except grpc.aio.AioRpcError as err:
                reason = f"CreatePodSandboxError: {err.code().name}: {err.details()}"
                trace.get_current_span().set_status(Status(StatusCode.ERROR, reason))
                if self.view.sandbox_error != reason:
                    log.warning("pod %s: %s", pod.full_name, reason)
                self.view.sandbox_error = reason
                self.retry_in(self.backoff.next(f"{pod.uid}/sandbox"))
                return
            self.view.sandbox_error = ""
            containers: list[ContainerState] = []
        else:
            sandbox_id = sandbox.id
            containers = status.containers_in(sandbox_id)
        self.view.sandbox_id = sandbox_id
        latest: dict[str, ContainerState] = {}
        for c in containers:
            if c.name not in latest or (c.attempt, c.created_at) > (latest[c.name].attempt, latest[c.name].created_at):
                latest[c.name] = c
        for c in latest.values():
            self.observe(c)

        # Init containers, one at a time, each to success before the next.
        for spec in pod.init_containers:
            current = latest.get(spec.name)
            if current is None:
                await self.start_container(spec, sandbox_id, 0)
                return self.update_phase()
            if current.state in (pb.CONTAINER_CREATED, pb.CONTAINER_RUNNING):
                return self.update_phase()
            if current.exit_code == 0:
                continue
            if pod.restart_policy == "Never":
                self.set_phase(FAILED, f"init container {spec.name} exited with {current.exit_code}")
                return
            await self.restart(spec, sandbox_id, current)
            return self.update_phase()

        for spec in pod.containers:
            current = latest.get(spec.name)
            if current is None:
                await self.start_container(spec, sandbox_id, 0)
            elif current.state == pb.CONTAINER_EXITED and should_restart(pod.restart_policy, current.exit_code):
                await self.restart(spec, sandbox_id, current)
        self.update_phase()

    async def restart(self, spec: Container, sandbox_id: str, current: ContainerState) -> None:
        """doBackOff, then a new attempt of the container once its crash loop back-off is over."""
        key = f"{self.pod.uid}/{spec.name}"
        # The kubelet counts the window from the container's finish (doBackOff: IsInBackOffSince(key, finishedAt)).
        finished = current.finished_at / 1e9 if current.finished_at else self.backoff.clock()
        left = self.backoff.in_backoff_since(key, finished)
        view = self.view.containers[spec.name]
        if left > 0:
            if self.first((events.BACKOFF, current.id)):  # once per window (the real recorder counts repeats)
                self.event("Warning", events.BACKOFF, f"Back-off restarting failed container {spec.name} in pod "
                           f"{self.pod.name}_{self.pod.namespace}({self.pod.uid})", spec.name,
                           **{events.BACK_OFF: go_duration_seconds(self.backoff.delay(key))})
            self.waiting(view, "CrashLoopBackOff",
                         f"back-off {go_duration_seconds(self.backoff.delay(key))} restarting failed "
                         f"container={spec.name} pod={self.pod.name}_{self.pod.namespace}({self.pod.uid})")
            self.retry_in(left)
            return
        self.backoff.next(key, finished)  # the next crash's window is this delay doubled
        await self.start_container(spec, sandbox_id, current.attempt + 1)
