"""The node's store of pulled images, persisted in ``<root>/images.json``.

What a runtime keeps on disk beside it (CRI-O's containers/storage layout, containerd's content store)
is the runtime's: it subclasses ``ImageStore`` and extends ``_record``/``_forget``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cristack.files import write_atomic
from cristack.images.catalogue import CATALOGUE, CatalogImage, ImageNotFound, Mirrors, Reference, image_id_of, lookup


@dataclass
class StoredImage:
    """An image present on the node, with the tags it was pulled under."""

    id: str
    repo: str
    repo_tags: list[str] = field(default_factory=list)
    pinned: bool = False

    @property
    def catalog(self) -> CatalogImage:
        for img in CATALOGUE:
            if img.id == self.id:
                return img
        raise KeyError(self.repo)

    @property
    def repo_digests(self) -> list[str]:
        """One digest reference per repository the image was pulled from (its own when by digest): the
        catalogue's names and any mirror's it was pulled through."""
        cat = self.catalog
        tagged = [t[:t.rindex(":")] for t in self.repo_tags if ":" in t.rsplit("/", 1)[-1]]
        repos = list(dict.fromkeys(r for r in (*cat.repos, *tagged) if r in tagged)) or [cat.repo]
        return [f"{r}@{cat.digest}" for r in repos]


class ImageStore:
    """Pulled images, persisted in ``<root>/images.json``. ``mirrors`` are the registry hosts that serve
    the catalogue under other names (see ``cristack.images.catalogue``)."""

    def __init__(self, root: Path, *, mirrors: Mirrors | None = None) -> None:
        self.root = root
        self.path = root / "images.json"
        self.mirrors = dict(mirrors or {})
        self.images: dict[str, StoredImage] = {}
        if self.path.exists():
            for item in json.loads(self.path.read_text()):
                img = StoredImage(**item)
                try:
                    img.catalog  # noqa: B018 - drop entries the catalogue no longer knows
                except KeyError:
                    continue
                self.images[img.id] = img
        for img in self.images.values():
            self._record(img)

    def _record(self, img: StoredImage) -> None:
        """Called for every image present (loaded or pulled): a runtime's on-disk records go here."""

    def _forget(self, image_id: str) -> None:
        """Called when an image is removed."""

    def _save(self) -> None:
        write_atomic(self.path, json.dumps([asdict(i) for i in self.images.values()], indent=1).encode())

    def lookup(self, ref: str) -> tuple[CatalogImage, Reference]:
        """The catalogue image ``ref`` names through this store's mirrors (ImageNotFound if none)."""
        return lookup(ref, self.mirrors)

    def find(self, ref: str) -> StoredImage | None:
        """The stored image a reference (tag, digest, id or id prefix) names, if present."""
        bare = image_id_of(ref)
        if bare:
            return next((i for i in self.images.values() if i.id.startswith(bare)), None)
        try:
            img, parsed = self.lookup(ref)
        except ImageNotFound:
            return None
        stored = self.images.get(img.id)
        if stored is None or parsed.digest:
            return stored
        return stored if str(parsed) in stored.repo_tags else None

    def add(self, img: CatalogImage, parsed: Reference) -> StoredImage:
        """Records a pulled image (tags accumulate across pulls)."""
        stored = self.images.setdefault(img.id, StoredImage(img.id, img.repo))
        if parsed.tag and str(parsed) not in stored.repo_tags:
            stored.repo_tags.append(str(parsed))
        self._save()
        self._record(stored)
        return stored

    def remove(self, image_id: str) -> bool:
        if self.images.pop(image_id, None) is None:
            return False
        self._save()
        self._forget(image_id)
        return True

    def used_bytes(self) -> int:
        return sum(i.catalog.size for i in self.images.values())
