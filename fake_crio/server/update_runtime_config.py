"""UpdateRuntimeConfig (CRI-O's server/update_runtime_config.go)."""

from __future__ import annotations

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase


class UpdateRuntimeConfig(ServerBase):
    async def update_runtime_config(self, request: pb.UpdateRuntimeConfigRequest) -> pb.UpdateRuntimeConfigResponse:
        # CRI-O 1.36.3 ignores the kubelet's pod CIDR: pod IPs come from the CNI configuration
        # (fake_crio/network.py).
        return pb.UpdateRuntimeConfigResponse()
