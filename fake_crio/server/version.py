"""Version (CRI-O's server/version.go)."""

from __future__ import annotations

from cristack.versions import CRIO_VERSION
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase

RUNTIME_NAME = "cri-o"
RUNTIME_VERSION = CRIO_VERSION  # the CRI-O release whose traces we reproduce
CRI_VERSION = "v1"


class Version(ServerBase):
    async def version(self, request: pb.VersionRequest) -> pb.VersionResponse:
        # What CRI-O 1.36.3 answers (the CRI's version field is always "0.1.0").
        return pb.VersionResponse(version="0.1.0", runtime_name=RUNTIME_NAME, runtime_version=RUNTIME_VERSION,
                                  runtime_api_version=CRI_VERSION)
