"""RemoveImage (CRI-O's server/image_remove.go)."""

from __future__ import annotations

import logging

from cristack.wire.errors import FailedPrecondition
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import image_ref
from fake_crio.tracing import step_span

log = logging.getLogger(__name__)


class ImageRemove(ServerBase):
    @step_span("RemoveImage")
    async def remove_image(self, request: pb.RemoveImageRequest) -> pb.RemoveImageResponse:
        ref = image_ref(request.image)
        async with self.step("removeImage", ref):
            stored = self.images.find(ref)
            if stored is None:
                return pb.RemoveImageResponse()  # already gone: removal is idempotent
            users = [c.id[:13] for c in self.store.containers.values() if c.image_ref == stored.id]
            if users:
                raise FailedPrecondition(f"image {ref!r} is in use by container(s) {', '.join(users)}")
            self.images.remove(stored.id)
            log.info("Removed image %s", ref)
        return pb.RemoveImageResponse()
