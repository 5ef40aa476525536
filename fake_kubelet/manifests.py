"""Static pod manifests: Pod YAML files in the static pod directory.

A malformed file is reported by name and skipped; the kubelet keeps running. As in the real
kubelet, a static pod without a uid gets one derived from its content, file and node, so an
edited manifest is a new pod (the old one is terminated, the new one started).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cristack.config.yamlload import YamlError, load
from cristack.files import MAX_CONFIG_BYTES, ReadLimitReached, read_at_most
from cristack.wording import cut, did_you_mean, shown
from fake_kubelet import podvalidation as valid
from fake_kubelet.podfields import FIELDS

log = logging.getLogger(__name__)

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# pkg/kubelet/config/common.go maxConfigLength: file.go reads a manifest with utilio.ReadAtMost, which
# refuses one that reaches the limit ("the read limit is reached").
MAX_MANIFEST_BYTES = MAX_CONFIG_BYTES
INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1


_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")  # Kubernetes' JSON field names are lowerCamelCase


class ManifestError(ValueError):
    """A manifest that cannot be run; the message names the file and the field."""


@dataclass(frozen=True)
class Probe:
    """An exec probe (the only handler a mock node can honour)."""

    command: tuple[str, ...]
    period: float = 10.0
    initial_delay: float = 0.0
    timeout: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    image_pull_policy: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    tty: bool = False
    stdin: bool = False
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    uid: str
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...] = ()
    restart_policy: str = "Always"
    termination_grace_period: int = 30
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    source: str = ""
    runtime_class: str = ""  # spec.runtimeClassName: the CRI runtime handler

    @property
    def full_name(self) -> str:
        """``name_namespace``, the way the kubelet logs a pod."""
        return f"{self.namespace}/{self.name}"


def _str(value: Any, where: str, *, required: bool = False) -> str:
    if value is None:
        if required:
            raise ManifestError(f"{where}: required")
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ManifestError(f"{where}: expected a string, got {type(value).__name__}")
    return str(value)


def _bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ManifestError(f"{where}: expected true or false, got {shown(value)}")
    return value


def _strlist(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ManifestError(f"{where}: expected a list of strings")
    return tuple(_str(v, f"{where}[{i}]") for i, v in enumerate(value))


def _strmap(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: expected a mapping")
    return {str(k): _str(v, f"{where}.{cut(str(k))}") for k, v in value.items()}


def _default_pull_policy(image: str) -> str:
    # Kubernetes: Always for :latest or no tag, IfNotPresent otherwise.
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    return "Always" if ":" not in tail or tail.endswith(":latest") else "IfNotPresent"


def _known_fields(raw: dict, kind: str, where: str) -> None:
    """Rejects a field the Kubernetes type does not have, as ``kubectl --validate=strict`` does; fields the real
    type has but fake-kubelet does not act on are accepted (and ignored)."""
    for key in raw:
        if key not in FIELDS[kind]:
            prefix = f"{where}." if where else ""
            if not isinstance(key, str) or not _FIELD_NAME.match(key):
                # Not a typo of a field: most likely not a manifest at all (a link to some other file), whose
                # content has no business in a log.
                raise ManifestError(f"{prefix[:-1] or kind}: a key that is not a field name "
                                    f"({type(key).__name__}, {len(str(key)):,} characters)")
            raise ManifestError(f"{prefix}{key}: unknown field in {kind}{did_you_mean(key, FIELDS[kind])}")


def _choice(value: str, choices: Sequence[str], where: str) -> str:
    if value not in choices:
        raise ManifestError(f"{where}: {shown(value)} is not one of {', '.join(choices)}"
                            f"{did_you_mean(cut(value), choices)}")
    return value


def _probe(raw: Any, where: str) -> Probe | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected a mapping")
    _known_fields(raw, "Probe", where)
    exec_ = raw.get("exec")
    if not isinstance(exec_, dict) or not exec_.get("command"):
        raise ManifestError(f"{where}.exec.command: required (only exec probes are supported)")
    numbers = {}
    for key, default in (("periodSeconds", 10), ("initialDelaySeconds", 0), ("timeoutSeconds", 1),
                         ("failureThreshold", 3)):
        value = raw.get(key, default)
        # int32 fields (core/v1 Probe): NaN, infinity or a number out of range is no int32 at all (a NaN here
        # used to escape as a ValueError that stopped the whole directory's scan).
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0 <= value <= INT32_MAX:
            raise ManifestError(f"{where}.{key}: expected a non-negative number (an int32), got {shown(value)}")
        numbers[key] = value
    return Probe(_strlist(exec_["command"], f"{where}.exec.command"), float(numbers["periodSeconds"]) or 10.0,
                 float(numbers["initialDelaySeconds"]), max(1, int(numbers["timeoutSeconds"])),
                 max(1, int(numbers["failureThreshold"])))


def _refuse(problem: str | None) -> None:
    """Raises the API's validation error the way the kubelet words it (common.go: "invalid pod: ...")."""
    if problem:
        raise ManifestError(f"invalid pod: {problem}")


