"""A rendered StatefulSet pod run the way the kubelet would start it, but as a local process: the downward-API
env of pod N, ConfigMap values, $(VAR) expansion in command and args, ConfigMap volumes laid out as the kubelet's
AtomicWriter lays them out (files as symlinks into a `..data` symlink to a timestamped dir), emptyDirs as local
dirs, and Service addresses mapped to local listeners. Anything in the pod spec this does not model fails
loudly, so the test cannot pass by skipping a field."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# $$ is an escaped $, $(NAME) a reference; a reference to an undefined name stays as written
# (k8s.io/kubernetes third_party/forked/golang/expansion/expand.go).
_REFERENCE = re.compile(r"\$(\$|\(([^)]*)\))")


def expand(value: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion of a command, an argument or an env value."""
    return _REFERENCE.sub(lambda m: "$" if m.group(1) == "$" else env.get(m.group(2), m.group(0)), value)


def write_configmap_volume(target: Path, data: dict[str, str]) -> None:
    """Project ``data`` into ``target`` as the kubelet's AtomicWriter does (pkg/volume/util/atomic_writer.go):
    the files in a new `..YYYY_MM_DD_HH_MM_SS.*` dir, `..data` swapped to it by an atomic rename of `..data_tmp`,
    each key a symlink `key -> ..data/key`; keys that went away lose their link, the old dir is removed."""
    target.mkdir(parents=True, exist_ok=True)
    data_link = target / "..data"
    old = os.readlink(data_link) if data_link.is_symlink() else None
    ts_dir = Path(tempfile.mkdtemp(prefix=time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()), dir=target))
    ts_dir.chmod(0o755)
    for key, text in data.items():
        (ts_dir / key).write_text(text)
        (ts_dir / key).chmod(0o644)  # the volume's defaultMode
    tmp_link = target / "..data_tmp"
    tmp_link.symlink_to(ts_dir.name)
    tmp_link.rename(data_link)
    for key in data:
        if not (target / key).is_symlink():
            (target / key).symlink_to(Path("..data") / key)
    for entry in target.iterdir():
        if not entry.name.startswith("..") and entry.name not in data:
            entry.unlink()
    if old is not None:
        shutil.rmtree(target / old)


@dataclass
class LocalPod:
    """Pod ``ordinal`` of a StatefulSet from ``objects`` (a kustomize render), mapped under ``base``."""

    objects: list[dict[str, Any]]
    statefulset: str
    ordinal: int
    base: Path
    services: dict[str, str] = field(default_factory=dict)  # "otel-collector:4317" -> "127.0.0.1:40123"
    mounts: dict[str, Path] = field(default_factory=dict)  # container path -> local path
    volume_dirs: dict[str, Path] = field(default_factory=dict)  # volume name -> local path

    def __post_init__(self) -> None:
        sts = self._one("StatefulSet", self.statefulset)
        self.namespace = sts["metadata"].get("namespace", "default")
        self.spec = sts["spec"]["template"]["spec"]
        self.name = f"{self.statefulset}-{self.ordinal}"
        # What the StatefulSet controller adds to the template's labels (pkg/controller/statefulset, updateIdentity).
        self.labels = {**sts["spec"]["template"]["metadata"].get("labels", {}),
                       "statefulset.kubernetes.io/pod-name": self.name,
                       "apps.kubernetes.io/pod-index": str(self.ordinal)}
        assert len(self.spec["containers"]) == 1 and not self.spec.get("initContainers"), "one container modelled"
        self.container = self.spec["containers"][0]
        self._volumes()

    def _one(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"the render has {len(found)} {kind} named {name}"
        return found[0]

    def _volumes(self) -> None:
        for vol in self.spec.get("volumes", []):
            local = self.base / self.name / "volumes" / vol["name"]
            if "configMap" in vol:
                write_configmap_volume(local, self._one("ConfigMap", vol["configMap"]["name"]).get("data", {}))
            elif "emptyDir" in vol:
                local.mkdir(parents=True)
            else:
                raise AssertionError(f"volume {vol['name']}: only configMap and emptyDir are modelled")
            self.volume_dirs[vol["name"]] = local
        for m in self.container.get("volumeMounts", []):
            assert "subPath" not in m, "subPath mounts are not modelled"
            self.mounts[m["mountPath"]] = self.volume_dirs[m["name"]]

    def _field(self, path: str) -> str:
        label = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
        if label:
            return self.labels[label.group(1)]
        values = {"metadata.name": self.name, "metadata.namespace": self.namespace}
        assert path in values, f"downward API field {path} is not modelled"
        return values[path]

    def env(self) -> dict[str, str]:
        """The container's environment, in order, each value expanded against the ones before it."""
        env: dict[str, str] = {}
        assert not self.container.get("envFrom"), "envFrom is not modelled"
        for var in self.container.get("env", []):
            if "value" in var:
                env[var["name"]] = expand(var["value"], env)
            elif "fieldRef" in var.get("valueFrom", {}):
                env[var["name"]] = self._field(var["valueFrom"]["fieldRef"]["fieldPath"])
            elif "configMapKeyRef" in var.get("valueFrom", {}):
                ref = var["valueFrom"]["configMapKeyRef"]
                env[var["name"]] = self._one("ConfigMap", ref["name"])["data"][ref["key"]]
            else:
                raise AssertionError(f"env {var['name']}: {var} is not modelled")
        return env

    def local(self, text: str) -> str:
        """A string with the pod's mount paths and the cluster's Service addresses made local."""
        for svc, addr in self.services.items():
            text = re.sub(rf"(?<![\w.-]){re.escape(svc)}(?![\w.-])", addr, text)
        if not self.mounts:
            return text
        # One pass, longest path first, so that a mapped path is never mapped again (/tmp inside a local path).
        paths = "|".join(re.escape(p) for p in sorted(self.mounts, key=len, reverse=True))
        return re.sub(rf"(?<![\w./-])({paths})(?=/|$|[^\w.-])", lambda m: str(self.mounts[m.group(1)]), text)

    def argv(self) -> list[str]:
        """command + args, expanded with the container's env, then made local."""
        env = self.env()
        return [self.local(expand(a, env)) for a in self.container.get("command", []) + self.container.get("args", [])]

    def local_env(self) -> dict[str, str]:
        return {k: self.local(v) for k, v in self.env().items()}


def service_addresses(objects: list[dict[str, Any]], name: str, port: int, local: str) -> dict[str, str]:
    """Every in-cluster spelling of Service ``name``'s ``port`` (short, namespaced, .svc, cluster.local), each
    mapped to ``local``; fails unless the render has that Service with that port."""
    svc = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == name]
    assert svc and any(p["port"] == port for p in svc[0]["spec"].get("ports", [])), f"no Service {name}:{port}"
    ns = svc[0]["metadata"].get("namespace", "default")
    hosts = [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]
    return {f"{h}:{port}": local for h in hosts}
