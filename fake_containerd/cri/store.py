"""The CRI plugin's in-memory stores (internal/cri/store/sandbox, container, and the name indexes of
internal/cri/store/...): what the CRI knows of each sandbox and container beside containerd's metadata.

Names are reserved before the first await (a concurrent RunPodSandbox or CreateContainer of the same name gets
"failed to reserve ... name", as upstream's registrar answers) and given back when the creation fails.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

from cristack.wire.errors import AlreadyExists, NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.client.container import Container
from fake_containerd.client.task import Task

# sandboxstore.State
SANDBOX_UNKNOWN, SANDBOX_READY, SANDBOX_NOTREADY = "unknown", "ready", "notready"
CRI_SANDBOX_STATE = {SANDBOX_READY: pb.SANDBOX_READY, SANDBOX_NOTREADY: pb.SANDBOX_NOTREADY,
                     SANDBOX_UNKNOWN: pb.SANDBOX_NOTREADY}


def generate_id() -> str:
    """util.GenerateID: 32 random bytes in hex."""
    return secrets.token_hex(32)


def sandbox_name(md: pb.PodSandboxMetadata) -> str:
    """makeSandboxName: name_namespace_uid_attempt."""
    return f"{md.name}_{md.namespace}_{md.uid}_{md.attempt}"


def container_name(md: pb.ContainerMetadata, sb: pb.PodSandboxMetadata) -> str:
    """makeContainerName: name_sandboxname_sandboxnamespace_sandboxuid_attempt."""
    return f"{md.name}_{sb.name}_{sb.namespace}_{sb.uid}_{md.attempt}"


@dataclass
class Sandbox:
    id: str
    name: str
    config: pb.PodSandboxConfig
    runtime_handler: str
    sandboxer: str = "podsandbox"
    state: str = SANDBOX_UNKNOWN
    created_at: int = field(default_factory=time.time_ns)
    exited_at: int = 0
    pid: int = 0
    ip: str = ""
    netns_path: str = ""
    container: Container | None = None
    task: Task | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class ContainerRecord:
    id: str
    name: str
    sandbox_id: str
    config: pb.ContainerConfig
    image_id: str  # sha256:...
    image_name: str  # the containerd image's name (its first reference)
    log_path: str
    container: Container
    created_at: int = field(default_factory=time.time_ns)
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    pid: int = 0
    reason: str = ""
    message: str = ""
    starting: bool = False
    removing: bool = False
    unknown: bool = False
    task: Task | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def state(self) -> int:
        """containerstore.Status.State(): from the timestamps, as upstream derives it."""
        if self.unknown:
            return pb.CONTAINER_UNKNOWN
        if self.finished_at:
            return pb.CONTAINER_EXITED
        if self.started_at:
            return pb.CONTAINER_RUNNING
        return pb.CONTAINER_CREATED


class NameIndex:
    """registrar: a name held by one id until released."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.names: dict[str, str] = {}

    def reserve(self, name: str, key: str) -> None:
        holder = self.names.get(name)
        if holder is not None and holder != key:
            raise AlreadyExists(f"failed to reserve {self.what} name \"{name}\": name \"{name}\" is reserved for "
                                f"\"{holder}\"")
        self.names[name] = key

    def release(self, name: str) -> None:
        self.names.pop(name, None)


class Stores:
    """The sandbox and container stores and their name indexes."""

    def __init__(self) -> None:
        self.sandboxes: dict[str, Sandbox] = {}
        self.containers: dict[str, ContainerRecord] = {}
        self.sandbox_names = NameIndex("sandbox")
        self.container_names = NameIndex("container")

    def sandbox(self, sandbox_id: str) -> Sandbox:
        """sandboxStore.Get: by full id or a unique prefix (truncindex)."""
        return _get(self.sandboxes, sandbox_id)

    def container(self, container_id: str) -> ContainerRecord:
        return _get(self.containers, container_id)

    def containers_of(self, sandbox_id: str) -> list[ContainerRecord]:
        return [c for c in self.containers.values() if c.sandbox_id == sandbox_id]


def _get(items: dict, key: str):  # noqa: ANN202 - a Sandbox or a ContainerRecord
    found = items.get(key)
    if found is not None:
        return found
    matches = [v for k, v in items.items() if key and k.startswith(key)]
    if len(matches) == 1:
        return matches[0]
    raise NotFound("not found")