def _container(raw: Any, where: str) -> Container:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected a mapping")
    _known_fields(raw, "Container", where)
    name = _str(raw.get("name"), f"{where}.name", required=True)
    _refuse(valid.invalid(f"{where}.name", name, valid.dns1123_label(name)))
    image = _str(raw.get("image"), f"{where}.image", required=True)
    policy = _str(raw.get("imagePullPolicy"), f"{where}.imagePullPolicy") or _default_pull_policy(image)
    _choice(policy, PULL_POLICIES, f"{where}.imagePullPolicy")
    env: list[tuple[str, str]] = []
    raw_env = raw.get("env") or []
    if not isinstance(raw_env, list):
        raise ManifestError(f"{where}.env: expected a list")
    for i, item in enumerate(raw_env):
        if not isinstance(item, dict):
            raise ManifestError(f"{where}.env[{i}]: expected a mapping with name and value")
        _known_fields(item, "EnvVar", f"{where}.env[{i}]")
        env_name = _str(item.get("name"), f"{where}.env[{i}].name", required=True)
        _refuse(valid.invalid(f"{where}.env[{i}].name", env_name, valid.env_var_name(env_name)))
        env.append((env_name, _str(item.get("value"), f"{where}.env[{i}].value")))
    return Container(name=name, image=image, image_pull_policy=policy,
                     command=_strlist(raw.get("command"), f"{where}.command"),
                     args=_strlist(raw.get("args"), f"{where}.args"), env=tuple(env),
                     working_dir=_str(raw.get("workingDir"), f"{where}.workingDir"),
                     tty=_bool(raw.get("tty"), f"{where}.tty"), stdin=_bool(raw.get("stdin"), f"{where}.stdin"),
                     readiness_probe=_probe(raw.get("readinessProbe"), f"{where}.readinessProbe"),
                     liveness_probe=_probe(raw.get("livenessProbe"), f"{where}.livenessProbe"))


def derived_uid(source: str, content: bytes, node: str) -> str:
    """A stable uid for a static pod that names none (changes when the manifest changes)."""
    digest = hashlib.sha256(source.encode() + b"\0" + content + b"\0" + node.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def parse_pod(content: bytes, source: str, node: str = "cristack-node") -> Pod:
    """Parses one Pod manifest; ManifestError names the source and the field at fault."""
    try:
        doc = load(content)
    except YamlError as err:
        raise ManifestError(f"{source}: invalid YAML: {err}") from None
    try:
        if not isinstance(doc, dict):
            raise ManifestError("expected a Pod object")
        _known_fields(doc, "Pod", "")
        if doc.get("kind") != "Pod":
            raise ManifestError(f"kind: expected Pod, got {shown(doc.get('kind'))}")
        if doc.get("apiVersion", "v1") != "v1":
            raise ManifestError(f"apiVersion: expected v1, got {shown(doc.get('apiVersion'))}")
        meta = doc.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ManifestError("metadata: expected a mapping")
        _known_fields(meta, "ObjectMeta", "metadata")
        spec = doc.get("spec")
        if not isinstance(spec, dict):
            raise ManifestError("spec: required")
        _known_fields(spec, "PodSpec", "spec")
        name = _str(meta.get("name"), "metadata.name", required=True)
        _refuse(valid.invalid("metadata.name", name, valid.dns1123_subdomain(name)))
        namespace = _str(meta.get("namespace"), "metadata.namespace") or "default"
        _refuse(valid.invalid("metadata.namespace", namespace, valid.dns1123_label(namespace)))
        uid = _str(meta.get("uid"), "metadata.uid")
        _refuse(valid.path_component(uid, "metadata.uid") if uid else None)
        labels = _strmap(meta.get("labels"), "metadata.labels")
        _refuse(valid.labels(labels, "metadata.labels"))
        annotations = _strmap(meta.get("annotations"), "metadata.annotations")
        _refuse(valid.annotations(annotations, "metadata.annotations"))
        raw_ctrs = spec.get("containers")
        if not isinstance(raw_ctrs, list) or not raw_ctrs:
            raise ManifestError("spec.containers: at least one container is required")
        containers = tuple(_container(c, f"spec.containers[{i}]") for i, c in enumerate(raw_ctrs))
        raw_init = spec.get("initContainers") or []
        if not isinstance(raw_init, list):
            raise ManifestError("spec.initContainers: expected a list")
        inits = tuple(_container(c, f"spec.initContainers[{i}]") for i, c in enumerate(raw_init))
        counts = Counter(c.name for c in (*inits, *containers))
        dupes = sorted(n for n, count in counts.items() if count > 1)
        if dupes:
            raise ManifestError(f"spec.containers: duplicate container name(s) {cut(', '.join(dupes))}")
        policy = _choice(_str(spec.get("restartPolicy"), "spec.restartPolicy") or "Always", RESTART_POLICIES,
                         "spec.restartPolicy")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= INT64_MAX:
            raise ManifestError("spec.terminationGracePeriodSeconds: expected a non-negative integer (an int64), "
                                f"got {shown(grace)}")
        return Pod(
            name=name, namespace=namespace, uid=uid or derived_uid(source, content, node),
            containers=containers, init_containers=inits, restart_policy=policy,
            termination_grace_period=grace, labels=labels, annotations=annotations, source=source,
            runtime_class=_str(spec.get("runtimeClassName"), "spec.runtimeClassName"))
    except ManifestError as err:
        raise ManifestError(f"{source}: {err}") from None


class UnreadableDir(OSError):
    """The static pod directory itself cannot be read: nothing can be said about its pods."""


# What identifies a file's content without reading it: device, inode, size, mtime and ctime (ns). An edit in
# place changes mtime and ctime; a replacement (an editor's rename, a retargeted symlink) changes the inode.
Identity = tuple[int, int, int, int, int]


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ManifestCache:
    """What each manifest parsed to (a Pod or its error), kept while its file's identity is unchanged, so that
    the directory is parsed once per change rather than on every scan (the real kubelet re-reads on every
    fileCheckFrequency; a YAML parse in Python costs about 100x go-yaml's, and a 5 MiB manifest re-read every
    second starved the kubelet's event loop)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Identity, Pod | ManifestError]] = {}
        self.parses = 0  # files read and parsed since the start: what a test of "parsed once" counts

    def lookup(self, path: str, identity: Identity) -> Pod | ManifestError | None:
        entry = self._entries.get(path)
        return entry[1] if entry is not None and entry[0] == identity else None

    def store(self, path: str, identity: Identity, result: Pod | ManifestError) -> None:
        self._entries[path] = (identity, result)

    def keep_only(self, paths: set[str]) -> None:
        for gone in self._entries.keys() - paths:
            del self._entries[gone]


def read_manifest(path: Path) -> tuple[bytes, Identity]:
    """The bytes of one manifest and the identity of the file they came from. A symlink is followed, as the
    kubelet's os.Stat/os.Open follow it (file.go extractFromDir); what is read must be a regular file (a FIFO
    swapped in after the listing would block the open, hence O_NONBLOCK) smaller than 10 MiB (common.go
    maxConfigLength, read with utilio.ReadAtMost: reaching the limit is the error)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(f"{path}: not a regular file")
        if st.st_size >= MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path}: the read limit is reached: a manifest must be smaller than "
                                f"{MAX_MANIFEST_BYTES // (1024 * 1024)} MiB (it has {st.st_size:,} bytes)")
        try:
            return read_at_most(f, MAX_MANIFEST_BYTES), _identity(st)
        except ReadLimitReached:  # it grew since the fstat
            raise ManifestError(f"{path}: the read limit is reached: a manifest must be smaller than "
                                f"{MAX_MANIFEST_BYTES // (1024 * 1024)} MiB") from None


