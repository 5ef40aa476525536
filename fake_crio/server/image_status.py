"""ImageStatus (CRI-O's server/image_status.go)."""

from __future__ import annotations

import json
import logging

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.image_list import image_message
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import image_ref
from fake_crio.tracing import step_span

log = logging.getLogger(__name__)


class ImageStatus(ServerBase):
    @step_span("ImageStatus")
    async def image_status(self, request: pb.ImageStatusRequest) -> pb.ImageStatusResponse:
        ref = image_ref(request.image)
        log.info("Checking image status: %s", ref)
        stored = self.images.find(ref)
        if stored is None:
            log.info("Neither image nor artfiact %s found", ref)  # sic: CRI-O's wording
            return pb.ImageStatusResponse()
        info = {}
        if request.verbose:
            cat = stored.catalog
            info["info"] = json.dumps({"imageSpec": {"config": {
                "Entrypoint": list(cat.entrypoint), "Cmd": list(cat.cmd), "User": cat.user}},
                "layers": cat.layer_sizes()})
        return pb.ImageStatusResponse(image=image_message(stored), info=info)
