"""RuntimeConfig (CRI-O's server/runtime_config.go)."""

from __future__ import annotations

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase


class RuntimeConfig(ServerBase):
    async def runtime_config(self, request: pb.RuntimeConfigRequest) -> pb.RuntimeConfigResponse:
        # What [crio.runtime] cgroup_manager says (the kubelet adopts it).
        driver = pb.SYSTEMD if self.config.cgroup_manager == "systemd" else pb.CGROUPFS
        return pb.RuntimeConfigResponse(linux=pb.LinuxRuntimeConfiguration(cgroup_driver=driver))
