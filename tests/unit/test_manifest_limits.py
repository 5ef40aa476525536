"""Hostile and careless static pod manifests are refused as the real kubelet refuses them (the API's pod
validation, go-yaml's alias and depth limits, the 10 MiB read limit), each error line is bounded, and a
manifest is parsed once per change, not on every scan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cristack.config.yamlload import YamlError, load
from fake_kubelet.manifests import MAX_MANIFEST_BYTES, ManifestCache, ManifestError, parse_pod, scan
from fake_kubelet.podvalidation import TOTAL_ANNOTATION_SIZE_LIMIT_B


def _bomb(levels: int = 9, fan: int = 8) -> bytes:
    """The issue's shape: under ``kind:``, each level anchors a list of ``fan`` aliases of the level below
    (about fan**levels nodes once expanded) in a few hundred bytes."""
    inner = "&a0 [" + ", ".join("x" * fan) + "]"
    for i in range(1, levels + 1):
        inner = f"&a{i} [{inner}, " + ", ".join([f"*a{i - 1}"] * (fan - 1)) + "]"
    return f"apiVersion: v1\nkind: {inner}\nmetadata: {{name: x}}\nspec: {{containers: [{{name: a, image: b}}]}}\n"\
        .encode()


BOMB = _bomb()


def pod(meta: str = "name: web", container: str = "name: main, image: busybox", extra: str = "") -> bytes:
    return (f"apiVersion: v1\nkind: Pod\nmetadata: {{{meta}}}\nspec:\n{extra}"
            f"  containers:\n  - {{{container}}}\n").encode()


def refusal(content: bytes, source: str = "m.yaml") -> str:
    with pytest.raises(ManifestError) as err:
        parse_pod(content, source)
    text = str(err.value)
    assert text.startswith(f"{source}: ") and len(text) < 1000, text[:2000]
    return text


def test_an_alias_bomb_is_refused_as_go_yaml_refuses_it_with_a_short_message() -> None:
    assert len(BOMB) < 600
    text = refusal(BOMB)
    assert "yaml: document contains excessive aliasing" in text


def test_an_anchor_that_contains_itself_is_refused() -> None:
    assert "anchor value contains itself" in refusal(b"kind: &a [Pod, *a]\n")


def test_aliases_within_go_yamls_ratio_are_accepted() -> None:
    doc = pod("name: web, labels: &l {app: web}, annotations: *l")
    assert parse_pod(doc, "m.yaml").annotations == {"app": "web"}
    # A document made mostly of aliases but small: go-yaml lets 99% of up to 400,000 decodes come from them.
    many = "x: &a [" + ", ".join(["v"] * 50) + "]\n" + "".join(f"y{i}: *a\n" for i in range(200))
    assert len(load(many.encode())) == 201


def test_nesting_beyond_the_parsers_limit_is_an_error_not_a_crash() -> None:
    for deep in (b"[" * 100_000 + b"]" * 100_000, b"".join(b" " * i + b"k:\n" for i in range(3000))):
        with pytest.raises(YamlError, match="nesting depth|max depth"):
            load(deep)
        assert "invalid YAML" in refusal(deep)


@pytest.mark.parametrize(("meta", "container", "field", "why"), [
    ("name: Bad_Name", "name: main, image: b", "metadata.name", "lowercase RFC 1123 subdomain"),
    (f"name: {'a' * 254}", "name: main, image: b", "metadata.name", "no more than 253 characters"),
    ("name: web, namespace: Prod", "name: main, image: b", "metadata.namespace", "RFC 1123 label"),
    ("name: web, namespace: a.b", "name: main, image: b", "metadata.namespace", "must not contain dots"),
    ("name: web, labels: {'bad key!': x}", "name: main, image: b", "metadata.labels", "name part"),
    ("name: web, labels: {app: 'not a value'}", "name: main, image: b", "metadata.labels", "valid label"),
    (f"name: web, labels: {{app: {'v' * 64}}}", "name: main, image: b", "metadata.labels", "no more than 63"),
    ("name: web, annotations: {'a/b/c': x}", "name: main, image: b", "metadata.annotations", "label key"),
    ("name: web, uid: ../../etc", "name: main, image: b", "metadata.uid", "one path component"),
    ("name: web", "name: Main_1, image: b", "spec.containers[0].name", "RFC 1123 label"),
    ("name: web", "name: main, image: b, env: [{name: 'A=B', value: x}]", "spec.containers[0].env[0].name",
     "printable ASCII characters other than '='"),
])
def test_the_apis_pod_validation_refuses_what_the_kubelet_refuses(meta: str, container: str, field: str,
                                                                  why: str) -> None:
    text = refusal(pod(meta, container))
    assert f"invalid pod: {field}: Invalid value: " in text and why in text


def test_valid_names_labels_and_env_pass() -> None:
    got = parse_pod(pod("name: web.v2, namespace: kube-system, labels: {example.com/App_1: x.y-z, e: ''}, "
                        "annotations: {Example.com/Note: anything at all}",
                        "name: main-2, image: b, env: [{name: 'my.var-1', value: x}, {name: '1st', value: y}]"),
                    "m.yaml")
    assert (got.name, got.namespace, got.labels["example.com/App_1"]) == ("web.v2", "kube-system", "x.y-z")


def test_annotations_are_capped_at_256_KiB_in_total() -> None:
    fits = "x" * (TOTAL_ANNOTATION_SIZE_LIMIT_B - 2)
    assert parse_pod(pod(f"name: web, annotations: {{a: {fits}}}"), "m.yaml").annotations["a"] == fits
    half = "x" * (TOTAL_ANNOTATION_SIZE_LIMIT_B // 2)
    text = refusal(pod(f"name: web, annotations: {{a: {half}, b: {half}}}"))
    assert "invalid pod: metadata.annotations: Too long: may not be more than 262144 bytes" in text
    assert half not in text


def test_values_are_cut_in_every_message() -> None:
    huge = "k" * 5_000_000
    for doc in (f"kind: {huge}\n".encode(), pod(f"name: {huge}"), pod(f"name: web, labels: {{a: {huge}}}"),
                pod(extra=f"  restartPolicy: {huge}\n"), pod(f"name: web, {huge}: 1")):
        assert "k" * 100 not in refusal(doc)


def test_a_manifest_of_10_MiB_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(pod() + b"#" * MAX_MANIFEST_BYTES)
    (tmp_path / "ok.yaml").write_bytes(pod("name: ok"))
    cache = ManifestCache()
    pods, errors = scan(tmp_path, "node", cache=cache)
    assert [p.name for p in pods.values()] == ["ok"]
    assert len(errors) == 1 and "big.yaml: the read limit is reached" in errors[0] and "10 MiB" in errors[0]
    # Just under the limit is read and parsed.
    big.write_bytes(pod("name: big") + b"#" * (MAX_MANIFEST_BYTES - 200))
    pods, errors = scan(tmp_path, "node", cache=cache)
    assert sorted(p.name for p in pods.values()) == ["big", "ok"] and not errors


def test_a_manifest_is_parsed_once_per_change_not_per_scan(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_bytes(pod())
    (tmp_path / "bad.yaml").write_bytes(b"kind: Pod\n")
    cache = ManifestCache()
    first, errors = scan(tmp_path, "node", cache=cache)
    for _ in range(5):
        again, errors_again = scan(tmp_path, "node", cache=cache)
        assert again == first and errors_again == errors
    assert cache.parses == 2, "each file parsed once over six scans"
    path.write_bytes(pod("name: web, namespace: other"))  # an edit in place
    edited, _ = scan(tmp_path, "node", cache=cache)
    assert cache.parses == 3 and [p.namespace for p in edited.values()] == ["other"]
    replacement = tmp_path / ".web.yaml.swp"
    replacement.write_bytes(pod("name: web, namespace: third"))
    os.replace(replacement, path)  # an editor's save: a new inode
    replaced, _ = scan(tmp_path, "node", cache=cache)
    assert cache.parses == 4 and [p.namespace for p in replaced.values()] == ["third"]
    path.unlink()
    gone, _ = scan(tmp_path, "node", cache=cache)
    assert not gone and cache.parses == 4


def test_a_symlink_is_followed_as_the_kubelet_follows_it_but_nothing_it_points_at_is_echoed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "shadow"
    secret.write_text("root:$6$s3cr3t-hash:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n")
    (outside / "pod.yaml").write_bytes(pod("name: linked"))
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "a.yaml").symlink_to(secret)
    (manifests / "b.yaml").symlink_to(outside / "pod.yaml")
    (manifests / "c.yaml").symlink_to("/dev/zero")
    os.mkfifo(manifests / "d.yaml")
    (manifests / "e.yaml").symlink_to(tmp_path / "nowhere")
    pods, errors = scan(manifests, "node", cache=ManifestCache())
    assert [p.name for p in pods.values()] == ["linked"]
    assert len(errors) == 1 and "a.yaml" in errors[0]
    assert "s3cr3t" not in errors[0] and "root:" not in errors[0], errors[0]


def test_many_containers_are_checked_in_linear_time() -> None:
    containers = "".join(f"  - {{name: c{i}, image: b}}\n" for i in range(20_000)) + "  - {name: c7, image: b}\n"
    doc = f"apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  containers:\n{containers}".encode()
    assert "duplicate container name(s) c7" in refusal(doc)


def test_an_alias_is_found_whatever_the_encoding_or_the_spacing() -> None:
    for doc in (BOMB.decode().encode("utf-16"), b"\xef\xbb\xbf" + BOMB, BOMB.replace(b", *", b",*")):
        assert "excessive aliasing" in refusal(doc)
    assert parse_pod(pod(container="name: main, image: b, command: [sh, -c, 'ls *.txt']"), "m.yaml")


@pytest.mark.parametrize(("probe", "grace", "field"), [
    ("failureThreshold: .nan", 30, "livenessProbe.failureThreshold"),
    ("initialDelaySeconds: .inf", 30, "livenessProbe.initialDelaySeconds"),
    ("timeoutSeconds: 99999999999999999999999", 30, "livenessProbe.timeoutSeconds"),
    ("periodSeconds: 10", 10**30, "spec.terminationGracePeriodSeconds"),
])
def test_numbers_outside_their_api_type_are_refused(probe: str, grace: int, field: str) -> None:
    doc = pod(container=f"name: main, image: b, livenessProbe: {{exec: {{command: ['true']}}, {probe}}}",
              extra=f"  terminationGracePeriodSeconds: {grace}\n")
    assert field in refusal(doc)


def test_one_manifest_that_trips_the_parser_does_not_stop_the_scan(tmp_path: Path, monkeypatch) -> None:
    import fake_kubelet.manifests as manifests

    real = manifests.parse_pod

    def flaky(content: bytes, source: str, node: str = "n") -> object:
        if source.endswith("bad.yaml"):
            raise ZeroDivisionError("a case nobody foresaw")
        return real(content, source, node)

    monkeypatch.setattr(manifests, "parse_pod", flaky)
    (tmp_path / "bad.yaml").write_bytes(pod("name: bad"))
    (tmp_path / "good.yaml").write_bytes(pod("name: good"))
    pods, errors = scan(tmp_path, "node")
    assert [p.name for p in pods.values()] == ["good"]
    assert len(errors) == 1 and "bad.yaml: cannot be read as a pod: ZeroDivisionError" in errors[0]
