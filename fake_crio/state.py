"""Sandboxes and containers: their records, their life-cycle states and their persistence.

Each record is one JSON file under ``<root>/sandboxes`` or ``<root>/containers``, written
atomically, so a fake-crio restarted (even after SIGKILL) lists exactly what it had. Exit
files, which the runtimes write when a container process ends, live under
``<runroot>/exits`` as with CRI-O and conmon-rs.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cristack.files import write_atomic
from cristack.wire.errors import AlreadyExists, InvalidArgument, NotFound
from fake_crio.registrar import NameReserved, Registrar

log = logging.getLogger(__name__)

# CRI enum values, as numbers so that records stay plain JSON.
SANDBOX_READY, SANDBOX_NOTREADY = 0, 1
CREATED, RUNNING, EXITED, UNKNOWN = 0, 1, 2, 3
UID_LABEL = "io.kubernetes.pod.uid"  # the kubelet's label; its lists are filtered by it


def new_id() -> str:
    """A 64-hex-digit id, like CRI-O's."""
    return secrets.token_hex(32)


@dataclass
class SandboxRecord:
    id: str
    name: str
    uid: str
    namespace: str
    attempt: int
    created_at: int
    runtime_handler: str
    log_directory: str
    state: int = SANDBOX_READY
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    hostname: str = ""
    ip: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # the PodSandboxConfig as proto JSON

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.name, self.namespace, self.uid, self.attempt)

    @property
    def full_name(self) -> str:
        return f"k8s_{self.name}_{self.namespace}_{self.uid}_{self.attempt}"


@dataclass
class ContainerRecord:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    created_at: int
    image: str  # as the user named it
    image_ref: str  # the image id it resolved to
    image_name: str  # the repo:tag it resolved to
    argv: list[str]
    env: dict[str, str]
    working_dir: str
    log_path: str  # absolute, inside the pod logs root; "" when the sandbox gave none
    runtime_handler: str
    state: int = CREATED
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    pid: int = 0
    monitor_instance: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    bundle: str = ""  # the OCI bundle dir: config.json with the mounts and sysctls the applets see

    @property
    def full_name(self) -> str:
        return f"{self.name}_{self.attempt}"


def _encode(record: SandboxRecord | ContainerRecord) -> bytes:
    # Records hold only JSON types, so their __dict__ serialises as is; dataclasses.asdict
    # would deep-copy every nested dict first, which showed up in profiles of pod start.
    return json.dumps(vars(record), separators=(",", ":")).encode()


def _load(cls: type, path: Path) -> Any:
    data = json.loads(path.read_text())
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


