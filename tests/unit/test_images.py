"""Image references and the catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from fake_crio.images import ImageNotFound, ImageStore, lookup, parse_reference


@pytest.mark.parametrize("ref, expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/nginx", "docker.io/library/nginx:latest"),
    ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
])
def test_parse_reference_normalises(ref: str, expected: str) -> None:
    assert str(parse_reference(ref)) == expected


@pytest.mark.parametrize("ref", ["", "Busy Box", "busybox:", "busybox@sha256:short"])
def test_parse_reference_rejects(ref: str) -> None:
    with pytest.raises(ValueError):
        parse_reference(ref)


def test_lookup_by_tag_digest_and_id() -> None:
    img, _ = lookup("busybox")
    assert lookup(img.repo_digests[0])[0] is img
    assert lookup(img.id[:12])[0] is img
    assert lookup(f"sha256:{img.id}")[0] is img
    assert lookup("registry.k8s.io/e2e-test-images/busybox:1.29-2")[0].repo == "registry.k8s.io/e2e-test-images/busybox"


@pytest.mark.parametrize("ref, words", [
    ("busybox:9.9", "manifest unknown"),
    ("no-such-image", "requested access to the resource is denied"),
    ("registry.invalid/foo:1", "no such host"),
])
def test_unknown_images_read_like_registry_errors(ref: str, words: str) -> None:
    with pytest.raises(ImageNotFound, match=words):
        lookup(ref)


def test_store_persists_and_finds(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    img, parsed = lookup("busybox:1.36")
    store.add(img, parsed)
    again = ImageStore(tmp_path)
    assert again.find("busybox:1.36") is not None
    assert again.find("busybox") is None  # the :latest tag was never pulled
    assert again.find(img.repo_digests[0]) is not None
    assert again.remove(img.id) and ImageStore(tmp_path).find("busybox:1.36") is None


def test_layers_add_up() -> None:
    for ref in ("nginx", "busybox", "quay.io/cristack/big-data"):
        img, _ = lookup(ref)
        assert sum(img.layer_sizes()) == img.size and len(img.layer_sizes()) == img.layers
