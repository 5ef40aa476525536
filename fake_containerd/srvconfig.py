"""containerd's config.toml as cmd/containerd/server/config/config.go reads it (containerd v2.4.2): the main
file and its ``imports`` (relative to the file, globs allowed), each migrated to version 4 on its own, then
merged; every key checked against the keys containerd reads (fake_containerd/containerd_keys.py).

- Migration, as upstream (``MigrateConfigTo`` plus the CRI plugins' ``ConfigMigration``): version 1 plugin
  names become URIs; version 2's single CRI plugin (``io.containerd.grpc.v1.cri``) splits into
  ``io.containerd.cri.v1.images`` / ``io.containerd.cri.v1.runtime`` and the streaming settings; version 3's
  ``[grpc]``, ``[ttrpc]``, ``[debug]`` address and ``[metrics]`` move into server plugins (an unset ttrpc
  address is the gRPC address plus ``.ttrpc``). A migrated file is logged as upstream logs it (a warning).
- Unknown keys: containerd warns and ignores them; fake-containerd refuses them (a ConfigError naming the file
  and the key, with the closest real key), since a typo in a demo config should not pass silently. Real keys
  fake-containerd does not model are listed with a warning. A mock's own settings live in a top-level
  ``[cristack]`` table that a real containerd would ignore.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cristack.config.tomlconf import read_toml
from cristack.wire.errors import ConfigError
from cristack.wording import did_you_mean
from fake_containerd.containerd_keys import FREE_TABLES, PLUGIN_IDS, TABLE_KEYS

log = logging.getLogger(__name__)

CONFIG_VERSION = 4
MOCK_TABLE = "cristack"
GRPC_PLUGIN = "io.containerd.server.v1.grpc"
TTRPC_PLUGIN = "io.containerd.server.v1.ttrpc"
CRI_IMAGES = "io.containerd.cri.v1.images"
CRI_RUNTIME = "io.containerd.cri.v1.runtime"
CRI_SERVER = "io.containerd.grpc.v1.cri"
MAX_IMPORTS = 64  # a bound on the files one config may pull in (imports may import again)

# version 1 plugin short names (v1MigratePluginName's corePlugins)
V1_PLUGINS = {
    "cri": CRI_SERVER, "cgroups": "io.containerd.monitor.v1.cgroups", "linux": "io.containerd.runtime.v1.linux",
    "scheduler": "io.containerd.gc.v1.scheduler", "bolt": "io.containerd.metadata.v1.bolt",
    "task": "io.containerd.runtime.v2.task", "opt": "io.containerd.internal.v1.opt",
    "restart": "io.containerd.internal.v1.restart", "tracing": "io.containerd.internal.v1.tracing",
    "otlp": "io.containerd.tracing.processor.v1.otlp", "aufs": "io.containerd.snapshotter.v1.aufs",
    "btrfs": "io.containerd.snapshotter.v1.btrfs", "devmapper": "io.containerd.snapshotter.v1.devmapper",
    "native": "io.containerd.snapshotter.v1.native", "overlayfs": "io.containerd.snapshotter.v1.overlayfs",
    "zfs": "io.containerd.snapshotter.v1.zfs",
}
# What moved out of version 2's CRI plugin (plugins/cri/{images,runtime}/plugin.go, plugins/cri/cri.go).
V2_TO_IMAGES = ("registry", "image_decryption", "max_concurrent_downloads", "image_pull_progress_timeout",
                "image_pull_with_sync_fs", "stats_collect_period")
V2_SERVER_KEYS = ("disable_tcp_service", "stream_server_address", "stream_server_port", "stream_idle_timeout",
                  "enable_tls_streaming", "x509_key_pair_streaming")
V2_NOT_RUNTIME = (*V2_TO_IMAGES, *V2_SERVER_KEYS, "sandbox_image", "cni", "containerd", "enable_cdi")


def toml_key(path: tuple[str, ...]) -> str:
    """A key path as TOML writes it: ``plugins.'io.containerd.cri.v1.runtime'.containerd``."""
    return ".".join(p if p.replace("_", "").replace("-", "").isalnum() else f"'{p}'" for p in path)


@dataclass
class ServerConfig:
    """The merged config: the top-level tables and each plugin's table, with the file that set each key."""

    data: dict[str, Any] = field(default_factory=dict)
    sources: dict[tuple[str, ...], str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    migrated_from: dict[str, int] = field(default_factory=dict)

    def plugin(self, plugin_id: str) -> dict[str, Any]:
        table = self.data.get("plugins", {}).get(plugin_id, {})
        return table if isinstance(table, dict) else {}

    def source(self, *path: str, default: str = "<defaults>") -> str:
        """The file that set ``path`` (or the nearest table above it that a file set)."""
        for n in range(len(path), 0, -1):
            found = self.sources.get(tuple(path[:n]))
            if found:
                return found
        return self.files[0] if self.files else default

    def get(self, path: tuple[str, ...], kind: type | tuple[type, ...], default: Any = None) -> Any:
        """The value at ``path`` checked against ``kind``; ConfigError naming the file and the key if wrong."""
        cur: Any = self.data
        for part in path:
            if not isinstance(cur, dict) or part not in cur:
                return default
            cur = cur[part]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(cur, bool) and bool not in kinds or not isinstance(cur, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(self.source(*path), toml_key(path), f"expected {names}, got {type(cur).__name__} "
                                                                  f"{cur!r}")
        return cur


def _leaves(table: dict[str, Any], prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for key, value in table.items():
        path = (*prefix, str(key))
        yield path
        if isinstance(value, dict):
            yield from _leaves(value, path)


# Tables whose keys are names the user chooses (a runtime handler, a registry host, a proxy plugin).
NAMED = frozenset({"runtimes", "mirrors", "configs", "auths", "runtime_platforms", "proxy_plugins",
                   "stream_processors"})


def _table_pattern(path: tuple[str, ...]) -> str:
    """The TABLE_KEYS name of the table holding the last key of ``path`` (user-chosen names as ``*``)."""
    parts = list(path[:-1])
    for i in range(1, len(parts)):
        if parts[i - 1] in NAMED and not (i == 1 and parts[0] == "plugins"):
            parts[i] = "*"
    return "/".join(parts)


def _migrate_v1(doc: dict[str, Any]) -> None:
    plugins = doc.get("plugins")
    if isinstance(plugins, dict):
        renamed = {}
        for name, value in plugins.items():
            if "." not in name:
                full = V1_PLUGINS.get(name)
                if full is None:
                    full = (f"io.containerd.service.v1.{name}" if name.endswith("-service")
                            else f"io.containerd.grpc.v1.{name}")
                    log.warning("Ambiguous %s plugin in v1 config, treating as %s", name, full)
                name = full
            renamed[name] = value
        doc["plugins"] = renamed


def _migrate_v2(doc: dict[str, Any]) -> None:
    """Version 2's CRI plugin table splits into the images, runtime and server (streaming) tables."""
    plugins = doc.setdefault("plugins", {})
    src = plugins.get(CRI_SERVER)
    if not isinstance(src, dict):
        return
    images = plugins.setdefault(CRI_IMAGES, {})
    runtime = plugins.setdefault(CRI_RUNTIME, {})
    if "sandbox_image" in src:
        images.setdefault("pinned_images", {})["sandbox"] = src["sandbox_image"]
    for key in V2_TO_IMAGES:
        if key in src:
            images[key] = src[key]
    for key, value in src.items():
        if key not in V2_NOT_RUNTIME:
            runtime.setdefault(key, value)
    cni = src.get("cni")
    if isinstance(cni, dict):
        new_cni = runtime.setdefault("cni", {})
        for key, value in cni.items():
            if key == "bin_dir":
                new_cni.setdefault("bin_dirs", [value])
            else:
                new_cni.setdefault(key, value)
    ctd = src.get("containerd")
    if isinstance(ctd, dict):
        new_ctd = runtime.setdefault("containerd", {})
        for key, value in ctd.items():
            if key in ("snapshotter", "disable_snapshot_annotations", "discard_unpacked_layers"):
                images.setdefault(key, value)
            else:
                new_ctd.setdefault(key, value)
        for rt in (new_ctd.get("runtimes") or {}).values():
            if isinstance(rt, dict) and "sandbox_mode" in rt:
                rt.setdefault("sandboxer", rt.pop("sandbox_mode"))
    plugins[CRI_SERVER] = {k: src[k] for k in V2_SERVER_KEYS if k in src}
    if not images:
        del plugins[CRI_IMAGES]
    if not runtime:
        del plugins[CRI_RUNTIME]


def _migrate_v3(doc: dict[str, Any]) -> None:
    """serviceMigrate: the server settings move into server plugins."""
    plugins = doc.setdefault("plugins", {})
    debug = doc.get("debug") or {}
    if debug.get("address") and "io.containerd.server.v1.debug" not in plugins:
        plugins["io.containerd.server.v1.debug"] = {k: debug.pop(k, 0) for k in ("address", "uid", "gid")}
    grpc = doc.pop("grpc", None) or {}
    address = grpc.get("address", "")
    if any(grpc.get(k) for k in ("address", "uid", "gid", "max_recv_message_size", "max_send_message_size")) \
            and GRPC_PLUGIN not in plugins:
        moved: dict[str, Any] = {}
        if address:
            moved.update(address=address, uid=grpc.get("uid", 0), gid=grpc.get("gid", 0))
        else:
            moved.update({k: grpc[k] for k in ("uid", "gid") if grpc.get(k)})
        moved.update({k: grpc[k] for k in ("max_recv_message_size", "max_send_message_size") if grpc.get(k)})
        plugins[GRPC_PLUGIN] = moved
    if grpc.get("tcp_address") and "io.containerd.server.v1.grpc-tcp" not in plugins:
        tcp = {"address": grpc["tcp_address"]}
        for old, new in (("tcp_tls_ca", "tls_ca"), ("tcp_tls_cert", "tls_cert"), ("tcp_tls_key", "tls_key"),
                         ("tcp_tls_common_name", "tls_common_name")):
            if grpc.get(old):
                tcp[new] = grpc[old]
        plugins["io.containerd.server.v1.grpc-tcp"] = tcp
    ttrpc = doc.pop("ttrpc", None) or {}
    if TTRPC_PLUGIN not in plugins:
        t_address, uid, gid = ttrpc.get("address", ""), ttrpc.get("uid", 0), ttrpc.get("gid", 0)
        if not t_address and address:
            t_address, uid, gid = address + ".ttrpc", uid or grpc.get("uid", 0), gid or grpc.get("gid", 0)
        if t_address or uid or gid:
            plugins[TTRPC_PLUGIN] = {"address": t_address, "uid": uid, "gid": gid}
    metrics = doc.pop("metrics", None) or {}
    if metrics.get("grpc_histogram"):
        plugins.setdefault("io.containerd.metrics.v1.grpc-prometheus", {"grpc_histogram": True})
    if metrics.get("address"):
        plugins.setdefault("io.containerd.server.v1.metrics", {"address": metrics["address"]})


MIGRATIONS = {1: _migrate_v1, 2: _migrate_v2, 3: _migrate_v3}


def migrate(doc: dict[str, Any], source: str) -> int:
    """Brings one file's document to version 4 in place; returns the version it had."""
    version = doc.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(source, "version", f"expected an integer, got {version!r}")
    if version > CONFIG_VERSION:
        raise ConfigError(source, "version", f"expected containerd config version equal to or less than "
                                             f"`{CONFIG_VERSION}`, got `{version}`")
    current = max(version, 1)
    while current < CONFIG_VERSION:
        MIGRATIONS[current](doc)
        current += 1
    doc["version"] = CONFIG_VERSION
    if version < CONFIG_VERSION:
        log.warning("Configuration migrated from version %d, use `containerd config migrate` to avoid migration "
                    "(%s)", version, source)
    return version


def _merge(into: ServerConfig, doc: dict[str, Any], source: str) -> None:
    """mergeConfig: scalars override, lists gain what they lack, each plugin's table and each stream
    processor, proxy plugin and timeout is replaced as a whole."""
    for key, value in doc.items():
        if key == "imports":
            continue
        if key in ("plugins", "proxy_plugins", "stream_processors", "timeouts") and isinstance(value, dict):
            table = into.data.setdefault(key, {})
            for name, item in value.items():
                table[name] = item
                for path in _leaves({name: item}, (key,)):
                    into.sources[path] = source
            continue
        if isinstance(value, list) and isinstance(into.data.get(key), list):
            into.data[key] = into.data[key] + [v for v in value if v not in into.data[key]]
        elif isinstance(value, dict) and isinstance(into.data.get(key), dict):
            into.data[key].update(value)
        else:
            into.data[key] = value
        into.sources[(key,)] = source
        if isinstance(value, dict):
            for path in _leaves(value, (key,)):
                into.sources[path] = source


def check_keys(doc: dict[str, Any], source: str) -> list[str]:
    """ConfigError naming the file and the key for a key containerd v2.4.2 does not read (with the closest
    real one) or a plugin it does not have; returns the real keys fake-containerd does not model."""
    from fake_containerd.config import MODELLED

    unmodelled: list[str] = []
    for path in _leaves(doc, ()):
        if path[0] == MOCK_TABLE:
            continue
        if len(path) == 2 and path[0] == "plugins":
            if path[1] not in PLUGIN_IDS:
                raise ConfigError(source, toml_key(path), f"unknown plugin{did_you_mean(path[1], PLUGIN_IDS)}")
            continue
        table = _table_pattern(path)
        if len(path) >= 2 and path[-2] in NAMED and table != "plugins":
            continue  # a name of the user's (a runtime handler, a registry host)
        if any(table == t or table.startswith(t + "/") for t in FREE_TABLES):
            continue
        real = TABLE_KEYS.get(table)
        if real is None:
            if path[0] == "plugins" and f"plugins/{path[1]}" not in TABLE_KEYS:
                unmodelled.append(toml_key(path))  # a real plugin whose settings we do not model
                continue
            raise ConfigError(source, toml_key(path[:-1]), "is not a table containerd reads")
        name = path[-1]
        # runc's options are Go field names, which the TOML decoder matches without regard to case.
        if name not in real and not (table.endswith("/options") and name.lower() in {k.lower() for k in real}):
            raise ConfigError(source, toml_key(path), f"unknown key{did_you_mean(name, real)}")
        value = _at(doc, path)
        if not isinstance(value, dict) and (table, name) not in MODELLED:
            unmodelled.append(toml_key(path))
    return unmodelled


def _at(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = doc
    for part in path:
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def load(path: Path) -> ServerConfig:
    """The main file and its imports, each migrated and checked, merged in load order. ConfigError names the
    file and the key at fault."""
    out = ServerConfig()
    pending, loaded = [Path(os.path.normpath(path.absolute()))], set()
    unmodelled: list[str] = []
    while pending:
        current = pending.pop(0)
        if current in loaded:
            continue  # circular imports end here, as upstream
        if len(loaded) >= MAX_IMPORTS:
            raise ConfigError(str(path), "imports", f"more than {MAX_IMPORTS} files imported")
        doc = read_toml(current)
        source = str(current)
        imports = doc.get("imports", [])
        if not isinstance(imports, list) or not all(isinstance(i, str) for i in imports):
            raise ConfigError(source, "imports", "expected a list of file paths")
        version = migrate(doc, source)
        if version < CONFIG_VERSION:
            out.migrated_from[source] = version
        unmodelled += check_keys(doc, source)
        _merge(out, doc, source)
        out.files.append(source)
        loaded.add(current)
        for item in imports:
            # filepath.Join cleans the path, so "conf.d/../config.toml" is config.toml again.
            target = Path(os.path.normpath(item if Path(item).is_absolute() else current.parent / item))
            if "*" in str(target):
                pending += [Path(m) for m in sorted(glob.glob(str(target)))]
            else:
                pending.append(target)
    if unmodelled:
        log.warning("ignoring keys fake-containerd does not model: %s", ", ".join(sorted(set(unmodelled))))
    return out