class Store:
    """The in-memory index of sandboxes and containers, mirrored to disk on every change."""

    def __init__(self, root: Path, runroot: Path) -> None:
        self.root = root
        self.runroot = runroot
        self.sandbox_dir = root / "sandboxes"
        self.container_dir = root / "containers"
        self.exit_dir = runroot / "exits"
        self.work_dir = runroot / "workdirs"
        for d in (self.sandbox_dir, self.container_dir, self.exit_dir, self.work_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.sandboxes: dict[str, SandboxRecord] = {}
        self.containers: dict[str, ContainerRecord] = {}
        # Names and IPs held by saved records and by creations in flight (CRI-O's podNameIndex,
        # ctrNameIndex and the IPAM's leases).
        self.pod_names = Registrar()
        self.ctr_names = Registrar()
        self.ips = Registrar()
        # The kubelet lists a pod's sandboxes and containers by its uid label; these indexes
        # answer that without a pass over every record of the node.
        self._sb_by_uid: dict[str, set[str]] = {}
        self._ctr_by_uid: dict[str, set[str]] = {}
        self._ctr_by_sandbox: dict[str, set[str]] = {}
        self._load_all()

    def _load_all(self) -> None:
        for cls, directory, index in ((SandboxRecord, self.sandbox_dir, self._index_sandbox),
                                      (ContainerRecord, self.container_dir, self._index_container)):
            for path in sorted(directory.iterdir()):
                if path.name.startswith("."):
                    # A temporary file left by a writer that was killed mid-write.
                    path.unlink(missing_ok=True)
                    continue
                try:
                    rec = _load(cls, path)
                except (OSError, ValueError, TypeError) as err:
                    log.error("state file %s is unreadable (%s); moving it aside", path, err)
                    os.replace(path, path.with_name(f".corrupt-{path.name}"))
                    continue
                try:
                    index(rec)
                except NameReserved as err:  # two saved records with one name: keep the first
                    log.error("state file %s names a %s that %s already holds; moving it aside", path,
                              err.name, err.holder)
                    os.replace(path, path.with_name(f".corrupt-{path.name}"))
        # A container whose sandbox is gone cannot be shown or removed through the CRI.
        for cid in [c.id for c in self.containers.values() if c.sandbox_id not in self.sandboxes]:
            log.warning("dropping container %s: its sandbox is gone", cid)
            self.delete_container(cid)

    # -- persistence

    def save_sandbox(self, sb: SandboxRecord) -> None:
        write_atomic(self.sandbox_dir / f"{sb.id}.json", _encode(sb))
        self._index_sandbox(sb)

    def _index_sandbox(self, sb: SandboxRecord) -> None:
        self.pod_names.reserve(sb.key, sb.id)
        if sb.ip:
            try:
                self.ips.reserve(sb.ip, sb.id)
            except NameReserved:
                self.pod_names.release(sb.key)
                raise
        self.sandboxes[sb.id] = sb
        uid = sb.labels.get(UID_LABEL)
        if uid:
            self._sb_by_uid.setdefault(uid, set()).add(sb.id)

    def save_container(self, c: ContainerRecord) -> None:
        write_atomic(self.container_dir / f"{c.id}.json", _encode(c))
        self._index_container(c)

    def _index_container(self, c: ContainerRecord) -> None:
        self.ctr_names.reserve((c.sandbox_id, c.name, c.attempt), c.id)
        self.containers[c.id] = c
        self._ctr_by_sandbox.setdefault(c.sandbox_id, set()).add(c.id)
        uid = c.labels.get(UID_LABEL)
        if uid:
            self._ctr_by_uid.setdefault(uid, set()).add(c.id)

    def delete_sandbox(self, sid: str) -> None:
        (self.sandbox_dir / f"{sid}.json").unlink(missing_ok=True)
        sb = self.sandboxes.pop(sid, None)
        self.pod_names.release_key(sid)
        self.ips.release_key(sid)
        if sb is not None:
            _discard(self._sb_by_uid, sb.labels.get(UID_LABEL), sid)

    def delete_container(self, cid: str) -> None:
        (self.container_dir / f"{cid}.json").unlink(missing_ok=True)
        self.exit_path(cid).unlink(missing_ok=True)
        c = self.containers.pop(cid, None)
        self.ctr_names.release_key(cid)
        if c is not None:
            _discard(self._ctr_by_sandbox, c.sandbox_id, cid)
            _discard(self._ctr_by_uid, c.labels.get(UID_LABEL), cid)

    def exit_path(self, cid: str) -> Path:
        return self.exit_dir / cid

    # -- lookups

    def _resolve(self, index: dict[str, Any], ident: str, what: str) -> Any:
        if not ident:
            raise InvalidArgument(f"{what} ID should not be empty")
        rec = index.get(ident)
        if rec is not None:
            return rec
        matches = [r for k, r in index.items() if k.startswith(ident)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"{what} ID {ident!r} is ambiguous: it matches {len(matches)} {what}s")
        raise NotFound(f"could not find {what} {ident!r}")

    def sandbox(self, ident: str) -> SandboxRecord:
        """The sandbox with this id or unique id prefix; NotFound otherwise."""
        return self._resolve(self.sandboxes, ident, "pod sandbox")

    def container(self, ident: str) -> ContainerRecord:
        """The container with this id or unique id prefix; NotFound otherwise."""
        return self._resolve(self.containers, ident, "container")

    def reserve_sandbox_name(self, key: tuple[str, str, str, int], sid: str) -> None:
        """Holds the sandbox name ``key`` for the sandbox ``sid`` being created (CRI-O's
        ReservePodName); AlreadyExists naming the holder when another sandbox has it."""
        try:
            self.pod_names.reserve(key, sid)
        except NameReserved as err:
            name, ns, uid, attempt = key
            raise self._reserved("pod", f"k8s_{name}_{ns}_{uid}_{attempt}", sid, "pod sandbox", err.holder,
                                 err.holder in self.sandboxes) from None

    def reserve_container_name(self, sb: SandboxRecord, name: str, attempt: int, cid: str) -> None:
        """Holds ``name``/``attempt`` in ``sb`` for the container ``cid`` being created (CRI-O's
        ReserveContainerName); AlreadyExists naming the holder when another container has it."""
        try:
            self.ctr_names.reserve((sb.id, name, attempt), cid)
        except NameReserved as err:
            full = f"k8s_{name}_{sb.name}_{sb.namespace}_{sb.uid}_{attempt}"
            raise self._reserved("ctr", full, cid, "container", err.holder, err.holder in self.containers) from None

    @staticmethod
    def _reserved(kind: str, full: str, new: str, what: str, holder: str, exists: bool) -> AlreadyExists:
        # CRI-O's words (internal/lib/container_server.go), which it logs at warning level, and
        # the holder, so that the caller can tell a duplicate from a creation still in flight.
        cause = f"error reserving {kind} name {full} for id {new}: name is reserved"
        log.warning("%s", cause)
        state = "already exists" if exists else "is being created"
        return AlreadyExists(f"{cause} by {what} {holder}, which {state}")

    def reserve_ip(self, sid: str, hosts: Iterable[str]) -> str:
        """The first of ``hosts`` no sandbox holds, now held by ``sid``; "" when all are taken."""
        for ip in hosts:
            if ip not in self.ips:
                self.ips.reserve(ip, sid)
                return ip
        return ""

    def release_reservations(self, ident: str) -> None:
        """Frees what a creation that failed held (names and IPs) unless a saved record owns it."""
        if ident not in self.sandboxes and ident not in self.containers:
            for registrar in (self.pod_names, self.ctr_names, self.ips):
                registrar.release_key(ident)

    def containers_of(self, sandbox_id: str) -> list[ContainerRecord]:
        return [self.containers[cid] for cid in self._ctr_by_sandbox.get(sandbox_id, ())]

    def sandboxes_with_uid(self, uid: str) -> list[SandboxRecord]:
        """The sandboxes labelled with the pod uid ``uid``."""
        return [self.sandboxes[sid] for sid in self._sb_by_uid.get(uid, ())]

    def containers_with_uid(self, uid: str) -> list[ContainerRecord]:
        """The containers labelled with the pod uid ``uid``."""
        return [self.containers[cid] for cid in self._ctr_by_uid.get(uid, ())]


def _discard(index: dict[str, set[str]], key: str | None, ident: str) -> None:
    ids = index.get(key) if key is not None else None
    if ids is not None:
        ids.discard(ident)
        if not ids:
            del index[key]
