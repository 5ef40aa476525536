"""Where fake-containerd's shims bind their sockets: a unix socket path holds 107 bytes and a shim's socket name is
64 characters, so a long state directory (a node's base dir under a Kubernetes pod's emptyDir, uid 10001) falls
back to a short private directory, whichever first fits; every path given fits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cristack.wire.endpoints import MAX_UNIX_PATH
from fake_containerd.daemon import shim_socket_dir


def fits(directory: Path) -> bool:
    return len(os.fsencode(directory / ("f" * 64))) <= MAX_UNIX_PATH


def test_a_short_state_directory_keeps_the_upstream_layout():
    assert shim_socket_dir(Path("/run/containerd")) == Path("/run/containerd/s")


@pytest.mark.parametrize("runtime_dir", ["/tmp", "/tmp/k8s-abcdefgh/cristack-node-0/volumes/tmp"])
def test_a_long_state_directory_falls_back_to_a_short_one_that_fits(monkeypatch, runtime_dir):
    """The pod's /tmp with a five-digit uid (the user's runtime directory fits), and a long TMPDIR (only /tmp's
    does)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime_dir)
    monkeypatch.setattr(os, "getuid", lambda: 10001)
    state = Path(runtime_dir) / "cristack-up-jmndmscv" / "containerd-state"
    got = shim_socket_dir(state)
    assert fits(got) and not fits(state / "s")
    fallback = Path(runtime_dir if runtime_dir == "/tmp" else "/tmp") / "cristack-10001"
    assert got.parent == fallback
    assert shim_socket_dir(state) == got and shim_socket_dir(state.with_name("other")) != got, "one per daemon"
