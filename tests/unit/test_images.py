"""Image references and the catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from cristack.images.catalogue import ImageNotFound, lookup, parse_reference
from cristack.images.store import ImageStore


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


@pytest.mark.parametrize("ref, words, status", [
    ("busybox:9.9", "manifest unknown", 404),
    ("no-such-image", "requested access to the resource is denied", 401),
    ("registry.k8s.io/no-such-image:1", "manifest unknown", 404),
    ("registry.invalid/foo:1", "no such host", None),
])
def test_unknown_images_read_like_registry_errors(ref: str, words: str, status: int | None) -> None:
    with pytest.raises(ImageNotFound, match=words) as err:
        lookup(ref)
    assert err.value.status == status


MIRRORS = {"127.0.0.1:5000": "docker.io/library", "127.0.0.1:5001": "registry.k8s.io"}


def test_a_mirror_serves_its_namespace_of_the_catalogue_under_its_own_name() -> None:
    img, parsed = lookup("127.0.0.1:5000/busybox:latest", MIRRORS)
    assert img is lookup("docker.io/library/busybox:latest")[0]
    assert str(parsed) == "127.0.0.1:5000/busybox:latest"
    assert lookup("127.0.0.1:5001/pause:3.10", MIRRORS)[0].repo == "registry.k8s.io/pause"
    with pytest.raises(ImageNotFound) as err:  # the mirror exists; it lacks the repository
        lookup("127.0.0.1:5000/nonexistent:latest", MIRRORS)
    assert err.value.status == 404
    with pytest.raises(ImageNotFound, match="no such host"):  # without the mirror there is no such registry
        lookup("127.0.0.1:5000/busybox:latest")


def test_an_image_pulled_through_a_mirror_is_found_and_digested_under_the_mirror_name(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, mirrors=MIRRORS)
    stored = store.add(*store.lookup("127.0.0.1:5000/busybox:latest"))
    assert store.find("127.0.0.1:5000/busybox:latest") is stored
    assert store.find("busybox:latest") is None  # never pulled under the catalogue's own name
    assert stored.repo_digests == [f"127.0.0.1:5000/busybox@{stored.catalog.digest}"]
    assert ImageStore(tmp_path, mirrors=MIRRORS).find("127.0.0.1:5000/busybox:latest") is not None


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
