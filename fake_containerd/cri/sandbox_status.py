"""PodSandboxStatus (internal/cri/server/sandbox_status.go of containerd v2.4.2) and ListPodSandbox
(sandbox_list.go): what the CRI store knows of each sandbox, its network IP, and (verbose) the info containerd
gives (pid, config, runtime)."""

from __future__ import annotations

import json

from google.protobuf import json_format

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.cri.service import CriService
from fake_containerd.cri.store import CRI_SANDBOX_STATE, Sandbox


def pod_sandbox_status(c: CriService, sandbox_id: str, verbose: bool) -> pb.PodSandboxStatusResponse:
    try:
        sandbox = c.stores.sandbox(sandbox_id)
    except NotFound:
        raise NotFound("an error occurred when try to find sandbox: not found") from None
    cfg = sandbox.config
    status = pb.PodSandboxStatus(
        id=sandbox.id, metadata=cfg.metadata, state=CRI_SANDBOX_STATE[sandbox.state], created_at=sandbox.created_at,
        network=pb.PodSandboxNetworkStatus(ip=sandbox.ip), labels=cfg.labels, annotations=cfg.annotations,
        runtime_handler=sandbox.runtime_handler)
    if cfg.linux.security_context.HasField("namespace_options"):
        status.linux.namespaces.options.CopyFrom(cfg.linux.security_context.namespace_options)
    info = {}
    if verbose:
        info["info"] = json.dumps({
            "pid": sandbox.pid, "processStatus": "running" if sandbox.pid else "stopped",
            "netNamespacePath": sandbox.netns_path, "image": c.images.config.sandbox_image,
            "sandboxer": sandbox.sandboxer, "runtimeHandler": sandbox.runtime_handler,
            "config": json_format.MessageToDict(cfg)})
    return pb.PodSandboxStatusResponse(status=status, info=info)


def _matches(sandbox: Sandbox, flt: pb.PodSandboxFilter | None) -> bool:
    if flt is None:
        return True
    if flt.id and not sandbox.id.startswith(flt.id):
        return False
    if flt.HasField("state") and CRI_SANDBOX_STATE[sandbox.state] != flt.state.state:
        return False
    return all(sandbox.config.labels.get(k) == v for k, v in flt.label_selector.items())


def list_pod_sandbox(c: CriService, flt: pb.PodSandboxFilter | None) -> list[pb.PodSandbox]:
    items = [pb.PodSandbox(id=sb.id, metadata=sb.config.metadata, state=CRI_SANDBOX_STATE[sb.state],
                           created_at=sb.created_at, labels=sb.config.labels, annotations=sb.config.annotations,
                           runtime_handler=sb.runtime_handler)
             for sb in c.stores.sandboxes.values() if _matches(sb, flt)]
    return sorted(items, key=lambda s: s.created_at, reverse=True)
