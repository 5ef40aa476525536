"""deploy/kubernetes as a cluster would receive it: each kustomization rendered by the real kustomize, and the
few lookups the tests make in the rendered objects."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"
KUSTOMIZATIONS = ("base", "overlays/demo", "overlays/containerd", "overlays/fleet", "overlays/live-nodes")
K8S_VERSION = "1.36.3"


def schema_root() -> Path:
    """Where `make tools` caches the generated schemas (scripts/k8s_schemas.py)."""
    cache = Path(os.environ.get("CRISTACK_TOOLS_CACHE", Path.home() / ".cache" / "cristack"))
    return cache / f"k8s-schemas-v{K8S_VERSION}"


def render(kustomize: str, kustomization: str) -> str:
    """`kustomize build` of one kustomization under deploy/kubernetes, as YAML text."""
    proc = subprocess.run([kustomize, "build", str(DEPLOY / kustomization)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"kustomize build {kustomization} failed:\n{proc.stderr}"
    return proc.stdout


def objects(text: str) -> list[dict[str, Any]]:
    """The rendered objects, in order."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The object of that kind whose name is ``name`` (or, for generated ConfigMaps, ``name-<hash>``)."""
    for obj in objs:
        n = obj["metadata"]["name"]
        if obj["kind"] == kind and (n == name or (kind == "ConfigMap" and n.rsplit("-", 1)[0] == name)):
            return obj
    raise AssertionError(f"no {kind} {name} among {[(o['kind'], o['metadata']['name']) for o in objs]}")


def pod_templates(objs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every workload."""
    for obj in objs:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]
