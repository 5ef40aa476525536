"""Where a component listens or connects: ``unix:///path``, a bare path, or ``host:port``.

Unix sockets are the default (like CRI-O's /var/run/crio/crio.sock); TCP is used only when a
user asks for it, and listening on anything but loopback draws a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import ipaddress
import logging
import os
import socket
import stat
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cristack.wire.errors import ConfigError

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
MAX_UNIX_PATH = 107  # sun_path is 108 bytes, with the terminating NUL
GRPC_MAX_UNIX_PATH = 106  # grpc-core refuses 107 ("Path name should not have more than 107 characters")
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


class SocketInUse(ConfigError, ValueError):
    """Something already serves on the socket path: we refuse to take it over (a config error, as CRI-O's
    ``RemoveUnusedSocket`` makes it one: "already existing connection on PATH")."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(str(path), "", f"already existing connection ({holder}); refusing to take it over: "
                         "stop that server first or choose another socket path")
        self.path = path


def _hold_name(path: Path) -> bytes:
    """The abstract-namespace name (Linux; no file, gone with its process even on SIGKILL) that the server of
    ``path`` binds for as long as it serves: binding is atomic, so of two servers started together on one path
    exactly one gets it."""
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:40]
    return b"\0cristack-listen/" + digest.encode()


def _holder_pid(name: bytes) -> int | None:
    """The pid that holds ``name`` (SO_PEERCRED of a connection to it), when it answers at once."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.settimeout(0.2)
        try:
            s.connect(name)
            creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return None
    return struct.unpack("3i", creds)[0]


def _answers(path: Path) -> bool:
    """True when a connection to the socket at ``path`` is accepted, or refused for any reason other than
    nobody listening (a full backlog, EAGAIN, is a live server that is busy: slow is not dead)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.setblocking(False)
        try:
            s.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True
    return True


def _private_name(path: Path) -> Path:
    """Where a server of ``path`` binds before the path itself is linked to it (see SocketClaim)."""
    return path.with_name(f".{path.name}.{os.getpid()}")


@dataclass
class SocketClaim:
    """A unix socket path this process is entitled to serve on: held (see ``_hold_name``) from before the
    bind until ``release``, which removes the socket file only while it is still the one this process bound,
    never a successor's.

    grpc removes whatever socket sits at the path it bound when its server stops (grpc-core's listener:
    ``UnlinkIfUnixDomainSocket``), which would take a successor's socket with it. So the server binds a private
    name beside the path (``listen_path``, ``.NAME.PID``) and the path is made a hard link to it (``link``,
    atomic: it fails if anything appeared there meanwhile); grpc then removes only the private name, and
    ``release`` the path if it is still our inode. The path is kept open (O_PATH) from the link on, so that
    its inode cannot be freed and handed to a successor's socket, which would make the two look the same."""

    path: Path
    _hold: socket.socket | None
    listen_path: Path = Path()
    _bound: int | None = None  # an O_PATH descriptor of the socket file we serve at ``path``

    def __post_init__(self) -> None:
        private = _private_name(self.path)
        self.listen_path = private if len(os.fsencode(private)) <= GRPC_MAX_UNIX_PATH else self.path

    def link(self) -> None:
        """Makes ``path`` the socket the server has just bound at ``listen_path``, and records it."""
        if self.listen_path != self.path:
            try:
                os.link(self.listen_path, self.path)
            except FileExistsError:
                raise SocketInUse(self.path, "another server bound it meanwhile") from None
            except OSError:
                # A filesystem without hard links: the socket moves to the path itself (grpc will then remove
                # whatever is there when it stops, as it does for any server bound to the path directly).
                if os.path.lexists(self.path):
                    raise SocketInUse(self.path, "another server bound it meanwhile") from None
                os.rename(self.listen_path, self.path)
                self.listen_path = self.path
        self._bound = os.open(self.path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)

    def release(self) -> None:
        """Removes our socket file (if it is still ours) and lets the path go."""
        try:
            if self._bound is not None:
                ours, now = os.fstat(self._bound), self.path.lstat()
                if (ours.st_dev, ours.st_ino) == (now.st_dev, now.st_ino):
                    self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            if self._bound is not None:
                os.close(self._bound)
                self._bound = None
            if self.listen_path != self.path:
                with contextlib.suppress(FileNotFoundError):
                    self.listen_path.unlink()
            self._close_hold()

    def _close_hold(self) -> None:
        if self._hold is not None:
            self._hold.close()
            self._hold = None


def _remove_stale_private_names(path: Path) -> None:
    """Private names of servers of ``path`` killed before they could clean up (we hold the path: none of
    them is alive)."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*"):
        with contextlib.suppress(OSError):
            if leftover.name[len(path.name) + 2:].isdigit() and stat.S_ISSOCK(leftover.lstat().st_mode):
                leftover.unlink()


def claim_unix_socket(path: Path, *, private_parent: bool) -> SocketClaim:
    """Gets ``path`` ready to bind: parent directory present (0700 when private), the path held against other
    servers of ours, and a stale socket (one that nobody answers on) removed. Raises SocketInUse when a
    server of ours holds the path or any server answers on it (CRI-O's ``RemoveUnusedSocket``: dial, refuse
    on success, remove otherwise); ValueError for a file that is not a socket, which is never removed."""
    if len(os.fsencode(path)) > MAX_UNIX_PATH:
        raise ValueError(f"{path}: a unix socket path may have at most {MAX_UNIX_PATH} bytes")
    if private_parent:
        private_dir(path.parent)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    path = path.parent.resolve() / path.name
    hold = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        hold.bind(_hold_name(path))
        hold.listen(8)
    except OSError:
        hold.close()
        pid = _holder_pid(_hold_name(path))
        raise SocketInUse(path, f"pid {pid} serves it" if pid else "another process serves it") from None
    claim = SocketClaim(path, hold)
    os.register_at_fork(after_in_child=claim._close_hold)  # a forked child holds nothing of ours
    try:
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise ValueError(f"{path} exists and is not a socket; refusing to replace it")
            if _answers(path):
                raise SocketInUse(path, "a server answers on it")
            path.unlink()  # stale: its server is gone
        _remove_stale_private_names(path)
    except BaseException:
        claim.release()
        raise
    return claim


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
