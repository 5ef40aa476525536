"""A pull's fetch-and-unpack as containerd v2.4.2's unpacker does it (core/unpack/unpacker.go), with its spans:

- ``pkg.unpack.unpacker.UnpackHandler`` for each descriptor the image handler walks: the manifest (with
  ``descriptor.child.N`` = [media type, digest] of its config and layers) and the config, each with the GET
  that fetches it;
- ``pkg.unpack.unpacker.unpack`` for the layers, and under it per layer ``fetchLayer`` (its GET) and
  ``unpackLayer`` (the snapshot it becomes; the only span upstream ends with status OK), with the applier's
  debug lines (``diff applied``, ``layer unpacked``, ``image unpacked``).

Nothing is unpacked here: a layer's "snapshot" is a directory the snapshotter root keeps per image.
"""

from __future__ import annotations

import hashlib
import logging
import time

from opentelemetry.trace import Status, StatusCode

from cristack.images.catalogue import CatalogImage, Reference
from fake_containerd.remotes import CONFIG, LAYER, MANIFEST, Descriptor, Endpoint, Registry
from fake_containerd.tracing import ContainerdTracing

log = logging.getLogger(__name__)

CONFIG_SIZE = 1_500  # an image config's JSON


def layer_digests(img: CatalogImage) -> list[str]:
    """Stable layer digests for a catalogue image (derived from its name, as its other digests are)."""
    return [f"sha256:{hashlib.sha256(f'cristack:layer:{img.repo}{img.variant}:{i}'.encode()).hexdigest()}"
            for i in range(img.layers)]


def chain_id(img: CatalogImage) -> str:
    return f"sha256:{hashlib.sha256(':'.join(layer_digests(img)).encode()).hexdigest()}"


def _duration(ns: int) -> str:
    """A Go time.Duration's String() for a short span of time (``17.714136ms``)."""
    ms = ns / 1e6
    return f"{ms:.6f}".rstrip("0").rstrip(".") + "ms" if ms >= 1 else f"{ns / 1e3:.3f}".rstrip("0").rstrip(".") + "µs"


async def fetch_and_unpack(registry: Registry, tracing: ContainerdTracing, ref: Reference, img: CatalogImage,
                           manifest: Descriptor, ep: Endpoint) -> int:
    """The unpacker's handler over the manifest, its config and layers; returns the bytes pulled."""
    config = Descriptor(CONFIG, f"sha256:{img.id}", CONFIG_SIZE)
    layers = [Descriptor(LAYER, d, size) for d, size in zip(layer_digests(img), img.layer_sizes(), strict=True)]
    total = manifest.size + config.size + sum(layer.size for layer in layers)
    children = {f"descriptor.child.{i}": [d.media_type, d.digest] for i, d in enumerate([config, *layers])}
    with tracing.span("pkg.unpack.unpacker.UnpackHandler", {"descriptor.media.type": MANIFEST,
                                                             "descriptor.digest": manifest.digest, **children}):
        await registry.fetch(ep, ref, manifest, total)
    with tracing.span("pkg.unpack.unpacker.UnpackHandler", {"descriptor.media.type": CONFIG,
                                                             "descriptor.digest": config.digest}):
        await registry.fetch(ep, ref, config, total)
    started = time.monotonic_ns()
    with tracing.span("pkg.unpack.unpacker.unpack"):
        for layer in layers:
            layer_attrs = {"layer.media.type": layer.media_type, "layer.media.size": layer.size,
                           "layer.media.digest": layer.digest}
            # unpackLayer waits in a goroutine of its own for the layer that fetchLayer downloads: both are
            # children of unpack, and the applier's log lines land on unpack.
            applying = tracing.steps.start_span("pkg.unpack.unpacker.unpackLayer", attributes=layer_attrs)
            t0 = time.monotonic_ns()
            try:
                with tracing.span("pkg.unpack.unpacker.fetchLayer", layer_attrs):
                    await registry.fetch(ep, ref, layer, total)
                log.debug('file "." ignored: resolved to root')
                log.debug("diff applied", extra={"fields": {"d": _duration(time.monotonic_ns() - t0),
                                                            "digest": layer.digest, "size": layer.size,
                                                            "media": layer.media_type}})
                log.debug("layer unpacked", extra={"fields": {"layer": layer.digest,
                                                              "duration": _duration(time.monotonic_ns() - t0)}})
                applying.set_status(Status(StatusCode.OK))
            finally:
                applying.end()
        log.debug("image unpacked", extra={"fields": {"config": config.digest, "chainID": chain_id(img),
                                                      "parallel": False,
                                                      "duration": _duration(time.monotonic_ns() - started)}})
    return total
