"""What the shim reads from an OCI bundle directory: config.json (the process to run, its environment,
the annotations that group a pod's containers into one shim) and the init.pid it writes beside it.

config.json comes from containerd, but a bundle dir is a file on disk like any other: bounded before it
is parsed, and every field checked for its type."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cristack.wire.errors import InvalidArgument, NotFound

CONFIG = "config.json"
INIT_PID = "init.pid"  # process.InitPidFile
MAX_CONFIG_BYTES = 4 << 20
# manager_linux.go groupLabels, in order: the runc-specific label, then the CRI's pod.
GROUP_LABELS = ("io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id")


@dataclass(frozen=True)
class ProcessSpec:
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    terminal: bool = False


@dataclass(frozen=True)
class BundleSpec:
    process: ProcessSpec
    annotations: dict[str, str]


def _strings(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{what}: expected a list of strings")
    return list(value)


def process_spec(doc: object, what: str) -> ProcessSpec:
    """An OCI runtime-spec Process (config.json's ``process``, or an exec's spec)."""
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what}: expected an object")
    env: dict[str, str] = {}
    for item in _strings(doc.get("env"), f"{what}.env"):
        key, _, value = item.partition("=")
        env[key] = value
    return ProcessSpec(_strings(doc.get("args"), f"{what}.args"), env, bool(doc.get("terminal", False)))


def load_json(data: bytes, what: str) -> object:
    if len(data) > MAX_CONFIG_BYTES:
        raise InvalidArgument(f"{what}: {len(data)} bytes, over the {MAX_CONFIG_BYTES}-byte limit")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"{what}: not JSON: {err}") from None


def read_bundle(bundle: Path) -> BundleSpec:
    path = bundle / CONFIG
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise NotFound(f"open {path}: no such file or directory") from None
    doc = load_json(data, str(path))
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path}: expected an object")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise InvalidArgument(f"{path}: annotations: expected strings")
    return BundleSpec(process_spec(doc.get("process"), f"{path}: process"), dict(annotations))


def grouping(spec: BundleSpec, instance_id: str) -> str:
    """The id whose shim serves this container: its pod's sandbox id under the CRI, else its own."""
    for label in GROUP_LABELS:
        if label in spec.annotations:
            return spec.annotations[label]
    return instance_id


def write_init_pid(bundle: Path, pid: int) -> None:
    (bundle / INIT_PID).write_text(str(pid))


def read_init_pid(bundle: Path) -> int:
    try:
        return int((bundle / INIT_PID).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0
