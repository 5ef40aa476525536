"""The OCI runtime spec the CRI plugin writes for a sandbox's pause container and for each container
(internal/cri/server/podsandbox/sandbox_run_linux.go sandboxContainerSpec, container_create_linux.go
buildContainerSpec of containerd v2.4.2), as far as cristack's shim reads it: the process (args, env, cwd,
user), the hostname, the bind mounts and sysctls (the library's Bundle format, which the applets read), and
the ``io.kubernetes.cri.*`` annotations (the sandbox id groups a pod's containers into one shim).

Nothing here is run on the host: the args name one of cristack's applets.
"""

from __future__ import annotations

import socket
from pathlib import Path

from google.protobuf import json_format

from cristack.containers.containerfs import Bundle, Mount, mounts_from_cri
from cristack.images.catalogue import CatalogImage
from cristack.wire.errors import InvalidArgument
from cristack.wire.pb.runtime.v1 import api_pb2 as pb

OCI_VERSION = "1.3.0"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CAPABILITIES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
                "CAP_KILL", "CAP_AUDIT_WRITE"]
# internal/cri/annotations
CONTAINER_TYPE = "io.kubernetes.cri.container-type"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"


def host_network(config: pb.PodSandboxConfig) -> bool:
    return config.linux.security_context.namespace_options.network == pb.NODE


def hostname_of(config: pb.PodSandboxConfig) -> str:
    """The sandbox's hostname: the config's, or the node's for a host-network pod (as runc would see it)."""
    return config.hostname or (socket.gethostname() if host_network(config) else config.metadata.name)


def _user(uid: str) -> dict:
    user = uid.split(":", 1)[0]
    return {"uid": int(user), "gid": 0} if user.isdigit() else {"uid": 0, "gid": 0, "username": user}


def _bundle_part(mounts: list, sysctls: dict[str, str]) -> dict:
    oci = Bundle(mounts, sysctls).to_oci()
    return {"mounts": oci["mounts"], "linux": oci["linux"]}


def sandbox_spec(sandbox_id: str, config: pb.PodSandboxConfig, image: CatalogImage, sandbox_name: str) -> dict:
    """The pause container's spec."""
    args = [*image.entrypoint, *image.cmd] or ["/pause"]
    sysctls = {str(k): str(v) for k, v in config.linux.sysctls.items()}
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {"user": _user(image.user or "65535"), "args": args, "env": [f"PATH={DEFAULT_PATH}"],
                    "cwd": "/", "capabilities": {"bounding": CAPABILITIES}, "noNewPrivileges": True,
                    "oomScoreAdj": -998},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": hostname_of(config),
        "annotations": {CONTAINER_TYPE: "sandbox", SANDBOX_ID: sandbox_id,
                        "io.kubernetes.cri.sandbox-name": config.metadata.name,
                        "io.kubernetes.cri.sandbox-namespace": config.metadata.namespace,
                        "io.kubernetes.cri.sandbox-uid": config.metadata.uid,
                        "io.kubernetes.cri.sandbox-log-directory": config.log_directory,
                        "io.kubernetes.cri.image-name": sandbox_name},
    }
    spec.update(_bundle_part([], sysctls))
    return spec


def container_spec(container_id: str, sandbox_id: str, config: pb.ContainerConfig,
                   sandbox_config: pb.PodSandboxConfig, image: CatalogImage, image_name: str, argv: list[str],
                   sandbox_files: Path | None = None) -> dict:
    """buildContainerSpec: the container's process and view of the pod (its own mounts, then the pod's
    hostname and resolv.conf from ``sandbox_files`` unless the container mounts those paths itself)."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname_of(sandbox_config)}
    env.update({kv.key: kv.value for kv in config.envs})
    try:
        mounts = mounts_from_cri([json_format.MessageToDict(m, preserving_proto_field_name=True)
                                  for m in config.mounts])
    except ValueError as err:
        raise InvalidArgument(f"failed to generate container {container_id!r} spec: {err}") from None
    if sandbox_files is not None:
        taken = {m.destination for m in mounts}
        readonly = config.linux.security_context.readonly_rootfs
        for name in ("hostname", "resolv.conf"):
            source = sandbox_files / name
            if f"/etc/{name}" not in taken and source.exists():
                mounts.append(Mount(f"/etc/{name}", str(source), readonly=readonly))
    sysctls = {str(k): str(v) for k, v in sandbox_config.linux.sysctls.items()}
    user = config.linux.security_context.run_as_username or image.user
    if config.linux.security_context.HasField("run_as_user"):
        user = str(config.linux.security_context.run_as_user.value)
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {"user": _user(user or "0"), "args": argv, "env": [f"{k}={v}" for k, v in env.items()],
                    "cwd": config.working_dir or "/", "capabilities": {"bounding": CAPABILITIES},
                    "terminal": config.tty},
        "root": {"path": "rootfs", "readonly": config.linux.security_context.readonly_rootfs},
        "hostname": hostname_of(sandbox_config),
        "annotations": {CONTAINER_TYPE: "container", SANDBOX_ID: sandbox_id,
                        "io.kubernetes.cri.container-name": config.metadata.name,
                        "io.kubernetes.cri.image-name": image_name,
                        "io.kubernetes.cri.sandbox-name": sandbox_config.metadata.name,
                        "io.kubernetes.cri.sandbox-namespace": sandbox_config.metadata.namespace,
                        "io.kubernetes.cri.sandbox-uid": sandbox_config.metadata.uid},
    }
    spec.update(_bundle_part(mounts, sysctls))
    return spec


def exec_process(spec: dict, cmd: list[str]) -> dict:
    """The process an exec runs: the container's, with the exec's args (container_execsync.go)."""
    process = dict(spec.get("process") or {})
    process["args"] = list(cmd)
    process["terminal"] = False
    return process
