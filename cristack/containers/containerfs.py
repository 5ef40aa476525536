"""A container's view of files: its mount table over a private scratch root, and its sysctls.

We cannot give a container process a mount namespace, so the applets resolve every path through
this view instead of the host's. A container sees:

- each CRI mount (``container_path`` -> ``host_path``, read-only or not) at its container path;
- its sysctls (from the sandbox config) as the files under ``/proc/sys``;
- everything else inside a private per-container scratch directory standing in for the rootfs.

Resolution walks the container path one component at a time and interprets every symlink it
meets *in the container's namespace* (as a chroot would): an absolute target starts again at the
container's ``/``, and ``..`` never climbs above it. A host path is only ever built by appending a
normalised container path to a mount's source or to the scratch root, so neither ``..`` nor a
symlink inside a mount can reach a host file the mounts do not name.

How the view reaches the applet: the runtime writes an OCI-style bundle ``config.json`` (the
``mounts`` and ``linux.sysctl`` of the runtime spec, as CRI-O hands to runc) and names the bundle
directory in the container's environment (``CRISTACK_BUNDLE``); the applet runner takes the
variable out of the environment before the applet runs, so the container never sees it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat as statmod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cristack.files import write_atomic

BUNDLE_ENV = "CRISTACK_BUNDLE"
CONFIG_NAME = "config.json"
PROCS_DIR = "procs"  # <bundle>/procs/<pid>: the argv of each process of the container (for ps)
OCI_VERSION = "1.2.0"
# The kernel's limit on symlinks followed while resolving one path (ELOOP beyond it).
MAX_SYMLINKS = 40


@dataclass(frozen=True)
class Mount:
    """One bind mount: ``source`` (a host path, symlinks already resolved) at ``destination``."""

    destination: str
    source: str
    readonly: bool = False


def mounts_from_cri(mounts: Iterable[Mapping[str, object]]) -> list[Mount]:
    """Turns CRI ``ContainerConfig.mounts`` (as dicts with proto field names) into bind mounts.

    Like CRI-O, a symlinked host path is resolved once, here, and the mount names its target.
    Unlike CRI-O, a missing host path is not created (a request must not make us create host
    directories); the container sees nothing there. Raises ValueError for a mount without an
    absolute container path or host path.
    """
    out: list[Mount] = []
    for m in mounts:
        dest = str(m.get("container_path", "") or "")
        src = str(m.get("host_path", "") or "")
        # CRI-O's wording (server/container_create_linux.go).
        if not dest:
            raise ValueError("mount.ContainerPath is empty")
        if not src:
            raise ValueError("mount.HostPath is empty")
        if not dest.startswith("/") or not src.startswith("/"):
            raise ValueError(f"mount {src!r} -> {dest!r}: both paths must be absolute")
        if "\x00" in dest or "\x00" in src:
            raise ValueError("mount path contains a NUL byte")
        out.append(Mount(os.path.normpath(dest), os.path.realpath(src), bool(m.get("readonly", False))))
    return out


def resolv_conf(servers: Iterable[str], searches: Iterable[str] = (), options: Iterable[str] = ()) -> str:
    """The resolv.conf of a CRI DNSConfig, as CRI-O and containerd write it for a pod."""
    searches, options = list(searches), list(options)
    lines = [f"search {' '.join(searches)}"] if searches else []
    lines += [f"nameserver {s}" for s in servers]
    if options:
        lines.append(f"options {' '.join(options)}")
    return "".join(line + "\n" for line in lines)


@dataclass
class Bundle:
    """What an OCI bundle's config.json says about the container's view."""

    mounts: list[Mount] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)

    def to_oci(self) -> dict:
        """The runtime-spec subset we write: ``mounts`` and ``linux.sysctl``."""
        return {
            "ociVersion": OCI_VERSION,
            "mounts": [{"destination": m.destination, "type": "bind", "source": m.source,
                        "options": ["rbind", "ro" if m.readonly else "rw"]} for m in self.mounts],
            "linux": {"sysctl": dict(self.sysctls)},
        }

    def write(self, bundle_dir: Path) -> Path:
        """Writes ``bundle_dir/config.json`` (creating the directory) and returns the directory."""
        bundle_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (bundle_dir / PROCS_DIR).mkdir(exist_ok=True, mode=0o700)
        write_atomic(bundle_dir / CONFIG_NAME, json.dumps(self.to_oci(), indent=1).encode())
        return bundle_dir

    @classmethod
    def load(cls, bundle_dir: str | Path) -> Bundle:
        """Reads a bundle's config.json; a missing or unreadable one is an empty view."""
        try:
            spec = json.loads((Path(bundle_dir) / CONFIG_NAME).read_bytes())
        except (OSError, ValueError):
            return cls()
        mounts = [Mount(str(m["destination"]), str(m["source"]), "ro" in m.get("options", []))
                  for m in spec.get("mounts", []) if m.get("destination") and m.get("source")]
        sysctls = {str(k): str(v) for k, v in (spec.get("linux", {}).get("sysctl") or {}).items()}
        return cls(mounts, sysctls)


