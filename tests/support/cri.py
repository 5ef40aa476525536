"""Asking a node's fake-crio what a user would ask crictl: its ready pods and their IPs."""

from __future__ import annotations

import grpc

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc


def ready_pod_ips(endpoint: str) -> dict[str, str]:
    """Ready sandbox name -> pod IP (``crictl pods --state ready`` and ``crictl inspectp``)."""
    with grpc.insecure_channel(endpoint) as channel:
        rt = pbgrpc.RuntimeServiceStub(channel)
        return {sb.metadata.name: rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sb.id)).status
                .network.ip for sb in rt.ListPodSandbox(pb.ListPodSandboxRequest()).items
                if sb.state == pb.SANDBOX_READY}
