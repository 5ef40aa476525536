"""fake-containerd's settings: containerd's config.toml (fake_containerd/srvconfig.py reads, migrates and checks
it), then the flags, which win (cmd/containerd/command/main.go applyFlags).

The keys it models, with containerd v2.4.2's defaults (internal/cri/config/config_unix.go,
cmd/containerd/server/config, defaults/defaults_linux.go), except that the sockets and directories default to
private ones of the user's rather than /run/containerd and /var/lib/containerd:

- ``root``, ``state``; ``[debug] level``;
- ``[plugins.'io.containerd.server.v1.grpc'] address`` (the CRI socket) and ``...ttrpc'] address`` (where shims
  publish their events; default: the gRPC address plus ``.ttrpc``, as the ``--address`` flag sets it);
- ``[plugins.'io.containerd.cri.v1.images']``: ``snapshotter``, ``pinned_images.sandbox`` (the sandbox image),
  ``registry.config_path`` (a ``certs.d``-style directory of ``hosts.toml`` files);
- ``[plugins.'io.containerd.cri.v1.runtime']``: ``containerd.default_runtime_name``, ``containerd.runtimes.NAME``
  (``runtime_type``, ``sandboxer``, ``snapshotter``, ``options``), ``cni.conf_dir``, ``cni.bin_dirs``,
  ``cni.max_conf_num``, ``stats_collect_period``.

Tracing is not configured here: as in containerd v2, only the standard ``OTEL_*`` environment variables switch
it on (fake_containerd/tracing.py). What only a mock needs lives in a top-level ``[cristack]`` table.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cristack.config.durations import parse_duration
from cristack.otel.logs import parse_level
from cristack.versions import CONTAINERD_VERSION, version_flag
from cristack.wire.endpoints import Endpoint, default_runtime_dir, parse_endpoint
from cristack.wire.errors import ConfigError
from cristack.wording import did_you_mean
from fake_containerd import srvconfig
from fake_containerd.srvconfig import CRI_IMAGES, CRI_RUNTIME, GRPC_PLUGIN, TTRPC_PLUGIN, ServerConfig, toml_key

log = logging.getLogger(__name__)

RUNC_V2 = "io.containerd.runc.v2"
DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.10.2"  # internal/cri/config/config.go DefaultSandboxImage
DEFAULT_SNAPSHOTTER = "overlayfs"
DEFAULT_CNI_CONF_DIR = Path("/etc/cni/net.d")
SANDBOXERS = ("podsandbox", "shim")
LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")
SNAPSHOTTERS = ("overlayfs", "native", "btrfs", "devmapper", "zfs", "blockfile", "erofs")

R, IMG = f"plugins/{CRI_RUNTIME}", f"plugins/{CRI_IMAGES}"
# (table, key) pairs fake-containerd reads; every other real key is accepted and ignored with a warning.
MODELLED = frozenset({
    ("", "version"), ("", "root"), ("", "state"), ("", "imports"), ("debug", "level"),
    (f"plugins/{GRPC_PLUGIN}", "address"), (f"plugins/{TTRPC_PLUGIN}", "address"),
    (IMG, "snapshotter"), (f"{IMG}/registry", "config_path"),
    (f"{R}/containerd", "default_runtime_name"), (f"{R}/containerd/runtimes/*", "runtime_type"),
    (f"{R}/containerd/runtimes/*", "sandboxer"), (f"{R}/containerd/runtimes/*", "snapshotter"),
    (f"{R}/cni", "conf_dir"), (f"{R}/cni", "bin_dirs"), (f"{R}/cni", "max_conf_num"), (R, "stats_collect_period"),
    *((f"{R}/containerd/runtimes/*/options", k) for k in ("BinaryName", "Root", "SystemdCgroup")),
})
MOCK_KEYS = {
    "pull_latency_ms": "mock: time a pull of an absent image takes (default 20)",
    "pod_logs_root": "mock: confine every pod's log directory under this one",
    "registry_mirrors": "mock: registry host -> catalogue namespace it serves, e.g. "
                        "{'127.0.0.1:5000' = 'docker.io/library'}",
    "shim_tracing": "mock: shims export their spans as a shim built with -tags shim_tracing (default true)",
    "shim_lifeline": "mock: shims exit once this daemon is gone, even SIGKILLed (default false: they outlive it, "
                     "as containerd's do; the harness sets it, so that nothing of a stopped node runs on)",
    "max_containers": "mock: cap on containers held at once (default 4096)",
    "max_exec_seconds": "mock: cap on an ExecSync's timeout (default 300)",
    "max_log_bytes": "mock: a container's log is capped at this many bytes (default 64 MiB)",
}


@dataclass
class RuntimeHandler:
    """One ``[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.NAME]`` table."""

    name: str
    runtime_type: str = RUNC_V2
    sandboxer: str = "podsandbox"
    snapshotter: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class CtdConfig:
    """Everything fake-containerd needs to start, after files and flags are merged."""

    address: Endpoint
    address_is_default: bool
    ttrpc_address: Path
    root: Path
    state: Path
    log_level: int = logging.INFO
    log_level_name: str = "info"
    default_runtime: str = "runc"
    runtimes: dict[str, RuntimeHandler] = field(default_factory=dict)
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    snapshotter: str = DEFAULT_SNAPSHOTTER
    registry_config_path: Path | None = None
    cni_conf_dir: Path = DEFAULT_CNI_CONF_DIR
    cni_conf_dir_is_default: bool = True
    cni_bin_dirs: list[str] = field(default_factory=lambda: ["/opt/cni/bin"])
    cni_max_conf_num: int = 1
    stats_collect_period: float = 1.0
    # mock-only ([cristack])
    pull_latency_ms: float = 20.0
    pod_logs_root: Path | None = None
    registry_mirrors: dict[str, str] = field(default_factory=dict)
    shim_tracing: bool = True
    shim_lifeline: bool = False
    max_containers: int = 4096
    max_exec_seconds: float = 300.0
    max_log_bytes: int = 64 * 1024 * 1024
    sources: list[str] = field(default_factory=list)

    @property
    def k8s_state(self) -> Path:
        """Where the CRI plugin keeps its per-pod state (``<state>/io.containerd.grpc.v1.cri``)."""
        return self.state / "io.containerd.grpc.v1.cri"


def default_root() -> Path:
    return Path.home() / ".local" / "share" / "cristack" / "containerd"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fake-containerd",
        description="A mock containerd: serves the CRI (runtime.v1) on a unix socket and runs each pod through a "
                    "shim of its own, for tracing demos and tests.")
    version_flag(p, f"containerd github.com/containerd/containerd/v2 {CONTAINERD_VERSION}", "--version", "-v")
    p.add_argument("--config", "-c", type=Path, help="path to the configuration file (containerd's config.toml)")
    p.add_argument("--log-level", "-l", help="set the logging level [trace, debug, info, warn, error, fatal, panic]")
    p.add_argument("--address", "-a", help="address for containerd's GRPC server (unix socket path)")
    p.add_argument("--root", type=Path, help="containerd root directory")
    p.add_argument("--state", type=Path, help="containerd state directory")
    p.add_argument("--pull-latency-ms", type=float, help=MOCK_KEYS["pull_latency_ms"])
    p.add_argument("--pod-logs-root", type=Path, help=MOCK_KEYS["pod_logs_root"])
    return p


def _runtime(cfg: ServerConfig, name: str, table: dict[str, Any]) -> RuntimeHandler:
    path = ("plugins", CRI_RUNTIME, "containerd", "runtimes", name)
    if not isinstance(table, dict):
        raise ConfigError(cfg.source(*path), toml_key(path), "expected a table")
    rtype = cfg.get((*path, "runtime_type"), str, RUNC_V2)
    if rtype != RUNC_V2:
        # containerd would look for containerd-shim-<name>-<version> on PATH; we never run host binaries.
        raise ConfigError(cfg.source(*path, "runtime_type"), toml_key((*path, "runtime_type")),
                          f"{rtype!r}: fake-containerd runs only its own runc shim ({RUNC_V2})")
    sandboxer = cfg.get((*path, "sandboxer"), str, "podsandbox") or "podsandbox"
    if sandboxer != "podsandbox":
        raise ConfigError(cfg.source(*path, "sandboxer"), toml_key((*path, "sandboxer")),
                          f"{sandboxer!r}: fake-containerd models the podsandbox sandboxer only"
                          f"{did_you_mean(sandboxer, SANDBOXERS)}")
    options = cfg.get((*path, "options"), dict, {})
    return RuntimeHandler(name, rtype, sandboxer, cfg.get((*path, "snapshotter"), str, ""), dict(options))


def _mock(cfg: ServerConfig) -> dict[str, Any]:
    table = cfg.data.get(srvconfig.MOCK_TABLE, {})
    if not isinstance(table, dict):
        raise ConfigError(cfg.source(srvconfig.MOCK_TABLE), srvconfig.MOCK_TABLE, "expected a table")
    for key in table:
        if key not in MOCK_KEYS:
            raise ConfigError(cfg.source(srvconfig.MOCK_TABLE, key), f"{srvconfig.MOCK_TABLE}.{key}",
                              f"unknown key{did_you_mean(key, MOCK_KEYS)}")
    return table


def _positive(cfg: ServerConfig, key: str, kind: type | tuple[type, ...], default: Any, flag: Any = None) -> Any:
    value = flag if flag is not None else cfg.get((srvconfig.MOCK_TABLE, key), kind, default)
    if value is not None and value < 0:
        raise ConfigError(cfg.source(srvconfig.MOCK_TABLE, key), f"{srvconfig.MOCK_TABLE}.{key}", "must be >= 0")
    return value


def _path(cfg: ServerConfig, path: tuple[str, ...], flag: Path | None, default: Path) -> Path:
    """An absolute directory from a flag or the file (relative to the file naming it, as shipped examples are
    written), or the default."""
    if flag is not None:
        return flag.absolute()
    value = cfg.get(path, str, None)
    if not value:
        return default
    p = Path(value)
    return p if p.is_absolute() else (Path(cfg.source(*path)).parent / p).absolute()


def load(argv: list[str] | None = None) -> CtdConfig:
    """Parses flags and the config file into a CtdConfig; ConfigError names the file and key at fault."""
    args = build_parser().parse_args(argv)
    cfg = srvconfig.load(args.config) if args.config is not None else ServerConfig()
    mock = _mock(cfg)

    level_name = args.log_level or cfg.get(("debug", "level"), str, "") or "info"
    try:
        if level_name.lower() not in LOG_LEVELS:
            raise ValueError(f"unknown log level {level_name!r} (one of {', '.join(LOG_LEVELS)})")
        level = parse_level(level_name)
    except ValueError as err:
        raise ConfigError("<flags>" if args.log_level else cfg.source("debug", "level"), "debug.level",
                          str(err)) from None

    root = _path(cfg, ("root",), args.root, default_root())
    state = _path(cfg, ("state",), args.state, default_runtime_dir() / "containerd")
    grpc_key = ("plugins", GRPC_PLUGIN, "address")
    address_text = args.address or cfg.get(grpc_key, str, "")
    address_default = not address_text
    try:
        address = parse_endpoint(address_text or str(state / "containerd.sock"))
    except ValueError as err:
        raise ConfigError("<flags>" if args.address else cfg.source(*grpc_key), toml_key(grpc_key), str(err)) from None
    if address.path is None:
        raise ConfigError("<flags>" if args.address else cfg.source(*grpc_key), toml_key(grpc_key),
                          "containerd's gRPC address is a unix socket path")
    ttrpc_key = ("plugins", TTRPC_PLUGIN, "address")
    ttrpc_text = cfg.get(ttrpc_key, str, "") if not args.address or cfg.plugin(TTRPC_PLUGIN) else ""
    ttrpc = Path(ttrpc_text) if ttrpc_text else Path(f"{address.path}.ttrpc")

    runtimes_table = cfg.get(("plugins", CRI_RUNTIME, "containerd", "runtimes"), dict, None)
    runtimes = ({name: _runtime(cfg, name, t) for name, t in runtimes_table.items()} if runtimes_table
                else {"runc": RuntimeHandler("runc")})
    default_key = ("plugins", CRI_RUNTIME, "containerd", "default_runtime_name")
    default_runtime = cfg.get(default_key, str, "runc")
    if default_runtime not in runtimes:
        raise ConfigError(cfg.source(*default_key), toml_key(default_key),
                          f"{default_runtime!r} has no runtimes.{default_runtime} table"
                          f"{did_you_mean(default_runtime, runtimes)}")

    snap_key = ("plugins", CRI_IMAGES, "snapshotter")
    snapshotter = cfg.get(snap_key, str, DEFAULT_SNAPSHOTTER)
    if snapshotter not in SNAPSHOTTERS:
        raise ConfigError(cfg.source(*snap_key), toml_key(snap_key),
                          f"unknown snapshotter {snapshotter!r}{did_you_mean(snapshotter, SNAPSHOTTERS)}")
    pinned = cfg.get(("plugins", CRI_IMAGES, "pinned_images"), dict, {})
    sandbox_image = pinned.get("sandbox") or DEFAULT_SANDBOX_IMAGE
    registry_key = ("plugins", CRI_IMAGES, "registry", "config_path")
    config_path = cfg.get(registry_key, str, "")

    cni = ("plugins", CRI_RUNTIME, "cni")
    conf_dir = cfg.get((*cni, "conf_dir"), str, "")
    max_conf = cfg.get((*cni, "max_conf_num"), int, 1)
    if max_conf < 0:
        raise ConfigError(cfg.source(*cni, "max_conf_num"), toml_key((*cni, "max_conf_num")), "must be >= 0")
    period_key = ("plugins", CRI_RUNTIME, "stats_collect_period")
    period_text = cfg.get(period_key, str, "1s")
    try:
        period = parse_duration(period_text)
        if period <= 0:
            raise ValueError("must be a positive duration")
    except ValueError as err:
        raise ConfigError(cfg.source(*period_key), toml_key(period_key), str(err)) from None

    mirrors = cfg.get((srvconfig.MOCK_TABLE, "registry_mirrors"), dict, {})
    bad = [k for k, v in mirrors.items() if not isinstance(v, str) or not v]
    if bad:
        raise ConfigError(cfg.source(srvconfig.MOCK_TABLE), f"{srvconfig.MOCK_TABLE}.registry_mirrors.{bad[0]}",
                          "expected a catalogue namespace such as 'docker.io/library'")
    logs_root = args.pod_logs_root or (Path(mock["pod_logs_root"]) if mock.get("pod_logs_root") else None)
    return CtdConfig(
        address=address, address_is_default=address_default, ttrpc_address=ttrpc, root=root, state=state,
        log_level=level, log_level_name=level_name.lower(), default_runtime=default_runtime, runtimes=runtimes,
        sandbox_image=sandbox_image, snapshotter=snapshotter,
        registry_config_path=_path(cfg, registry_key, None, Path()) if config_path else None,
        cni_conf_dir=_path(cfg, (*cni, "conf_dir"), None, DEFAULT_CNI_CONF_DIR), cni_conf_dir_is_default=not conf_dir,
        cni_bin_dirs=list(cfg.get((*cni, "bin_dirs"), list, ["/opt/cni/bin"])), cni_max_conf_num=max_conf,
        stats_collect_period=period,
        pull_latency_ms=float(_positive(cfg, "pull_latency_ms", (int, float), 20.0, args.pull_latency_ms)),
        pod_logs_root=logs_root.absolute() if logs_root else None,
        registry_mirrors=dict(mirrors),
        shim_tracing=cfg.get((srvconfig.MOCK_TABLE, "shim_tracing"), bool, True),
        shim_lifeline=cfg.get((srvconfig.MOCK_TABLE, "shim_lifeline"), bool, False),
        max_containers=int(_positive(cfg, "max_containers", int, 4096)),
        max_exec_seconds=float(_positive(cfg, "max_exec_seconds", (int, float), 300.0)),
        max_log_bytes=int(_positive(cfg, "max_log_bytes", int, 64 * 1024 * 1024)),
        sources=cfg.files,
    )