def _load(path: Path, node: str, cache: ManifestCache | None) -> Pod | ManifestError | None:
    """The pod (or error) of one listed file; None when it is gone or not a regular file. OSError when it
    exists but cannot be read."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None  # removed since the listing (or a dangling link): file.go skips IsNotExist quietly
    if not stat.S_ISREG(st.st_mode):
        return None
    if cache is not None:
        known = cache.lookup(str(path), _identity(st))
        if known is not None:
            return known
    try:
        content, identity = read_manifest(path)
        result: Pod | ManifestError = parse_pod(content, str(path), node)
    except FileNotFoundError:
        return None
    except ManifestError as err:
        result, identity = err, _identity(st)
    except (ArithmeticError, ValueError, TypeError, RecursionError) as err:
        # A case parse_pod does not foresee fails this file only, never the scan of the others.
        log.exception("manifest %s: unexpected error", path)
        result = ManifestError(f"{path}: cannot be read as a pod: {type(err).__name__}: {cut(str(err), 200)}")
        identity = _identity(st)
    if cache is not None:
        cache.parses += 1
        cache.store(str(path), identity, result)
    return result


def scan(directory: Path, node: str, unreadable: set[str] | None = None,
         cache: ManifestCache | None = None) -> tuple[dict[str, Pod], list[str]]:
    """Reads every manifest in ``directory``: the pods by uid, and one error line per bad file. Files that
    exist but cannot be read are added to ``unreadable`` (their pods are not known to be gone); a directory
    that cannot be read raises UnreadableDir. With a ``cache``, a file whose identity is unchanged since the
    last scan is not read again."""
    pods: dict[str, Pod] = {}
    errors: list[str] = []
    try:
        files = sorted(p for p in directory.iterdir()
                       if p.suffix in MANIFEST_SUFFIXES and not p.name.startswith("."))
    except OSError as err:
        raise UnreadableDir(err.errno, f"{directory}: cannot read static pod directory: {err.strerror}") from None
    if cache is not None:
        cache.keep_only({str(p) for p in files})
    for path in files:
        try:
            result = _load(path, node, cache)
        except OSError as err:
            errors.append(f"{path}: cannot read: {err.strerror}")
            if unreadable is not None:
                unreadable.add(str(path))
            continue
        if result is None:
            continue
        if isinstance(result, ManifestError):
            errors.append(str(result))
            continue
        if result.uid in pods:
            errors.append(f"{path}: pod uid {result.uid} is already used by {pods[result.uid].source}; skipped")
            continue
        pods[result.uid] = result
    return pods, errors
