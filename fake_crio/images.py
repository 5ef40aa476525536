"""CRI-O's image store: the library's store of pulled images (cristack.images) with containers/storage's
on-disk records beside it (fake_crio.storage), whose usage ImageFsInfo reports."""

from __future__ import annotations

from pathlib import Path

from cristack.images.catalogue import CATALOGUE, ImageNotFound, lookup, parse_reference
from cristack.images.store import ImageStore as _LibraryStore
from cristack.images.store import StoredImage
from fake_crio import storage

__all__ = ["CATALOGUE", "ImageNotFound", "ImageStore", "StoredImage", "lookup", "parse_reference"]


class ImageStore(_LibraryStore):
    """Pulled images in ``<root>/images.json``; each also leaves its record under ``overlay-images/``
    (off only under the image_fs_unmounted fault)."""

    def __init__(self, root: Path, *, on_disk: bool = True) -> None:
        self.on_disk = on_disk
        super().__init__(root)

    def _record(self, img: StoredImage) -> None:
        if self.on_disk and not (storage.images_dir(self.root) / img.id / "manifest").exists():
            cat = img.catalog
            storage.write_image(self.root, img.id, {"id": img.id, "names": img.repo_tags, "digest": cat.digest,
                                                    "size": cat.size, "layers": cat.layer_sizes()})

    def _forget(self, image_id: str) -> None:
        if self.on_disk:
            storage.remove_image(self.root, image_id)
