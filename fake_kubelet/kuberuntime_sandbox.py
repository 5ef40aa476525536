"""The pod's sandbox (pkg/kubelet/kuberuntime/kuberuntime_sandbox.go: createPodSandbox,
generatePodSandboxConfig)."""

from __future__ import annotations

import logging
from pathlib import Path

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_kubelet.cri import POD_NAME_LABEL, POD_NAMESPACE_LABEL, UID_LABEL
from fake_kubelet.pod_state import PodState

log = logging.getLogger(__name__)


class SandboxRuntime(PodState):
    async def run_sandbox(self, attempt: int) -> str:
        """RunPodSandbox, then PodSandboxStatus of the new sandbox; its id."""
        pod = self.pod
        log_dir = self.pod_logs_dir / f"{pod.namespace}_{pod.name}_{pod.uid}"
        config = self.sandbox_config(attempt, log_dir)
        resp = await self.cri.call("RunPodSandbox", pb.RunPodSandboxRequest(
            config=config, runtime_handler=pod.runtime_class))
        await self.cri.call("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=resp.pod_sandbox_id))
        log.info("pod %s: sandbox %s ready (attempt %d)", pod.full_name, resp.pod_sandbox_id[:13], attempt)
        return resp.pod_sandbox_id

    def sandbox_config(self, attempt: int, log_dir: Path | None = None) -> pb.PodSandboxConfig:
        pod = self.pod
        log_dir = log_dir or self.pod_logs_dir / f"{pod.namespace}_{pod.name}_{pod.uid}"
        labels = {**pod.labels, POD_NAME_LABEL: pod.name, POD_NAMESPACE_LABEL: pod.namespace, UID_LABEL: pod.uid}
        annotations = {**pod.annotations, "kubernetes.io/config.source": "file",
                       "kubernetes.io/config.hash": pod.uid}
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=pod.name, uid=pod.uid, namespace=pod.namespace, attempt=attempt),
            hostname=pod.name, log_directory=str(log_dir), labels=labels, annotations=annotations,
            linux=pb.LinuxPodSandboxConfig())
