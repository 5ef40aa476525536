"""The CRI plugin's image service (internal/cri/server/images of containerd v2.4.2): the images the node holds,
resolved locally, with their status, list, removal and the image filesystem's usage.

Images live in the library's store (cristack.images) under ``<root>/io.containerd.grpc.v1.cri``; each one's
unpacked layers are a record under the snapshotter's root (``<root>/io.containerd.snapshotter.v1.<name>``),
which ImageFsInfo names as the image filesystem. An image's id is its config digest (``sha256:...``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from opentelemetry import trace

from cristack.files import write_atomic
from cristack.images.catalogue import Mirrors, image_id_of, parse_reference
from cristack.images.store import ImageStore, StoredImage
from cristack.wire.errors import InvalidArgument, NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.remotes import Registry
from fake_containerd.tracing import ContainerdTracing, add_event
from fake_containerd.unpack import chain_id, layer_digests

log = logging.getLogger(__name__)

INODES_PER_LAYER = 64  # what an unpacked layer of the catalogue's small images holds, roughly


@dataclass(frozen=True)
class ImageConfig:
    """What the images plugin is configured with ([plugins.'io.containerd.cri.v1.images'])."""

    snapshotter: str
    sandbox_image: str
    registry_config_path: Path | None
    pull_latency_ms: float
    mirrors: Mirrors


class SnapshotStore(ImageStore):
    """The store of pulled images, with each image's layers recorded under the snapshotter's root."""

    def __init__(self, root: Path, snapshotter: str, mirrors: Mirrors) -> None:
        self.snapshots = root / f"io.containerd.snapshotter.v1.{snapshotter}"
        self.snapshots.mkdir(parents=True, exist_ok=True, mode=0o700)
        (root / "io.containerd.grpc.v1.cri").mkdir(parents=True, exist_ok=True, mode=0o700)
        super().__init__(root / "io.containerd.grpc.v1.cri", mirrors=mirrors)

    def _record(self, img: StoredImage) -> None:
        path = self.snapshots / "snapshots" / img.id
        if not (path / "layers.json").exists():
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            cat = img.catalog
            write_atomic(path / "layers.json", json.dumps({"chainID": chain_id(cat), "layers": layer_digests(cat),
                                                           "sizes": cat.layer_sizes()}).encode())

    def _forget(self, image_id: str) -> None:
        shutil.rmtree(self.snapshots / "snapshots" / image_id, ignore_errors=True)


def image_message(img: StoredImage, pinned: bool) -> pb.Image:
    """toCRIImage: id, references split into tags and digests, size, the user, pinned."""
    cat = img.catalog
    msg = pb.Image(id=f"sha256:{img.id}", repo_tags=img.repo_tags, repo_digests=img.repo_digests, size=cat.size,
                   pinned=pinned)
    user = cat.user.split(":", 1)[0]
    if user.isdigit():
        msg.uid.value = int(user)
    elif user:
        msg.username = user
    return msg


class CRIImageService:
    """The images plugin's service core."""

    def __init__(self, root: Path, config: ImageConfig, tracing: ContainerdTracing) -> None:
        self.config = config
        self.tracing = tracing
        self.store = SnapshotStore(root, config.snapshotter, config.mirrors)
        self.registry = Registry(tracing, config.registry_config_path, self.store.lookup,
                                 config.pull_latency_ms / 1000)
        self._pinned = self._pinned_ids()

    def _pinned_ids(self) -> set[str]:
        try:
            img, _ = self.store.lookup(self.config.sandbox_image)
        except LookupError:
            return set()
        return {img.id}

    def local_resolve(self, ref: str) -> StoredImage:
        """LocalResolve: an image id (or its prefix), or a reference normalised as the CRI does; NotFound."""
        if not ref:
            raise InvalidArgument("ImageSpec.Image should not be empty")
        if not image_id_of(ref):
            try:
                parse_reference(ref)
            except ValueError as err:
                raise NotFound(f"{err}: not found") from None
        stored = self.store.find(ref)
        if stored is None:
            raise NotFound(f"failed to resolve image \"{ref}\": not found")
        return stored

    def image(self, stored: StoredImage) -> pb.Image:
        return image_message(stored, stored.id in self._pinned)

    def status(self, ref: str, verbose: bool) -> pb.ImageStatusResponse:
        try:
            stored = self.local_resolve(ref)
        except NotFound:
            return pb.ImageStatusResponse()
        info = {}
        if verbose:
            cat = stored.catalog
            info["info"] = json.dumps({"chainID": chain_id(cat), "imageSpec": {
                "architecture": "amd64", "os": "linux", "config": {
                    "User": cat.user, "Entrypoint": list(cat.entrypoint) or None, "Cmd": list(cat.cmd) or None},
                "rootfs": {"type": "layers", "diff_ids": layer_digests(cat)}}})
        return pb.ImageStatusResponse(image=self.image(stored), info=info)

    def list(self, wanted: str = "") -> list[pb.Image]:
        found = self.store.find(wanted) if wanted else None
        return [self.image(i) for i in self.store.images.values() if not wanted or i is found]

    def remove(self, ref: str) -> None:
        try:
            stored = self.local_resolve(ref)
        except NotFound as err:
            add_event(str(err))
            return
        trace.get_current_span().set_attribute("image.id", f"sha256:{stored.id}")
        self.store.remove(stored.id)

    def fs_info(self) -> pb.ImageFsInfoResponse:
        used = sum(i.catalog.size for i in self.store.images.values())
        inodes = sum(i.catalog.layers * INODES_PER_LAYER for i in self.store.images.values())
        usage = pb.FilesystemUsage(timestamp=time.time_ns(), fs_id=pb.FilesystemIdentifier(
            mountpoint=str(self.store.snapshots)), used_bytes=pb.UInt64Value(value=used),
            inodes_used=pb.UInt64Value(value=inodes))
        return pb.ImageFsInfoResponse(image_filesystems=[usage])
