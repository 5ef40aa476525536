"""containerd's metadata store (core/metadata containers.go and sandbox.go of v2.4.2): container and sandbox
records by namespace, each change in a ``metadata.containers.*`` / ``metadata.sandbox.*`` span with the
attributes upstream sets (RFC 3339 times, to the second).

Upstream keeps them in a bolt database under ``<root>/io.containerd.metadata.v1.bolt``; here one JSON file
there, replaced atomically on every change.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cristack.files import write_atomic
from cristack.wire.errors import AlreadyExists, NotFound
from fake_containerd.tracing import NAMESPACE, ContainerdTracing

log = logging.getLogger(__name__)

MAX_META_BYTES = 256 << 20  # a state file bigger than this is not ours


def rfc3339(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))


@dataclass
class ContainerMeta:
    """containers.Container: what the client stores for a container."""

    id: str
    image: str
    runtime: str
    snapshotter: str
    snapshot_key: str
    spec: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    sandbox_id: str = ""
    created_at: int = 0
    updated_at: int = 0
    extensions: dict[str, Any] = field(default_factory=dict)


@dataclass
class SandboxMeta:
    """sandbox.Sandbox: the sandbox store's record."""

    id: str
    runtime: str
    sandboxer: str
    labels: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0


class MetadataStore:
    """The bolt database's containers and sandboxes buckets of the ``k8s.io`` namespace."""

    def __init__(self, root: Path, tracing: ContainerdTracing) -> None:
        self.dir = root / "io.containerd.metadata.v1.bolt"
        self.path = self.dir / "meta.json"
        self.tracing = tracing
        self.containers: dict[str, ContainerMeta] = {}
        self.sandboxes: dict[str, SandboxMeta] = {}
        self._load()

    def _load(self) -> None:
        try:
            with self.path.open("rb") as f:
                data = f.read(MAX_META_BYTES + 1)
        except FileNotFoundError:
            return
        if len(data) > MAX_META_BYTES:
            raise ValueError(f"{self.path}: over {MAX_META_BYTES} bytes; not a metadata file of ours")
        doc = json.loads(data)
        self.containers = {k: ContainerMeta(**v) for k, v in doc.get("containers", {}).items()}
        self.sandboxes = {k: SandboxMeta(**v) for k, v in doc.get("sandboxes", {}).items()}

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc = {"containers": {k: asdict(v) for k, v in self.containers.items()},
               "sandboxes": {k: asdict(v) for k, v in self.sandboxes.items()}}
        write_atomic(self.path, json.dumps(doc).encode())

    # -- containers (containers.go)

    def create_container(self, c: ContainerMeta) -> ContainerMeta:
        with self.tracing.span("metadata.containers.Create", {"container.id": c.id}, namespace=True) as span:
            if c.sandbox_id:
                span.set_attribute("sandbox.id", c.sandbox_id)
            if c.id in self.containers:
                raise AlreadyExists(f"container {c.id!r}: already exists")
            c.created_at = c.updated_at = time.time_ns()
            self.containers[c.id] = c
            self._save()
            span.set_attributes({"container.createdAt": rfc3339(c.created_at),
                                 "container.updatedAt": rfc3339(c.updated_at)})
            return c

    def delete_container(self, container_id: str) -> None:
        with self.tracing.span("metadata.containers.Delete", {"container.id": container_id}, namespace=True) as span:
            c = self.containers.get(container_id)
            if c is None:
                raise NotFound(f"container {container_id!r} in namespace {NAMESPACE!r}: not found")
            if c.sandbox_id:
                span.set_attribute("sandbox.id", c.sandbox_id)
            del self.containers[container_id]
            self._save()

    def container(self, container_id: str) -> ContainerMeta:
        c = self.containers.get(container_id)
        if c is None:
            raise NotFound(f"container \"{container_id}\" in namespace \"{NAMESPACE}\": not found")
        return c

    # -- sandboxes (sandbox.go)

    def create_sandbox(self, sb: SandboxMeta) -> SandboxMeta:
        with self.tracing.span("metadata.sandbox.Create", {"sandbox.id": sb.id}, namespace=True) as span:
            if sb.id in self.sandboxes:
                raise AlreadyExists(f"sandbox {sb.id!r}: already exists")
            sb.created_at = sb.updated_at = time.time_ns()
            self.sandboxes[sb.id] = sb
            self._save()
            span.set_attribute("sandbox.CreatedAt", rfc3339(sb.created_at))
            return sb

    def update_sandbox(self, sb: SandboxMeta) -> SandboxMeta:
        with self.tracing.span("metadata.sandbox.Update", {"sandbox.id": sb.id}, namespace=True) as span:
            if sb.id not in self.sandboxes:
                raise NotFound(f"sandbox {sb.id!r}: not found")
            sb.updated_at = time.time_ns()
            self.sandboxes[sb.id] = sb
            self._save()
            span.set_attributes({"sandbox.CreatedAt": rfc3339(sb.created_at),
                                 "sandbox.UpdatedAt": rfc3339(sb.updated_at)})
            return sb

    def delete_sandbox(self, sandbox_id: str) -> None:
        with self.tracing.span("metadata.sandbox.Delete", {"sandbox.id": sandbox_id}, namespace=True):
            if self.sandboxes.pop(sandbox_id, None) is None:
                raise NotFound(f"sandbox {sandbox_id!r}: not found")
            self._save()
