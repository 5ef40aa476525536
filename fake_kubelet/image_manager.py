"""The image manager (pkg/kubelet/images/image_manager.go EnsureImageExists): ImageStatus, PullImage when the
pull policy says so (with the image pull back-off), ImageStatus again; the pod events it records."""

from __future__ import annotations

import time

import grpc

from cristack.config.durations import go_duration_seconds
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_kubelet import events
from fake_kubelet.manifests import Container
from fake_kubelet.pod_state import PodState, SyncError


class ImageManager(PodState):
    async def ensure_image(self, spec: Container) -> str:
        """The image's ref for the container config; SyncError (ErrImagePull, ImagePullBackOff, ...) otherwise."""
        key = f"{self.pod.uid}/{spec.name}/{spec.image}"
        present = False
        if spec.image_pull_policy != "Always":
            status = await self.cri.call("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=spec.image)))
            present = status.HasField("image")
        if present and spec.image_pull_policy != "Always":
            self.event("Normal", events.PULLED, f'Container image "{spec.image}" already present on machine',
                       spec.name)
        if spec.image_pull_policy == "Never" and not present:
            self.event("Warning", events.ERR_IMAGE_NEVER_PULL,
                       f'Container image "{spec.image}" is not present with pull policy of Never', spec.name)
            raise SyncError("ErrImageNeverPull",
                            f'Container image "{spec.image}" is not present with pull policy of Never')
        if not present:
            left = self.image_backoff.in_backoff(key)
            if left > 0:
                self.retry_in(left)
                if self.view.containers[spec.name].reason != "ImagePullBackOff":
                    self.event("Normal", events.BACKOFF, f'Back-off pulling image "{spec.image}"', spec.name,
                               **{events.BACK_OFF: go_duration_seconds(self.image_backoff.delay(key))})
                raise SyncError("ImagePullBackOff", f'Back-off pulling image "{spec.image}"')
            self.event("Normal", events.PULLING, f'Pulling image "{spec.image}"', spec.name)
            started = time.monotonic()
            try:
                await self.cri.call("PullImage", pb.PullImageRequest(
                    image=pb.ImageSpec(image=spec.image), sandbox_config=self.sandbox_config(0)))
            except grpc.aio.AioRpcError as err:
                delay = self.image_backoff.next(key)
                self.retry_in(delay)
                self.event("Warning", events.FAILED, f'Failed to pull image "{spec.image}": {err.details()}',
                           spec.name, **{events.BACK_OFF: go_duration_seconds(delay)})
                raise SyncError("ErrImagePull", f'failed to pull image "{spec.image}": {err.details()}') from None
            self.event("Normal", events.PULLED, f'Successfully pulled image "{spec.image}" in '
                       f"{time.monotonic() - started:.3f}s", spec.name)
            self.image_backoff.reset(key)
            status = await self.cri.call("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=spec.image)))
        # The container config generator looks the image up once more (its user and ref).
        await self.cri.call("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=spec.image)))
        return status.image.id or spec.image
