"""PullImage as the CRI plugin does it (internal/cri/server/images/image_pull.go of containerd v2.4.2, through
the transfer service): the reference normalised, resolved and fetched with the registry's spans
(fake_containerd.remotes), unpacked (fake_containerd.unpack), recorded, and the attributes and log lines
upstream puts on the current span (``image.ref``, ``snapshotter.name``, ``image.id``, ``image.size.bytes``;
``Pull and unpack image complete``, ``stop pulling image ...``, ``Pulled image ...``).

Used by ImageService.PullImage and by RunPodSandbox for a missing sandbox image (ensurePauseImageExists).
"""

from __future__ import annotations

import logging
import time

from opentelemetry import trace

from cristack.images.catalogue import parse_reference
from cristack.wire.errors import InvalidArgument, NotFound
from fake_containerd.cri.errors import Unknown
from fake_containerd.cri.images.service import CRIImageService
from fake_containerd.remotes import RegistryError
from fake_containerd.tracing import add_event
from fake_containerd.unpack import fetch_and_unpack

log = logging.getLogger(__name__)

VERIFIER_DIR = "/opt/containerd/image-verifier/bin"


def go_duration(seconds: float) -> str:
    """time.Duration.String() for a pull's elapsed time (``122.003505ms``, ``1.5s``)."""
    if seconds < 1:
        return f"{seconds * 1e3:.6f}".rstrip("0").rstrip(".") + "ms"
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


async def pull_image(svc: CRIImageService, name: str) -> str:
    """CRIImageService.PullImage: returns the image id (``sha256:<config digest>``)."""
    span = trace.get_current_span()
    started = time.monotonic()
    try:
        parsed = parse_reference(name)
    except ValueError as err:
        raise InvalidArgument(f"failed to parse image reference {name!r}: {err}") from None
    ref = str(parsed)
    if ref != name:
        log.debug('PullImage using normalized image ref: "%s"', ref)
    snapshotter = svc.config.snapshotter
    span.set_attributes({"image.ref": ref, "snapshotter.name": snapshotter})
    log.debug('PullImage "%s" with snapshotter %s using transfer service', ref, snapshotter)
    log.debug("Getting new CRI credentials")
    log.debug("Calling cri transfer service")
    try:
        img, manifest, endpoint = await svc.registry.resolve(parsed)
        fields = {"verifier": "bindir", "name": ref, "digest": manifest.digest}
        log.debug("Verifying image pull", extra={"fields": fields})
        log.debug("Image verifier allowed pull", extra={"fields": {
            **fields, "ok": True, "reason": f"image verifier directory {VERIFIER_DIR} does not exist"}})
        size = await fetch_and_unpack(svc.registry, svc.tracing, parsed, img, manifest, endpoint)
    except RegistryError as err:
        what = f'failed to pull and unpack image "{ref}"'
        if err.not_found:
            raise NotFound(f"{what}: failed to resolve image: {ref}: not found") from None
        raise Unknown(f"{what}: {err}") from None
    finally:
        log.info("stop pulling image %s: active requests=0, bytes read=0", ref)
    add_event("Pull and unpack image complete")
    image_id = f"sha256:{img.id}"
    span.set_attribute("image.id", image_id)
    svc.store.add(img, parsed)
    repo_tag = ref if parsed.tag and not parsed.digest else ""
    repo_digest = f"{parsed.repo}@{manifest.digest}"
    for name_ in (image_id, repo_tag, repo_digest):
        if name_:
            log.debug("create image", extra={"fields": {"name": name_, "target": manifest.digest}})
    span.set_attribute("image.size.bytes", size)
    log.info('Pulled image "%s" with image id "%s", repo tag "%s", repo digest "%s", size "%d" in %s', name, image_id,
             repo_tag, repo_digest, size, go_duration(time.monotonic() - started))
    return image_id
