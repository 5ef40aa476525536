"""A container's start and kill (pkg/kubelet/kuberuntime/kuberuntime_container.go: startContainer,
generateContainerConfig, killContainer)."""

from __future__ import annotations

import logging

import grpc

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_kubelet import events
from fake_kubelet.cri import (
    CONTAINER_NAME_LABEL,
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
    RESTART_COUNT_ANNOTATION,
    UID_LABEL,
    ContainerState,
)
from fake_kubelet.image_manager import ImageManager
from fake_kubelet.kubelet_pods import PodStatusView
from fake_kubelet.kuberuntime_sandbox import SandboxRuntime
from fake_kubelet.manifests import Container
from fake_kubelet.pod_state import SyncError

log = logging.getLogger(__name__)


class ContainerRuntime(ImageManager, SandboxRuntime, PodStatusView):
    async def start_container(self, spec: Container, sandbox_id: str, attempt: int) -> None:
        """startContainer: ensure the image, create, start; a failure leaves the container waiting with the
        kubelet's reason."""
        view = self.view.containers[spec.name]
        view.restart_count = attempt
        try:
            image_ref = await self.ensure_image(spec)
            config = self.container_config(spec, attempt, image_ref)
            try:
                created = await self.cri.call("CreateContainer", pb.CreateContainerRequest(
                    pod_sandbox_id=sandbox_id, config=config, sandbox_config=self.sandbox_config(0)))
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
            self.waiting(view, err.reason, err.message)
            return
        self.event("Normal", events.STARTED, f"Started container {spec.name}", spec.name)
        view.container_id = created.container_id
        if view.state != "running":
            view.state, view.reason, view.message, view.exit_code = "running", "", "", None
            log.info("pod %s: container %s started (restart count %d)", self.pod.full_name, spec.name, attempt)

    def container_config(self, spec: Container, attempt: int, image_ref: str) -> pb.ContainerConfig:
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

    async def kill_container(self, c: ContainerState) -> None:
        """killContainer: StopContainer with the pod's grace period."""
        self.event("Normal", events.KILLING, f"Stopping container {c.name}", c.name)
        await self.cri.call("StopContainer", pb.StopContainerRequest(
            container_id=c.id, timeout=self.pod.termination_grace_period),
            timeout=self.pod.termination_grace_period + self.cri.timeout)
