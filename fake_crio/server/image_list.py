"""ListImages and StreamImages (CRI-O's server/image_list.go)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.images import StoredImage
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import STREAM_CHUNK_SIZE
from fake_crio.tracing import step_span


def image_message(img: StoredImage) -> pb.Image:
    cat = img.catalog
    msg = pb.Image(id=img.id, repo_tags=img.repo_tags, repo_digests=img.repo_digests, size=cat.size,
                   spec=pb.ImageSpec(image=img.id), pinned=img.pinned)
    user = cat.user.split(":", 1)[0]  # USER uid:gid or name:group; the CRI reports the user part
    if user.isdigit():
        msg.uid.value = int(user)
    else:
        msg.username = user
    return msg


class ImageList(ServerBase):
    def _listed(self, request: pb.ListImagesRequest | pb.StreamImagesRequest) -> list[pb.Image]:
        wanted = request.filter.image.image if request.HasField("filter") else ""
        found = self.images.find(wanted) if wanted else None
        return [image_message(i) for i in self.images.images.values() if not wanted or i is found]

    @step_span("ListImages")
    async def list_images(self, request: pb.ListImagesRequest) -> pb.ListImagesResponse:
        return pb.ListImagesResponse(images=self._listed(request))

    async def stream_images(self, request: pb.StreamImagesRequest) -> AsyncIterator[pb.StreamImagesResponse]:
        # listImages (no step of its own), in chunks.
        items = self._listed(request)
        for i in range(0, len(items), STREAM_CHUNK_SIZE):
            yield pb.StreamImagesResponse(images=items[i:i + STREAM_CHUNK_SIZE])
