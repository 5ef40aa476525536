"""Status, Version, RuntimeConfig and UpdateRuntimeConfig (internal/cri/server/status.go, version.go,
runtime_config_linux.go, update_runtime_config.go of containerd v2.4.2)."""

from __future__ import annotations

import json
import logging

from cristack.versions import CONTAINERD_VERSION
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.cri.service import CriService

log = logging.getLogger(__name__)

NETWORK_NOT_READY_REASON = "NetworkPluginNotReady"
RUNTIME_NAME = "containerd"
CRI_VERSION = "v1"


def version() -> pb.VersionResponse:
    # version.go: the kubelet API version is always "0.1.0".
    return pb.VersionResponse(version="0.1.0", runtime_name=RUNTIME_NAME, runtime_version=CONTAINERD_VERSION,
                              runtime_api_version=CRI_VERSION)


def status(c: CriService, verbose: bool) -> pb.StatusResponse:
    network = pb.RuntimeCondition(type="NetworkReady", status=c.networks.ready)
    if not c.networks.ready:
        network.reason = NETWORK_NOT_READY_REASON
        network.message = "Network plugin returns error: cni plugin not initialized"
    handlers = [pb.RuntimeHandler(name=name, features=pb.RuntimeHandlerFeatures(
        recursive_read_only_mounts=False, user_namespaces=False)) for name in sorted(c.config.runtimes)]
    handlers.insert(0, pb.RuntimeHandler(name="", features=pb.RuntimeHandlerFeatures()))
    info = {}
    if verbose:
        cfg = c.config
        info["config"] = json.dumps({
            "containerd": {"defaultRuntimeName": cfg.default_runtime, "runtimes": {
                name: {"runtimeType": rt.runtime_type, "sandboxer": rt.sandboxer, "options": rt.options}
                for name, rt in cfg.runtimes.items()}},
            "cni": {"binDirs": cfg.cni_bin_dirs, "confDir": str(cfg.cni_conf_dir), "maxConfNum": cfg.cni_max_conf_num},
            "snapshotter": cfg.snapshotter, "pinnedImages": {"sandbox": cfg.sandbox_image},
            "containerdRootDir": str(cfg.root), "stateDir": str(cfg.k8s_state)})
        info["lastCNILoadStatus"] = "OK" if c.networks.ready else "cni config load failed"
    return pb.StatusResponse(status=pb.RuntimeStatus(conditions=[
        pb.RuntimeCondition(type="RuntimeReady", status=True), network]), info=info, runtime_handlers=handlers)


def runtime_config(c: CriService) -> pb.RuntimeConfigResponse:
    """runtime_config_linux.go: the cgroup driver the default runtime's options imply."""
    options = c.config.runtimes[c.config.default_runtime].options
    driver = pb.SYSTEMD if options.get("SystemdCgroup") is True else pb.CGROUPFS
    return pb.RuntimeConfigResponse(linux=pb.LinuxRuntimeConfiguration(cgroup_driver=driver))


def update_runtime_config(c: CriService, request: pb.UpdateRuntimeConfigRequest) -> None:
    """update_runtime_config.go: the pod CIDR matters only with a cni.conf_template, which is not modelled."""
    cidr = request.runtime_config.network_config.pod_cidr
    if cidr:
        log.info("No cni config template is specified, wait for other system components to drop the config.")
