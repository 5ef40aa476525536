"""ImageFsInfo (CRI-O's server/image_fs_info.go): the usage of containers/storage's directories."""

from __future__ import annotations

import asyncio
import time

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio import storage
from fake_crio.server.server import ServerBase
from fake_crio.server.utils import Unknown


class ImageFsInfo(ServerBase):
    async def image_fs_info(self, request: pb.ImageFsInfoRequest) -> pb.ImageFsInfoResponse:
        root = self.config.root
        if self.images.on_disk:
            try:
                return await asyncio.to_thread(storage.image_fs_info, root)
            except OSError as err:
                # image_fs_info.go answers the walk's error (gRPC UNKNOWN).
                raise Unknown(f"get image fs info unable to get usage for {storage.images_dir(root)}: "
                              f"get disk usage for path {storage.images_dir(root)}: {err}") from None
        # The image_fs_unmounted fault: fake-crio's answer up to 625725f (see fake_crio.faults).
        now = time.time_ns()
        image_fs = pb.FilesystemUsage(
            timestamp=now, fs_id=pb.FilesystemIdentifier(mountpoint=str(root / "overlay-images")),
            used_bytes=pb.UInt64Value(value=self.images.used_bytes()),
            inodes_used=pb.UInt64Value(value=len(self.images.images) * 64))
        ctr_fs = pb.FilesystemUsage(
            timestamp=now, fs_id=pb.FilesystemIdentifier(mountpoint=str(root / "overlay-containers")),
            used_bytes=pb.UInt64Value(value=0), inodes_used=pb.UInt64Value(value=len(self.store.containers)))
        return pb.ImageFsInfoResponse(image_filesystems=[image_fs], container_filesystems=[ctr_fs])
