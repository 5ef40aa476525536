"""PullImage (CRI-O's server/image_pull.go) from the built-in catalogue, with a simulated registry's latency
and bandwidth."""

from __future__ import annotations

import asyncio
import hashlib
import logging

from cristack.images.catalogue import CatalogImage, ImageNotFound, lookup
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import Unknown, image_ref
from fake_crio.tracing import step_span

log = logging.getLogger(__name__)

COPY_LAYER = "github.com/containers/image/v5/copy.(*imageCopier).copyLayer"
LAYER_CONCURRENCY = 3


class ImagePull(ServerBase):
    @step_span("PullImage")
    async def pull_image(self, request: pb.PullImageRequest) -> pb.PullImageResponse:
        ref = image_ref(request.image)
        log.info("Pulling image: %s", ref)
        async with self.step("pullImage", ref):
            log.debug('Using pull policy path for image %s: "%s"', ref, "/etc/containers/policy.json")
            try:
                img, parsed = lookup(ref)
            except ImageNotFound as err:
                # CRI-O returns the registry's error as is (gRPC UNKNOWN) and logs nothing at
                # info level: the message is on the SERVER span and in the kubelet's event.
                raise Unknown(f"initializing source docker://{ref}: {err}") from None
            if self.config.pull_latency_ms > 0:
                await asyncio.sleep(self.config.pull_latency_ms / 1000)
            if self.config.pull_bandwidth_mbps > 0:
                await self._copy_layers(img)
            stored = self.images.add(img, parsed)
        log.info("Pulled image: %s", stored.id)
        return pb.PullImageResponse(image_ref=stored.id)

    async def _copy_layers(self, img: CatalogImage) -> None:
        """A simulated registry: each layer takes size / bandwidth, three at a time, as
        containers/image copies them, each in a span of its own."""
        rate = self.config.pull_bandwidth_mbps * 1024 * 1024
        gate = asyncio.Semaphore(LAYER_CONCURRENCY)

        async def copy(i: int, size: int) -> None:
            async with gate:
                digest = f"sha256:{hashlib.sha256(f'{img.repo}:layer{i}'.encode()).hexdigest()}"
                async with self.step(COPY_LAYER, img.repo, attributes={"layer.digest": digest, "layer.size": size,
                                                                        "layer.index": i}):
                    await asyncio.sleep(size / rate)

        await asyncio.gather(*(copy(i, size) for i, size in enumerate(img.layer_sizes())))
