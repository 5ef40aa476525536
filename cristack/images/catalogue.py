"""The built-in image catalogue: what the pretend registries serve, and image references.

No registry is contacted: a pull looks the reference up in ``CATALOGUE`` and, after the configured
latency, the runtime records the image as present. Digests are stable (derived from the name) so that
output, tests and traces are the same from run to run.

``Mirrors`` lets a registry host of the user's choosing serve a namespace of the catalogue (an operator's
local registry at ``127.0.0.1:5000`` holding docker.io's library images, say): a reference through it
names the same catalogue image under the mirror's name, as a pull from a real mirror would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
_CRITEST = "gcr.io/k8s-staging-cri-tools"


def _sha(text: str) -> str:
    return hashlib.sha256(f"cristack:{text}".encode()).hexdigest()


@dataclass(frozen=True)
class CatalogImage:
    """One image of the catalogue: where it lives, what it runs by default, how big it is."""

    repo: str  # fully qualified, e.g. docker.io/library/busybox
    tags: tuple[str, ...]
    size: int
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    layers: int = 1
    # Other repositories serving the very same image (a mirror, an old registry name).
    aliases: tuple[str, ...] = ()
    # Set when a repository holds several different images (one per tag): keeps their ids apart.
    variant: str = ""
    # A real digest that clients pull by (critest's test-image-digest), instead of a derived one.
    pinned_digest: str = ""

    @property
    def id(self) -> str:
        return _sha(f"config:{self.repo}{self.variant}")

    @property
    def digest(self) -> str:
        return self.pinned_digest or f"sha256:{_sha(f'manifest:{self.repo}{self.variant}')}"

    @property
    def repos(self) -> tuple[str, ...]:
        return (self.repo, *self.aliases)

    @property
    def repo_tags(self) -> list[str]:
        return [f"{self.repo}:{t}" for t in self.tags]

    @property
    def repo_digests(self) -> list[str]:
        return [f"{self.repo}@{self.digest}"]

    def layer_sizes(self) -> list[int]:
        """Splits the size over the layers, the first layer the largest, as base layers are."""
        if self.layers <= 1:
            return [self.size]
        first = self.size // 2
        rest = (self.size - first) // (self.layers - 1)
        sizes = [first] + [rest] * (self.layers - 1)
        sizes[-1] += self.size - sum(sizes)
        return sizes


CATALOGUE: tuple[CatalogImage, ...] = (
    CatalogImage("docker.io/library/busybox", ("latest", "1.36", "1.37"), 4_261_550, cmd=("sh",)),
    CatalogImage("docker.io/library/alpine", ("latest", "3.20", "3.21"), 8_283_404, cmd=("/bin/sh",)),
    CatalogImage("docker.io/library/nginx", ("latest", "1.27", "1.29"), 192_004_242,
                 cmd=("nginx", "-g", "daemon off;"), layers=7),
    CatalogImage("registry.k8s.io/pause", ("3.10", "3.10.1", "3.10.2"), 736_115, entrypoint=("/pause",), user="65535"),
    CatalogImage("registry.k8s.io/e2e-test-images/busybox", ("1.29-2", "1.36.1-1"), 1_374_155, cmd=("sh",)),
    # A deliberately large image for demos of slow, layered pulls.
    CatalogImage("quay.io/cristack/big-data", ("latest", "1.0"), 2_147_483_648, cmd=("sleep", "3600"), layers=12),
    # The images critest's image specs pull (cri-tools images/build): busybox with a marker file or
    # a USER; test-image-tag's tags are different images, test-image-tags' the same one, and
    # pause:3.9 is one image under two registry names.
    *(CatalogImage(f"{_CRITEST}/test-image-{n}", ("latest",), 2_160_000, cmd=("sh",)) for n in ("1", "2", "3")),
    CatalogImage(f"{_CRITEST}/test-image-latest", ("latest",), 2_160_000, cmd=("sh",)),
    CatalogImage(f"{_CRITEST}/test-image-digest", ("latest",), 2_160_000, cmd=("sh",), pinned_digest=(
        "sha256:9700f9a2f5bf2c45f2f605a0bd3bce7cf37420ec9d3ed50ac2758413308766bf")),
    CatalogImage(f"{_CRITEST}/test-image-tags", ("1", "2", "3"), 2_160_000, cmd=("sh",)),
    *(CatalogImage(f"{_CRITEST}/test-image-tag", (t,), 2_160_000, cmd=("sh",), variant=t) for t in ("test", "all")),
    CatalogImage(f"{_CRITEST}/test-image-user-uid", ("latest",), 2_160_000, cmd=("sh",), user="1002"),
    CatalogImage(f"{_CRITEST}/test-image-user-username", ("latest",), 2_160_000, cmd=("sh",), user="www-data"),
    CatalogImage(f"{_CRITEST}/test-image-user-uid-group", ("latest",), 2_160_000, cmd=("sh",), user="1003:1004"),
    CatalogImage(f"{_CRITEST}/test-image-user-username-group", ("latest",), 2_160_000, cmd=("sh",),
                 user="www-data:1004"),
    CatalogImage("registry.k8s.io/e2e-test-images/httpd", ("2.4.39-4",), 50_300_000, cmd=("httpd-foreground",),
                 layers=5),
    CatalogImage("registry.k8s.io/pause", ("3.9",), 744_000, entrypoint=("/pause",), user="65535",
                 aliases=("k8s.gcr.io/pause",), variant="3.9"),
)


class ImageNotFound(LookupError):
    """The reference names no image of the catalogue; the message reads like a registry's.

    ``status`` is what the registry would have answered the manifest request with (404 for a repository
    or tag it does not hold, 401 where Docker Hub refuses an unknown repository), or None when there is no
    such registry (the host does not resolve)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# A registry host -> the catalogue namespace it serves (``{"127.0.0.1:5000": "docker.io/library"}``: the