@dataclass(frozen=True)
class Target:
    """A resolved path: where it is in the container and on the host, and what may be done there."""

    path: str  # the container path, normalised, symlinks resolved
    host: str | None  # None for a virtual entry (a /proc/sys value, a directory holding mountpoints)
    readonly: bool = False
    data: bytes | None = None  # the content of a virtual file
    virtual_dir: bool = False


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


@dataclass
class ContainerFS:
    """The file view of one container (see the module docstring)."""

    root: str  # host directory standing in for the container's "/"; "/" means the host itself
    mounts: tuple[Mount, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)
    bundle: str | None = None

    @classmethod
    def host(cls) -> ContainerFS:
        """No container: paths are host paths (in-process use, tests)."""
        return cls("/")

    @classmethod
    def from_bundle(cls, bundle_dir: str, root: str) -> ContainerFS:
        """The view a bundle describes, over the scratch root ``root``."""
        b = Bundle.load(bundle_dir)
        # Longest destination first, so a mount inside another mount wins.
        mounts = tuple(sorted(b.mounts, key=lambda m: len(m.destination), reverse=True))
        return cls(os.path.realpath(root), mounts, b.sysctls, bundle_dir)

    @property
    def confined(self) -> bool:
        return self.root != "/"

    # -- mapping

    def _virtual(self, cpath: str) -> tuple[bytes | None, bool]:
        """(file content, is a directory) for the /proc/sys tree made of the sysctls."""
        if not self.confined:
            return None, False
        if cpath in ("/proc", "/proc/sys"):
            return None, True
        if cpath.startswith("/proc/sys/"):
            key = cpath[len("/proc/sys/"):].replace("/", ".")
            if key in self.sysctls:
                return (self.sysctls[key] + "\n").encode(), False
            if any(k.startswith(key + ".") for k in self.sysctls):
                return None, True
        return None, False

    def _mount_for(self, cpath: str) -> Mount | None:
        for m in self.mounts:
            if cpath == m.destination or cpath.startswith(m.destination.rstrip("/") + "/"):
                return m
        return None

    def _host(self, cpath: str) -> tuple[str, bool]:
        """The host path of a normalised container path, and whether it is read-only."""
        m = self._mount_for(cpath)
        if m is not None:
            rest = cpath[len(m.destination):].lstrip("/")
            return (os.path.join(m.source, rest) if rest else m.source), m.readonly
        if not self.confined:
            return cpath, False
        return (os.path.join(self.root, cpath.lstrip("/")) if cpath != "/" else self.root), False

    def _holds_mountpoint(self, cpath: str) -> bool:
        prefix = cpath.rstrip("/") + "/"
        return any(m.destination.startswith(prefix) for m in self.mounts)

    def resolve(self, path: str, cwd: str = "/", *, follow: bool = True) -> Target:
        """Resolves ``path`` (relative to the container directory ``cwd``) in the container.

        ``follow`` False leaves a final symlink unresolved (for lstat, rm). Raises OSError
        (ELOOP) for a symlink loop; a path that does not exist still resolves (to where it
        would be), so that callers report ENOENT themselves or create it.
        """
        if "\x00" in path:
            raise OSError(errno.EINVAL, "path contains a NUL byte")
        pending = _split(path) if path.startswith("/") else _split(cwd) + _split(path)
        cur: list[str] = []
        hops = 0
        while pending:
            comp = pending.pop(0)
            if comp == ".":
                continue
            if comp == "..":
                cur = cur[:-1]
                continue
            candidate = "/" + "/".join([*cur, comp])
            if pending or follow:
                host, _ = self._host(candidate)
                if self._virtual(candidate) == (None, False) and os.path.islink(host):
                    hops += 1
                    if hops > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                    target = os.readlink(host)
                    if target.startswith("/"):
                        cur = []
                    pending = _split(target) + pending
                    continue
            cur.append(comp)
        cpath = "/" + "/".join(cur)
        data, is_dir = self._virtual(cpath)
        if data is not None or is_dir:
            return Target(cpath, None, True, data, is_dir)
        host, readonly = self._host(cpath)
        if self.confined and not os.path.lexists(host) and self._holds_mountpoint(cpath):
            # A directory that exists only because mounts lie below it (as mountpoints do).
            return Target(cpath, None, True, None, True)
        return Target(cpath, host, readonly)

    # -- operations applets need

    def stat(self, t: Target, *, follow: bool = True) -> os.stat_result | None:
        """The host stat of a target; a synthetic directory stat for a virtual one; None if absent."""
        if t.host is None:
            mode = (statmod.S_IFDIR | 0o555) if t.virtual_dir else (statmod.S_IFREG | 0o644)
            size = len(t.data or b"")
            return os.stat_result((mode, 0, 0, 2 if t.virtual_dir else 1, 0, 0, size, 0, 0, 0))
        try:
            return os.stat(t.host) if follow else os.lstat(t.host)
        except OSError:
            return None

    def listdir(self, t: Target) -> list[str]:
        """Names in a directory: the host directory's, plus mountpoints and virtual entries below it."""
        names: set[str] = set()
        if t.host is not None:
            names.update(os.listdir(t.host))
        elif not t.virtual_dir:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        prefix = t.path.rstrip("/") + "/"
        for m in self.mounts:
            if m.destination.startswith(prefix):
                names.add(m.destination[len(prefix):].split("/", 1)[0])
        if self.confined:
            if t.path == "/":
                names.add("proc")
            elif t.path == "/proc":
                names.add("sys")
            elif t.path.startswith("/proc/sys"):
                key = t.path[len("/proc/sys"):].strip("/").replace("/", ".")
                for k in self.sysctls:
                    if not key or k.startswith(key + "."):
                        names.add(k[len(key) + 1 if key else 0:].split(".", 1)[0])
        return sorted(names)

    def open_read(self, t: Target) -> int:
        """An fd open for reading (O_NOFOLLOW: the path was resolved already; a link swapped in
        since then is refused rather than followed)."""
        if t.host is None:
            raise OSError(errno.EISDIR if t.virtual_dir else errno.ENOENT,
                          os.strerror(errno.EISDIR if t.virtual_dir else errno.ENOENT))
        return os.open(t.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def writable(self, t: Target) -> str:
        """The host path of a target a command may change; OSError EROFS where it may not."""
        if t.readonly or t.host is None:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return t.host

    def read_bytes(self, t: Target) -> bytes:
        """The whole content of a file target (virtual or not)."""
        if t.data is not None:
            return t.data
        fd = self.open_read(t)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def register_process(self, pid: int, argv: list[str]) -> None:
        """Records a process's argv in the bundle, where ps and top of this container find it."""
        if not self.bundle:
            return
        try:
            write_atomic(Path(self.bundle) / PROCS_DIR / str(pid), json.dumps(argv).encode())
        except OSError:
            pass  # best effort: ps falls back to the process name

    def unregister_process(self, pid: int) -> None:
        """Forgets a process that is ending (a killed one leaves its record; ps checks liveness)."""
        if self.bundle:
            with contextlib.suppress(OSError):
                os.unlink(Path(self.bundle) / PROCS_DIR / str(pid))

    def process_argv(self, pid: int) -> list[str] | None:
        """The argv a process of this container registered, if any."""
        if not self.bundle:
            return None
        try:
            argv = json.loads((Path(self.bundle) / PROCS_DIR / str(pid)).read_bytes())
        except (OSError, ValueError):
            return None
        return [str(a) for a in argv] if isinstance(argv, list) else None
