"""The network applets (cristack/containers/applets/netutils.py): without a network they fail as busybox's do."""

from __future__ import annotations

from tests.support.applets import run_applet


def test_network_applets_fail_like_busybox_without_a_network() -> None:
    assert run_applet("nslookup", "kubernetes.default") == (
        1, ";; connection timed out; no servers could be reached\n\n", "")
    assert run_applet("wget", "-qO-", "http://example.com/") == (1, "", "wget: bad address 'example.com'\n")
    assert run_applet("wget", "http://10.0.0.1:8080/x")[2] == (
        "Connecting to 10.0.0.1 (10.0.0.1:8080)\n"
        "wget: can't connect to remote host (10.0.0.1): Network is unreachable\n")
