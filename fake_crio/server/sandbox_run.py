"""RunPodSandbox (CRI-O's server/sandbox_run.go and sandbox_run_linux.go)."""

from __future__ import annotations

import logging
import time

from cristack.wire.errors import FailedPrecondition, InvalidArgument
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio import logdirs
from fake_crio.runtimes import Runtime
from fake_crio.server.sandbox_network import SandboxNetwork
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import LIB_SERVER, OCI_IMPL, OCI_RUNTIME, SANDBOX, Stages, as_dict
from fake_crio.state import SandboxRecord
from fake_crio.tracing import step_span

log = logging.getLogger(__name__)


class SandboxRun(SandboxNetwork, ServerBase):
    @step_span("runPodSandbox")
    async def run_pod_sandbox(self, request: pb.RunPodSandboxRequest) -> pb.RunPodSandboxResponse:
        md = request.config.metadata
        missing = [f for f in ("name", "uid", "namespace") if not getattr(md, f)]
        if missing:
            raise InvalidArgument(f"PodSandboxConfig.Metadata is missing {', '.join(missing)}")
        rt = self.runtime(request.runtime_handler)
        # The name is held before the first await, and given back if the sandbox is not
        # created (CRI-O's reservePodNameOrGetExisting and its resource cleaner).
        with self.reserved(lambda sid: self.store.reserve_sandbox_name((md.name, md.namespace, md.uid, md.attempt),
                                                                      sid)) as sid:
            return await self._run_pod_sandbox(request, rt, sid)

    async def _run_pod_sandbox(self, request: pb.RunPodSandboxRequest, rt: Runtime,
                               sid: str) -> pb.RunPodSandboxResponse:
        cfg = request.config
        md = cfg.metadata
        log.info("Running pod sandbox: %s/%s/POD", md.namespace, md.name)
        resource = f"k8s_{md.name}_{md.namespace}_{md.uid}_{md.attempt}"
        stages = Stages(resource, "sandbox creating")
        log_dir = self.pod_log_dir(cfg.log_directory, sid)
        sb = SandboxRecord(
            id=sid, name=md.name, uid=md.uid, namespace=md.namespace, attempt=md.attempt,
            created_at=time.time_ns(), runtime_handler=rt.name, log_directory=log_dir,
            labels=dict(cfg.labels), annotations=dict(cfg.annotations), hostname=cfg.hostname,
            config=as_dict(cfg))
        async with self.step("setPodSandboxMountLabel"):
            pass
        async with self.step("addSandbox"), self.step(LIB_SERVER + "AddSandbox"):
            pass
        async with self.step("configureGeneratorForSysctls"):
            pass
        async with self.step("configureGeneratorForSandboxNamespaces"):
            pass
        async with self.step("networkStart"):
            if cfg.linux.security_context.namespace_options.network != pb.NODE:
                sb.ip = self.allocate_ip(sb.id)
        stages.to("sandbox network ready")
        async with self.step(SANDBOX + "SetContainerEnvFile"):
            pass
        for stage in ("sandbox storage creation", "sandbox shm creation", "sandbox spec configuration",
                      "sandbox namespace creation", "sandbox network creation", "sandbox storage start"):
            stages.to(stage)
        log.debug("Dropping infra container for pod %s", sb.id)
        stages.to("sandbox container runtime creation")
        async with self.step("addInfraContainer"):
            pass
        async with self.step("createContainerPlatform"), self.step(OCI_RUNTIME + "CreateContainer"):
            await rt.create_sandbox(sb)
        async with self.step(OCI_RUNTIME + "StartContainer"), self.step(OCI_IMPL + "StartContainer"):
            pass  # the spoofed infra container: nothing runs
        await self.state_to_disk(rt)
        self.store.save_sandbox(sb)
        # sandbox_run_linux.go: the infra container's (its id is the pod's) CREATED, then STARTED.
        await self.generate_event(sb.id, sb.id, pb.CONTAINER_CREATED_EVENT)
        await self.generate_event(sb.id, sb.id, pb.CONTAINER_STARTED_EVENT)
        log.info("Ran pod sandbox %s with infra container: %s/%s/POD", sb.id, md.namespace, md.name)
        return pb.RunPodSandboxResponse(pod_sandbox_id=sb.id)

    def pod_log_dir(self, log_directory: str, sandbox_id: str = "") -> str:
        """The sandbox's log directory, confined under --pod-logs-root when asked, created."""
        if not log_directory:
            return ""
        # logdirs answers InvalidArgument itself, with the value cut and the confinement named.
        path = logdirs.log_directory(log_directory, self.config.pod_logs_root, self.config.confine_pod_logs,
                                     sandbox_id)
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as err:
            raise FailedPrecondition(f"cannot create log directory {path}: {err.strerror}") from None
        return str(path)
