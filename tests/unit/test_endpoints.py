from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from cristack.files import confine
from cristack.wire.endpoints import SocketInUse, claim_unix_socket, is_loopback, parse_endpoint


@pytest.mark.parametrize("text, target", [
    ("unix:///run/x.sock", "unix:///run/x.sock"),
    ("/run/x.sock", "unix:///run/x.sock"),
    ("127.0.0.1:1234", "127.0.0.1:1234"),
    ("tcp://localhost:99", "localhost:99"),
    (":4317", "127.0.0.1:4317"),
    ("[::1]:80", "[::1]:80"),
])
def test_parse(text: str, target: str) -> None:
    assert parse_endpoint(text).grpc_target == target


@pytest.mark.parametrize("text", ["", "unix://relative", "http://x:1", "host", "host:99999", "host:port"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text)


def test_loopback() -> None:
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


def test_private_dir_and_refusal_to_replace_files(tmp_path: Path) -> None:
    sock = tmp_path / "priv" / "a.sock"
    claim_unix_socket(sock, private_parent=True).release()
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
    sock.write_text("not a socket")
    with pytest.raises(ValueError, match="not a socket"):
        claim_unix_socket(sock, private_parent=True)
    assert sock.read_text() == "not a socket"


def test_confine(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    root.mkdir()
    assert confine(root, "a/b.log") == (root / "a/b.log").resolve()
    assert confine(root, str(root / "x")) == (root / "x").resolve()
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(ValueError):
            confine(root, bad)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError):
        confine(root, "link/escape.log")


def _listening(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(1)
    return s


def test_a_claim_refuses_a_live_socket_removes_a_stale_one_and_releases_only_its_own(tmp_path: Path) -> None:
    sock = tmp_path / "a.sock"
    live = _listening(sock)
    with pytest.raises(SocketInUse, match="already existing connection"):
        claim_unix_socket(sock, private_parent=False)
    live.close()  # the file stays: a stale socket, which a claim removes
    claim = claim_unix_socket(sock, private_parent=False)
    assert not sock.exists()
    with pytest.raises(SocketInUse, match=f"pid {os.getpid()} serves it"):
        claim_unix_socket(sock, private_parent=False)  # held, though nothing is bound yet
    ours = _listening(claim.listen_path)
    claim.link()
    assert sock.samefile(claim.listen_path)
    ours.close()
    sock.unlink()
    successor = _listening(sock)  # another server took the path after ours went
    claim.release()
    assert sock.exists(), "release removes only the socket file this claim bound"
    successor.close()
    claim_unix_socket(sock, private_parent=False).release()  # released: the path is free again


def test_without_hard_links_the_socket_moves_to_the_path(tmp_path: Path, monkeypatch) -> None:
    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    sock = tmp_path / "b.sock"
    claim = claim_unix_socket(sock, private_parent=False)
    server = _listening(claim.listen_path)
    monkeypatch.setattr(os, "link", no_links)
    claim.link()
    assert claim.listen_path == sock and stat.S_ISSOCK(sock.lstat().st_mode)
    assert not list(tmp_path.glob(".b.sock.*"))
    server.close()
    claim.release()
    assert not sock.exists()
