"""Our containerd and ttrpc protos (proto/containerd, proto/ttrpc) against upstream's: every message,
enum, field (name, number, type, label) and service method we define is upstream's, and every service
we define has all of upstream's methods. Upstream's files come from the Go module cache: the ttrpc
interop peer (tools/ttrpc-peer) requires github.com/containerd/containerd/api at the version
containerd v2.4.2 requires, and github.com/containerd/ttrpc v1.2.9."""

from __future__ import annotations

from pathlib import Path

import pytest

from cristack.wire.protogen import PROTO_DIR, PROTOS
from tests.conftest import IN_CI
from tests.support.protofacts import descriptor, facts, go_module_dir

API_MODULE = ("github.com/containerd/containerd/api", "v1.12.0")  # containerd v2.4.2's go.mod
TTRPC_MODULE = ("github.com/containerd/ttrpc", "v1.2.9")

# ours (under proto/) -> (module, upstream path inside it)
PAIRS = {
    "ttrpc/request.proto": (TTRPC_MODULE, "request.proto"),
    "containerd/types/mount.proto": (API_MODULE, "types/mount.proto"),
    "containerd/types/event.proto": (API_MODULE, "types/event.proto"),
    "containerd/types/task/task.proto": (API_MODULE, "types/task/task.proto"),
    "containerd/runtime/task/v3/shim.proto": (API_MODULE, "runtime/task/v3/shim.proto"),
    "containerd/runtime/bootstrap/v1/bootstrap.proto": (API_MODULE, "runtime/bootstrap/v1/bootstrap.proto"),
    "containerd/events/task.proto": (API_MODULE, "events/task.proto"),
    "containerd/services/ttrpc/events/v1/events.proto": (API_MODULE, "services/ttrpc/events/v1/events.proto"),
    "containerd/services/events/v1/events.proto": (API_MODULE, "services/events/v1/events.proto"),
    "containerd/services/version/v1/version.proto": (API_MODULE, "services/version/v1/version.proto"),
}


def _google_rpc_root() -> Path:
    import google.rpc.status_pb2 as status_pb2

    return Path(status_pb2.__file__).resolve().parents[2]


def test_every_containerd_proto_is_compared() -> None:
    assert sorted(PAIRS) == sorted(p for p in PROTOS if p.startswith(("containerd/", "ttrpc/")))


@pytest.mark.parametrize("ours", sorted(PAIRS))
def test_proto_has_upstream_names_numbers_and_types(ours: str, tmp_path: Path) -> None:
    (module, version), upstream_rel = PAIRS[ours]
    root = go_module_dir(module, version)
    if root is None or not (root / upstream_rel).exists():
        msg = f"{module}@{version} is not in the Go module cache (`make tools` puts it there with the ttrpc peer)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    theirs = facts(descriptor(root, upstream_rel, _google_rpc_root()))
    mine = facts(descriptor(PROTO_DIR, ours, _google_rpc_root()))
    extra = sorted(set(mine) - set(theirs))
    differ = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
    assert not (extra or differ), f"extra={extra} differ={[(k, mine[k], theirs[k]) for k in differ]}"
    # Services are whole: a peer may call any method of a service we claim to serve.
    assert {k for k in theirs if k.startswith("service ")} <= set(mine)


@pytest.mark.parametrize("ours", sorted(PAIRS))
def test_comments_are_our_own(ours: str) -> None:
    text = (PROTO_DIR / ours).read_text()
    assert "Licensed under the Apache License" not in text and "Copyright" not in text
