#!/usr/bin/env python3
"""Kubeconform-style JSON schemas for the Kubernetes v1.36.3 API, generated offline from its OpenAPI spec.

kubeconform validates each manifest against `{kind}{-group}-{version}.json` (lowercase; the group is the first
dot-separated part of the apiVersion's group, none for the core group: `statefulset-apps-v1.json`,
`service-v1.json`), found under `<schema-location>/v<k8s version>-standalone-strict/` when given a directory
(kubeconform's pkg/registry/registry.go). The published sets (yannh/kubernetes-json-schema) are downloaded at
validation time; we generate the same kind of set from `api/openapi-spec/swagger.json` of the k8s.io/kubernetes
module, which the Go module proxy serves and the tools/kubelet go.sum already pins, so validation needs no network.

What makes them "standalone, strict", as instrumenta/openapi2jsonschema's --kubernetes --expanded --stand-alone
--strict mode does:
- standalone: no reference leaves the file. Instead of inlining every `$ref` (which loops on recursive types such
  as JSONSchemaProps), each file carries the definitions it reaches under `definitions` and points at them
  locally, so every kind (CRDs included) gets a file.
- strict: every object schema that lists `properties` gets `additionalProperties: false` unless the spec says
  otherwise (maps keep their `additionalProperties` schema), so a typo'd field is an error, as kubectl's
  server-side field validation makes it.
- IntOrString is a string or an integer, Quantity a string or a number (the API's JSON decoding accepts both
  forms; the spec calls them strings), and apiVersion/kind are pinned to the file's group-version-kind.

Usage: scripts/k8s_schemas.py [--swagger FILE] [--out DIR]  (defaults: the module cache's swagger.json, found
with `go mod download` in tools/kubelet; ~/.cache/cristack/k8s-schemas-v1.36.3). Exits 2 with a message when
the spec cannot be found or read.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

K8S_VERSION = "v1.36.3"
ROOT = Path(__file__).resolve().parent.parent
REF_PREFIX = "#/definitions/"

# The API's JSON decoding accepts both forms; the OpenAPI spec describes them as strings with a format.
SCALAR_OVERRIDES: dict[str, dict[str, Any]] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
}


class SchemaError(Exception):
    """A user-facing failure: no traceback, exit status 2."""


def default_out_dir() -> Path:
    """Where make tools caches the schemas (CRISTACK_TOOLS_CACHE, as scripts/install-tools.sh reads it)."""
    cache = Path(os.environ.get("CRISTACK_TOOLS_CACHE", Path.home() / ".cache" / "cristack"))
    return cache / f"k8s-schemas-{K8S_VERSION}"


def schema_dir(out: Path) -> Path:
    """The directory kubeconform reads for `-schema-location OUT -kubernetes-version 1.36.3 -strict`."""
    return out / f"{K8S_VERSION}-standalone-strict"


def find_swagger() -> Path:
    """swagger.json of the pinned k8s.io/kubernetes module, downloaded through the module proxy if not cached."""
    try:
        proc = subprocess.run(
            ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{K8S_VERSION}"],
            cwd=ROOT / "tools" / "kubelet", capture_output=True, text=True, check=False,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
        )
    except FileNotFoundError as e:
        raise SchemaError("Go is not installed; pass --swagger FILE (api/openapi-spec/swagger.json)") from e
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise SchemaError(f"go mod download k8s.io/kubernetes@{K8S_VERSION} failed: {proc.stderr.strip()}") from e
    if info.get("Error") or not info.get("Dir"):
        raise SchemaError(f"go mod download k8s.io/kubernetes@{K8S_VERSION}: {info.get('Error', 'no Dir')}")
    return Path(info["Dir"]) / "api" / "openapi-spec" / "swagger.json"


def strict(node: Any) -> Any:
    """Forbid unknown fields on every object schema that lists its properties (recursively, in place)."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def refs(node: Any) -> set[str]:
    """The definition names a schema fragment refers to directly."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref[len(REF_PREFIX):])
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def reachable(name: str, definitions: dict[str, Any]) -> list[str]:
    """Every definition `name` reaches through $ref, itself excluded, in a stable order."""
    seen: set[str] = set()
    todo = sorted(refs(definitions[name]))
    while todo:
        current = todo.pop()
        if current in seen or current == name:
            continue
        if current not in definitions:
            raise SchemaError(f"swagger.json: {name} refers to {current}, which it does not define")
        seen.add(current)
        todo.extend(sorted(refs(definitions[current]) - seen))
    return sorted(seen)


def self_refs_to_root(node: Any, name: str) -> Any:
    """Point references to the file's own kind at the root (`#`), since it is not among `definitions`."""
    if isinstance(node, dict):
        return {k: ("#" if k == "$ref" and v == REF_PREFIX + name else self_refs_to_root(v, name))
                for k, v in node.items()}
    if isinstance(node, list):
        return [self_refs_to_root(v, name) for v in node]
    return node


def file_name(gvk: dict[str, str]) -> str:
    """kubeconform's name for a group-version-kind: ResourceKind + KindSuffix + .json (registry.go)."""
    group = gvk["group"].split(".")[0]
    suffix = f"-{group}-{gvk['version']}" if group else f"-{gvk['version']}"
    return f"{gvk['kind']}{suffix}.json".lower()


def generate(swagger: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """File name -> schema, one per group-version-kind the spec declares."""
    definitions: dict[str, Any] = {name: strict(copy.deepcopy(d)) for name, d in swagger["definitions"].items()}
    definitions.update(copy.deepcopy(SCALAR_OVERRIDES))
    files: dict[str, dict[str, Any]] = {}
    for name, definition in sorted(definitions.items()):
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            schema = self_refs_to_root(copy.deepcopy(definition), name)
            schema.setdefault("type", "object")
            props = schema.get("properties", {})
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            if "apiVersion" in props:
                props["apiVersion"]["enum"] = [api_version]
            if "kind" in props:
                props["kind"]["enum"] = [gvk["kind"]]
            needed = reachable(name, definitions)
            if needed:
                schema["definitions"] = {n: self_refs_to_root(definitions[n], name) for n in needed}
            # Several definitions may claim one gvk (none do in v1.36.3); the first, by name, wins.
            files.setdefault(file_name(gvk), schema)
    return files


def write(files: dict[str, dict[str, Any]], out: Path) -> Path:
    """Write the set atomically (a complete directory or none), so a half-written cache is never used."""
    target = schema_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".schemas-", dir=out))
    for name, schema in files.items():
        (staging / name).write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Generate the schema set; print where it went."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swagger", type=Path, help="the API's swagger.json (default: from the Go module cache)")
    parser.add_argument("--out", type=Path, default=default_out_dir(), help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        path = args.swagger or find_swagger()
        try:
            swagger = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SchemaError(f"{path}: cannot read the OpenAPI spec: {e}") from e
        if not isinstance(swagger, dict) or not isinstance(swagger.get("definitions"), dict):
            raise SchemaError(f"{path}: no `definitions`: not a Kubernetes swagger.json")
        target = write(generate(swagger), args.out)
    except SchemaError as e:
        print(f"k8s_schemas: {e}", file=sys.stderr)
        return 2
    print(f"k8s_schemas: {len(list(target.iterdir()))} schemas for Kubernetes {K8S_VERSION} in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
