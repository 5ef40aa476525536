"""The OCI bundle of a container: the ``config.json`` a runtime reads its mounts and sysctls from.

CRI-O writes the runtime spec into the container's bundle directory and hands the directory to
runc (or, with runtime_type "pod", to conmon-rs as ``bundle_path``). fake-crio does the same with
the part of the spec the applets use: the container's bind mounts (CRI ``ContainerConfig.mounts``,
host symlinks resolved as CRI-O resolves them), the sandbox's sysctls, and the sandbox's
resolv.conf (from its DNSConfig) mounted at /etc/resolv.conf as CRI-O mounts it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cristack.containers.containerfs import Bundle, Mount, mounts_from_cri, resolv_conf
from cristack.files import write_atomic
from fake_crio.state import ContainerRecord, SandboxRecord

RESOLV_CONF = "/etc/resolv.conf"


def write(runroot: Path, c: ContainerRecord, sb: SandboxRecord) -> Path:
    """Writes ``RUNROOT/bundles/ID/config.json``; returns the bundle directory.

    Raises ValueError for a mount the CRI would refuse (no container path, a relative path).
    """
    mounts = mounts_from_cri(c.config.get("mounts", []))
    sysctls = {str(k): str(v) for k, v in (sb.config.get("linux", {}).get("sysctls") or {}).items()}
    directory = runroot / "bundles" / c.id
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    dns = sb.config.get("dns_config") or {}
    if dns and not any(m.destination == RESOLV_CONF for m in mounts):
        # CRI-O writes the sandbox's resolv.conf and bind-mounts it at /etc/resolv.conf.
        path = directory / "resolv.conf"
        text = resolv_conf(dns.get("servers", []), dns.get("searches", []), dns.get("options", []))
        write_atomic(path, text.encode(), mode=0o644)
        mounts.append(Mount(RESOLV_CONF, str(path), readonly=False))
    return Bundle(mounts, sysctls).write(directory)


def remove(c: ContainerRecord) -> None:
    """Removes a container's bundle directory (with the process records in it)."""
    if c.bundle:
        shutil.rmtree(c.bundle, ignore_errors=True)