# reference 127.0.0.1:5000/busybox:latest is docker.io/library/busybox:latest under another name).
Mirrors = Mapping[str, str]


@dataclass(frozen=True)
class Reference:
    repo: str
    tag: str = ""
    digest: str = ""

    def __str__(self) -> str:
        return f"{self.repo}@{self.digest}" if self.digest else f"{self.repo}:{self.tag}"


def parse_reference(ref: str) -> Reference:
    """Normalises a reference the way container tools do: ``busybox`` means
    ``docker.io/library/busybox:latest``. Raises ValueError for a malformed one."""
    text = ref.strip()
    if not text or any(c.isspace() for c in text) or text != text.lower() and "@" not in text:
        raise ValueError(f"invalid reference format: {ref!r}")
    digest = ""
    if "@" in text:
        text, digest = text.split("@", 1)
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise ValueError(f"invalid reference format: {ref!r}: bad digest")
    name, tag = text, ""
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        name, tag = text[:colon], text[colon + 1:]
        if not tag:
            raise ValueError(f"invalid reference format: {ref!r}: empty tag")
    if not name:
        raise ValueError(f"invalid reference format: {ref!r}")
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = f"{DEFAULT_REGISTRY}/{name}" if "/" in name else f"{DEFAULT_REGISTRY}/library/{name}"
    if not tag and not digest:
        tag = "latest"
    return Reference(name, tag, digest)


def registry_of(repo: str) -> str:
    """The registry host of a normalised repository (``docker.io/library/busybox`` -> ``docker.io``)."""
    return repo.split("/", 1)[0]


# The registries the catalogue's images come from: they exist, so an image they lack is a 404, not a DNS error.
KNOWN_REGISTRIES = frozenset(registry_of(repo) for img in CATALOGUE for repo in img.repos)


def image_id_of(ref: str) -> str:
    """The hex id (or id prefix, at least 12 digits) that ``ref`` is, or ''."""
    bare = ref.strip().removeprefix("sha256:")
    return bare if len(bare) >= 12 and all(c in "0123456789abcdef" for c in bare) else ""


def catalogue_repo(repo: str, mirrors: Mirrors | None = None) -> str:
    """The catalogue repository a repository names: itself, or what a mirror host stands for."""
    host, _, path = repo.partition("/")
    prefix = (mirrors or {}).get(host)
    return f"{prefix.rstrip('/')}/{path}" if prefix is not None and path else repo


def lookup(ref: str, mirrors: Mirrors | None = None) -> tuple[CatalogImage, Reference]:
    """Finds the catalogue image a reference or image id names, or raises ImageNotFound. The reference
    returned is the one asked for (normalised): through a mirror it keeps the mirror's name."""
    text = ref.strip()
    bare = image_id_of(text)
    if bare:
        for img in CATALOGUE:
            if img.id.startswith(bare):
                return img, Reference(img.repo, img.tags[0])
    try:
        parsed = parse_reference(text)
    except ValueError as err:
        raise ImageNotFound(str(err)) from None
    repo = catalogue_repo(parsed.repo, mirrors)
    candidates = [img for img in CATALOGUE if repo in img.repos]
    for img in candidates:
        if (parsed.digest and parsed.digest == img.digest) or (not parsed.digest and parsed.tag in img.tags):
            return img, parsed
    if candidates:
        raise ImageNotFound(f"reading manifest {parsed.digest or parsed.tag} in {parsed.repo}: manifest unknown",
                            404)
    registry = registry_of(parsed.repo)
    if registry == DEFAULT_REGISTRY:
        raise ImageNotFound(f"reading manifest {parsed.tag or parsed.digest} in {parsed.repo}: "
                            "requested access to the resource is denied", 401)
    if registry in KNOWN_REGISTRIES or registry in (mirrors or {}):
        raise ImageNotFound(f"reading manifest {parsed.tag or parsed.digest} in {parsed.repo}: manifest unknown",
                            404)
    raise ImageNotFound(f"pinging container registry {registry}: Get \"https://{registry}/v2/\": "
                        f"dial tcp: lookup {registry}: no such host")


