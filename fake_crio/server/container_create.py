"""CreateContainer (CRI-O's server/container_create.go, createSandboxContainer in container_create_linux.go)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from cristack.containers.applets import merge_command
from cristack.wire.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio import bundles, logdirs
from fake_crio.runtimes import Runtime
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import LIB_SERVER, OCI_RUNTIME, SANDBOX, Stages, as_dict, description
from fake_crio.state import SANDBOX_READY, ContainerRecord, SandboxRecord

log = logging.getLogger(__name__)


class ContainerCreate(ServerBase):
    async def create_container(self, request: pb.CreateContainerRequest) -> pb.CreateContainerResponse:
        # CRI-O 1.36's CreateContainer opens no step of its own: its log lines land on the
        # interceptor's span.
        cfg = request.config
        try:
            sb = await self.get_sandbox_from_request(request.pod_sandbox_id)
        except NotFound as err:
            raise NotFound(f"could not find pod {request.pod_sandbox_id!r}: {err}") from None
        if not cfg.metadata.name:
            raise InvalidArgument("ContainerConfig.Metadata.Name should not be empty")
        if not cfg.image.image:
            raise InvalidArgument("ContainerConfig.Image.Image should not be empty")
        # The sandbox's StopMutex, shared, for the whole creation (container_create.go): a StopPodSandbox
        # waits for this creation and then stops its container; one that came first leaves the sandbox stopped,
        # which is checked under the lock.
        async with self.stop_lock(sb.id).read():
            if sb.state != SANDBOX_READY:
                # CRI-O's words ("CreateContainer failed as the sandbox was stopped"), with the status saying
                # whose problem it is (CRI-O's plain error reaches the caller as UNKNOWN).
                raise FailedPrecondition(f"CreateContainer failed as the sandbox was stopped: {sb.id}")
            # The name is held before the first await and given back if the container is not
            # created (CRI-O's ReserveContainerName and its resource cleaner).
            with self.reserved(lambda cid: self.store.reserve_container_name(sb, cfg.metadata.name,
                                                                             cfg.metadata.attempt, cid)) as cid:
                # Counted with the creations in flight (which hold their names), this one included.
                if len(self.store.ctr_names) > self.config.max_containers:
                    raise ResourceExhausted(f"fake-crio holds {len(self.store.ctr_names) - 1} containers, its "
                                            f"limit (max_containers); remove some first")
                return await self._create_container(request, sb, cid)

    async def _create_container(self, request: pb.CreateContainerRequest, sb: SandboxRecord,
                                cid: str) -> pb.CreateContainerResponse:
        cfg = request.config
        desc = description(dict(cfg.labels))
        log.info("Creating container: %s", desc)
        resource = f"k8s_{cfg.metadata.name}_{sb.name}_{sb.namespace}_{sb.uid}_{cfg.metadata.attempt}"
        log.debug("Initializing stage for resource %s to container creating", resource)
        rt = self.runtime(sb.runtime_handler)
        async with self.step("createSandboxContainer", cfg.image.image):
            c = await self._container_spec(request, sb, rt, cid)
            try:
                # The runtime spec's mounts and sysctls (config.json), where the applets read them.
                c.bundle = str(bundles.write(self.store.runroot, c, sb))
            except ValueError as err:
                raise InvalidArgument(f"invalid mount: {err}") from None
        async with self.step("addContainer"), self.step(LIB_SERVER + "AddContainer"), \
                self.step(SANDBOX + "AddContainer"):
            pass
        async with self.step("getSandboxIDMappings"):
            pass  # no user namespaces in a mock
        log.debug("Setting stage for resource %s from container spec configuration to container runtime creation",
                  resource)
        async with self.step("createContainerPlatform"), self.step(OCI_RUNTIME + "CreateContainer"):
            c.pid = await rt.create_container(c, sb, self.store.exit_path(c.id))
        try:
            await self.state_to_disk(rt, c)
        except OSError:
            # Not recorded means not created: take the held process back down.
            await rt.remove_container(c)
            self.store.delete_container(c.id)
            raise
        await self.generate_event(c.id, sb.id, pb.CONTAINER_CREATED_EVENT)
        log.info("Created container %s: %s", c.id, desc)
        return pb.CreateContainerResponse(container_id=c.id)

    async def _container_spec(self, request: pb.CreateContainerRequest, sb: SandboxRecord, rt: Runtime,
                              cid: str) -> ContainerRecord:
        """createSandboxContainer: the image, the command, the log path and the spec steps."""
        cfg = request.config
        async with self.step("getSandboxIDMappings"):
            pass
        stored = self.images.find(cfg.image.image)
        if stored is None:
            raise NotFound(f"image {cfg.image.image!r} is not present on the node; pull it first: image not known")
        cat = stored.catalog
        try:
            argv = merge_command(list(cat.entrypoint), list(cat.cmd), list(cfg.command), list(cfg.args))
        except ValueError as err:
            raise InvalidArgument(f"no command to run: {err}") from None
        log.debug('Created storageRef = "containers-storage:%s"', stored.id)
        log.debug("Is allowed to run config image %s", cfg.image.image)
        stages = Stages(f"k8s_{cfg.metadata.name}_{sb.name}_{sb.namespace}_{sb.uid}_{cfg.metadata.attempt}",
                        "container creating", announce=False)  # announced by CreateContainer
        for stage in ("container storage creation", "container volume configuration", "container device creation",
                      "container storage start", "container spec configuration"):
            stages.to(stage)
        # The container's root filesystem is created here in CRI-O (containers/storage, no span
        # of its own); a storage fault happens at this point, inside createSandboxContainer.
        if self.tracing.faults:
            await self.tracing.faults.apply("storage.CreateContainer", cfg.image.image)
        log_path = ""
        async with self.step("addOCIBindMounts"):
            if cfg.log_path:
                if not sb.log_directory:
                    raise InvalidArgument("ContainerConfig.LogPath is set but the sandbox has no log_directory")
                log_path = str(logdirs.log_file(sb.log_directory, cfg.log_path, self.config.pod_logs_root,
                                                self.config.confine_pod_logs))  # InvalidArgument, cut, if refused
                Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        async with self.step("internal/config/seccomp.(*Config).Setup"):
            log.debug("Setup seccomp from profile field: <nil>")
            log.debug("Evaluating seccomp annotations")
        async with self.step("internal/factory/container.(*container).SpecAddAnnotations"):
            pass
        async with self.step("server.setupContainerUser"):
            log.debug('Container user: "%s"', cat.user)
        async with self.step("server.addImageVolumes"):
            pass
        return ContainerRecord(
            id=cid, sandbox_id=sb.id, name=cfg.metadata.name, attempt=cfg.metadata.attempt,
            created_at=time.time_ns(), image=cfg.image.image, image_ref=stored.id,
            image_name=stored.repo_tags[0] if stored.repo_tags else cat.repo_tags[0],
            argv=argv, env={kv.key: kv.value for kv in cfg.envs}, working_dir=cfg.working_dir or "/",
            log_path=log_path, runtime_handler=rt.name, labels=dict(cfg.labels),
            annotations=dict(cfg.annotations), config=as_dict(cfg),
            resources=as_dict(cfg.linux.resources) if cfg.linux.HasField("resources") else {})
