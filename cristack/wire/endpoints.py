"""Where a component listens or connects: ``unix:///path``, a bare path, or ``host:port``.

Unix sockets are the default (like CRI-O's /var/run/crio/crio.sock); TCP is used only when a
user asks for it, and listening on anything but loopback draws a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
MAX_UNIX_PATH = 107  # sun_path is 108 bytes, with the terminating NUL
DIR_MODE = 0o700


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint: a unix socket path, or a TCP host and port."""

    path: Path | None = None
    host: str = ""
    port: int = 0

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    @property
    def grpc_target(self) -> str:
        """The address form grpc accepts for both servers and channels."""
        if self.path is not None:
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.grpc_target


def parse_endpoint(text: str) -> Endpoint:
    """Parses ``unix:///abs/path``, ``/abs/path``, ``host:port`` or ``tcp://host:port``.

    Raises ValueError with a message fit for a user.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty endpoint")
    if value.startswith("unix://"):
        rest = value[len("unix://"):]
        if not rest.startswith("/"):
            raise ValueError(f"{text!r}: a unix endpoint needs an absolute path (unix:///path/to.sock)")
        return Endpoint(path=Path(rest))
    if value.startswith("/"):
        return Endpoint(path=Path(value))
    if value.startswith("tcp://"):
        value = value[len("tcp://"):]
    if "://" in value:
        raise ValueError(f"{text!r}: unsupported scheme (use unix:///path or host:port)")
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{text!r}: expected unix:///path or host:port")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: port out of range")
    host = host.strip("[]") or "127.0.0.1"
    return Endpoint(host=host, port=port)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_runtime_dir() -> Path:
    """A private per-user directory for sockets when the user names none."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"cristack-{os.getuid()}"


def private_dir(path: Path) -> Path:
    """Creates ``path`` (and parents) if missing and makes sure it is 0700 and ours.

    Refuses a directory owned by someone else: another user could swap our socket.
    """
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise ValueError(f"{path} belongs to uid {st.st_uid}, not to us")
    if stat.S_IMODE(st.st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def prepare_unix_listener(path: Path, *, private_parent: bool) -> None:
    """Gets ``path`` ready to bind: parent directory present (0700 when private), stale socket gone.

    A live file that is not a socket is never removed.
    """
    if len(os.fsencode(path)) > MAX_UNIX_PATH:
        raise ValueError(f"{path}: a unix socket path may have at most {MAX_UNIX_PATH} bytes")
    if private_parent:
        private_dir(path.parent)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ValueError(f"{path} exists and is not a socket; refusing to replace it")
        path.unlink()


@contextlib.contextmanager
def socket_umask() -> Iterator[None]:
    """Around a bind: the socket file is born with ``SOCKET_MODE``, so that no client ever finds it with the
    process's default mode (the umask is the process's, and nothing else creates files while a server binds)."""
    old = os.umask(0o777 & ~SOCKET_MODE)
    try:
        yield
    finally:
        os.umask(old)


def secure_socket(path: Path) -> None:
    """Sets the socket file's mode once the server has bound it (a second line behind ``socket_umask``)."""
    os.chmod(path, SOCKET_MODE)


def warn_if_exposed(ep: Endpoint, component: str) -> None:
    """Warns when a TCP listener is reachable from other machines."""
    if not ep.is_unix and not is_loopback(ep.host):
        log.warning("%s listens on %s:%d, which is not loopback: anyone who can reach it can drive it",
                    component, ep.host, ep.port)


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback TCP ports that were free a moment ago (all held at once while choosing)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def serving(ep: Endpoint, timeout: float = 0.2) -> bool:
    """True when something accepts connections at ``ep`` (blocking; see ``accepts`` inside an event loop)."""
    try:
        if ep.path is not None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(str(ep.path))
        else:
            with socket.create_connection((ep.host, ep.port), timeout=timeout):
                pass
        return True
    except OSError:
        return False


async def accepts(ep: Endpoint, timeout: float = 0.2) -> bool:
    """``serving`` without blocking the event loop."""
    try:
        if ep.path is not None:
            opened = asyncio.open_unix_connection(str(ep.path))
        else:
            opened = asyncio.open_connection(ep.host, ep.port)
        _, writer = await asyncio.wait_for(opened, timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
