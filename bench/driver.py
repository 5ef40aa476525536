"""A pod-start driver: the kubelet's syncPod CRI sequence (RunPodSandbox, PodSandboxStatus,
ImageStatus, PullImage when absent, ImageStatus, CreateContainer, StartContainer), issued
through fake-kubelet's own CRI client and span factory, so that what is timed is exactly
"RunPodSandbox sent → StartContainer returned" and nothing of the harness."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from cristack.otel.rpctrace import OTELGRPC_SCOPE
from cristack.otel.sampler import TracingSettings
from cristack.otel.telemetry import Telemetry
from cristack.wire.endpoints import parse_endpoint
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_kubelet.cri import UID_LABEL, CriClient
from fake_kubelet.kubelet import KUBELET_SCOPE, pod_span_factory
from fake_kubelet.manifests import Container, Pod


@dataclass
class Driver:
    crio_endpoint: str
    pod_logs: str
    otlp_endpoint: str | None = None  # None: tracing off in the driver (the "kubelet")
    command: tuple[str, ...] = ("sleep", "3600")

    async def __aenter__(self) -> Driver:
        self.telemetry = Telemetry("kubelet", TracingSettings(self.otlp_endpoint is not None,
                                                              self.otlp_endpoint or "127.0.0.1:4317", 1_000_000))
        provider = self.telemetry.provider
        self.cri = CriClient(parse_endpoint(self.crio_endpoint), 60.0, tracer=provider.get_tracer(OTELGRPC_SCOPE))
        self.span = pod_span_factory(provider.get_tracer(KUBELET_SCOPE))
        await self.cri.call("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cri.close()
        self.telemetry.shutdown(2.0)

    def _pod(self) -> Pod:
        uid = str(uuid.uuid4())
        return Pod(name=f"bench-{uid[:8]}", namespace="bench", uid=uid,
                   containers=(Container("c", "busybox", "IfNotPresent", self.command),))

    async def start_pod(self) -> tuple[float, str, str]:
        """One pod start; returns (seconds, sandbox id, container id)."""
        pod = self._pod()
        labels = {UID_LABEL: pod.uid, "io.kubernetes.pod.name": pod.name}
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=pod.name, uid=pod.uid, namespace=pod.namespace),
            log_directory=f"{self.pod_logs}/{pod.namespace}_{pod.name}_{pod.uid}", labels=labels)
        ctr = pod.containers[0]
        async with self.span("syncPod", pod, "create"):
            started = time.perf_counter()
            sid = (await self.cri.call("RunPodSandbox", pb.RunPodSandboxRequest(config=config))).pod_sandbox_id
            await self.cri.call("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=sid))
            spec = pb.ImageSpec(image=ctr.image)
            status = await self.cri.call("ImageStatus", pb.ImageStatusRequest(image=spec))
            if not status.HasField("image"):
                await self.cri.call("PullImage", pb.PullImageRequest(image=spec))
            await self.cri.call("ImageStatus", pb.ImageStatusRequest(image=spec))
            cid = (await self.cri.call("CreateContainer", pb.CreateContainerRequest(
                pod_sandbox_id=sid, sandbox_config=config, config=pb.ContainerConfig(
                    metadata=pb.ContainerMetadata(name=ctr.name), image=spec, command=list(ctr.command),
                    log_path=f"{ctr.name}/0.log", labels=labels)))).container_id
            await self.cri.call("StartContainer", pb.StartContainerRequest(container_id=cid))
            took = time.perf_counter() - started
        return took, sid, cid

    async def remove_pod(self, sid: str) -> None:
        await self.cri.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        await self.cri.call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))

    async def lifecycle(self) -> float:
        took, sid, _ = await self.start_pod()
        await self.remove_pod(sid)
        return took

