"""fake-crio's configuration: ``crio.conf`` and ``crio.conf.d`` drop-ins, then flags.

The keys are CRI-O's own (``[crio]``, ``[crio.api]``, ``[crio.runtime]``,
``[crio.runtime.runtimes.NAME]``, ``[crio.image]``, ``[crio.tracing]``) with their real
defaults where a mock can honour them. What only a mock needs (pull latency, where pod logs
may go, call recording) lives in a separate top-level ``[cristack]`` table so that it never
changes the meaning of a real key.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cristack.config.tomlconf import Layered, load_layers
from cristack.otel.logs import parse_level
from cristack.versions import CRIO_VERSION, version_flag
from cristack.wire.endpoints import Endpoint, default_runtime_dir, parse_endpoint
from cristack.wire.errors import ConfigError
from cristack.wording import did_you_mean
from fake_crio.crio_keys import TABLE_KEYS
from fake_crio.faults import Faults
from fake_crio.faults import load_file as load_faults
from fake_crio.faults import parse as parse_faults
from fake_crio.network import PodNetwork, default_network
from fake_crio.network import load as load_network

log = logging.getLogger(__name__)

RUNTIME_TYPES = ("oci", "pod", "vm")
DEFAULT_TRACING_ENDPOINT = "127.0.0.1:4317"
# [crio.runtime] cgroup_manager: what internal/config/cgmgr.SetCgroupManager accepts; CRI-O's default is systemd.
CGROUP_MANAGERS = ("systemd", "cgroupfs")

# Keys we read. Anything else under [crio...] is a real CRI-O key that a mock has no use for.
KNOWN_KEYS = {
    "crio.root", "crio.runroot", "crio.log_dir",
    "crio.api.listen", "crio.api.grpc_max_send_msg_size", "crio.api.grpc_max_recv_msg_size",
    "crio.runtime.default_runtime", "crio.runtime.log_level", "crio.runtime.cgroup_manager",
    "crio.runtime.enable_pod_events",
    "crio.image.pause_image", "crio.network.network_dir", "crio.network.cni_default_network",
    "crio.tracing.enable_tracing", "crio.tracing.tracing_endpoint",
    "crio.tracing.tracing_sampling_rate_per_million",
    "cristack.pull_latency_ms", "cristack.pod_logs_root", "cristack.record_calls",
    "cristack.faults", "cristack.faults_seed", "cristack.max_containers", "cristack.max_concurrent_rpcs",
    "cristack.max_log_bytes", "cristack.max_exec_seconds", "cristack.pull_bandwidth_mbps",
}
HANDLER_KEYS = {"runtime_type", "runtime_config_path", "runtime_path", "runtime_root", "monitor_path",
                "monitor_endpoint", "monitor_env", "monitor_cgroup", "allowed_annotations",
                "privileged_without_host_devices"}


@dataclass
class RuntimeHandler:
    """One ``[crio.runtime.runtimes.NAME]`` table."""

    name: str
    runtime_type: str = "oci"
    # Where fake-conmon listens, for runtime_type "pod". (CRI-O's monitor_path names the
    # conmon binary to run; we never run host binaries, so we connect to a running monitor.)
    monitor_endpoint: str = ""
    # For runtime_type "vm": the Kata configuration.toml (CRI-O's own key).
    runtime_config_path: str = ""
    # CRI-O's monitor_env: "K=V" entries for the monitor's environment. conmon-rs exports its
    # spans only when LOG_DRIVER is among them; fake-conmon gets them in request metadata.
    monitor_env: list[str] = field(default_factory=list)


@dataclass
class TracingConfig:
    enable_tracing: bool = False
    tracing_endpoint: str = DEFAULT_TRACING_ENDPOINT
    tracing_sampling_rate_per_million: int = 0


@dataclass
class CrioConfig:
    """Everything fake-crio needs to start, after files and flags are merged."""

    listen: Endpoint
    listen_is_default: bool
    root: Path
    runroot: Path
    log_level: int = logging.INFO
    log_level_name: str = "info"
    default_runtime: str = "crun"
    # Answered by RuntimeConfig: the kubelet takes its cgroup driver from it.
    cgroup_manager: str = "systemd"
    # CRI-O's enable_pod_events (default false): GetContainerEvents streams container events and
    # PodSandboxStatus carries the containers' statuses and a timestamp, for the kubelet's evented PLEG.
    enable_pod_events: bool = False
    runtimes: dict[str, RuntimeHandler] = field(default_factory=dict)
    pause_image: str = "registry.k8s.io/pause:3.10"
    tracing: TracingConfig = field(default_factory=TracingConfig)
    pull_latency_ms: float = 20.0
    pull_bandwidth_mbps: float = 0.0  # 0: layers take no time of their own
    pod_logs_root: Path = Path("/var/log/pods")
    # True only when an operator set pod_logs_root: then every log directory must lie under it.
    confine_pod_logs: bool = False
    record_calls: Path | None = None
    # Where pod IPs come from: the CNI network configuration (fake_crio/network.py).
    network: PodNetwork = field(default_factory=default_network)
    faults: Faults = field(default_factory=Faults)
    # Resource caps: exceeding one fails that container or call, never the process.
    max_containers: int = 4096
    max_concurrent_rpcs: int = 512
    max_log_bytes: int = 64 * 1024 * 1024
    max_exec_seconds: float = 300.0
    sources: list[str] = field(default_factory=list)


def _flag_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def default_root() -> Path:
    return Path.home() / ".local" / "share" / "cristack" / "crio"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fake-crio",
        description="A mock CRI-O: serves the CRI (runtime.v1) on a unix socket, for tracing demos and tests.")
    version_flag(p, f"crio version {CRIO_VERSION}", "--version", "-v")
    p.add_argument("--config", "-c", type=Path, help="crio.conf (TOML)")
    p.add_argument("--config-dir", "-d", type=Path, help="directory of *.conf drop-ins, merged in lexical order")
    p.add_argument("--listen", help="unix:///PATH, PATH or HOST:PORT (default: a private runtime dir)")
    p.add_argument("--log-level", "-l", help="trace, debug, info, warn, error, fatal (default info)")
    p.add_argument("--root", "-r", type=Path, help="persistent state directory")
    p.add_argument("--runroot", type=Path, help="runtime state directory")
    p.add_argument("--default-runtime", help="runtime handler used when a request names none")
    p.add_argument("--monitor-endpoint", help="fake-conmon endpoint for handlers of runtime_type \"pod\"")
    p.add_argument("--pause-image", help="image of the sandbox's infra container")
    p.add_argument("--cni-config-dir", type=Path,
                   help="CNI network configuration directory; pod IPs come from its host-local range "
                        "(default: CRI-O's default network, 10.85.0.0/16)")
    p.add_argument("--cni-default-network", help="the CNI network to use (default: the first in the directory)")
    p.add_argument("--enable-tracing", nargs="?", const="true", default=None, type=_flag_bool,
                   metavar="BOOL", help="export OpenTelemetry traces (--enable-tracing=false turns it off)")
    p.add_argument("--tracing-endpoint", help=f"OTLP gRPC HOST:PORT (default {DEFAULT_TRACING_ENDPOINT})")
    p.add_argument("--tracing-sampling-rate-per-million", type=int,
                   help="sampling rate for traces that no sampled parent starts (default 0)")
    p.add_argument("--pull-latency-ms", type=float, help="mock: time a pull of an absent image takes")
    p.add_argument("--pull-bandwidth-mbps", type=float,
                   help="mock: simulated registry bandwidth; each layer then takes size / bandwidth")
    p.add_argument("--pod-logs-root", type=Path,
                   help="mock: confine every pod's log directory under this one (default: any absolute "
                        "log_directory, as CRI-O; relative ones go under /var/log/pods)")
    p.add_argument("--record-calls", type=Path, help="mock: append each CRI call's method name to this file")
    p.add_argument("--faults", type=Path, metavar="FILE",
                   help="mock: faults.toml with latency/errors to inject into CRI methods or steps")
    p.add_argument("--max-containers", type=int, help="mock: cap on containers held at once (default 4096)")
    p.add_argument("--max-concurrent-rpcs", type=int, help="mock: calls served at once (default 512)")
    return p


def _handler(layers: Layered, name: str) -> RuntimeHandler:
    prefix = f"crio.runtime.runtimes.{name}"
    for key in layers.values:
        if key.startswith(prefix + ".") and key[len(prefix) + 1:] not in HANDLER_KEYS:
            log.warning("%s: %s is not used by fake-crio", layers.source(key), key)
    rtype = layers.get(f"{prefix}.runtime_type", str, "oci")
    if rtype not in RUNTIME_TYPES:
        raise ConfigError(layers.source(f"{prefix}.runtime_type"), f"{prefix}.runtime_type",
                          f"{rtype!r} is not one of {', '.join(RUNTIME_TYPES)}")
    endpoint = layers.get(f"{prefix}.monitor_endpoint", str, "")
    if endpoint:
        try:
            parse_endpoint(endpoint)
        except ValueError as err:
            raise ConfigError(layers.source(f"{prefix}.monitor_endpoint"), f"{prefix}.monitor_endpoint",
                              str(err)) from None
    config_path = layers.get(f"{prefix}.runtime_config_path", str, "")
    if config_path and not Path(config_path).is_absolute():
        # Relative to the file that names it, so shipped examples work from any directory.
        config_path = str((Path(layers.source(f"{prefix}.runtime_config_path")).parent / config_path).resolve())
    monitor_env = layers.get(f"{prefix}.monitor_env", list, [])
    bad = [e for e in monitor_env if not isinstance(e, str) or "=" not in e]
    if bad:
        raise ConfigError(layers.source(f"{prefix}.monitor_env"), f"{prefix}.monitor_env",
                          f"expected \"KEY=VALUE\" strings, got {bad[0]!r}")
    return RuntimeHandler(name, rtype, endpoint, config_path, list(monitor_env))


# Mock-only keys that live in a real table (where fake-conmon listens, instead of CRI-O's monitor_path binary).
MOCK_HANDLER_KEYS = {"monitor_endpoint"}


def _table_of(key: str) -> tuple[str, str]:
    """(table pattern, key in it) for a flattened crio.conf key; user-named tables become ``*``."""
    parts = key.split(".")
    if parts[:3] in (["crio", "runtime", "runtimes"], ["crio", "runtime", "workloads"]) and len(parts) >= 5:
        table = ".".join(parts[:3]) + ".*"
        rest = parts[4:]
        if len(rest) > 1:
            return f"{table}.{'.'.join(rest[:-1])}", rest[-1]
        return table, rest[0]
    return ".".join(parts[:-1]), parts[-1]


def check_keys(layers: Layered) -> list[str]:
    """ConfigError naming the file and the full key for a key CRI-O 1.36 does not have (a typo), with the
    closest real one; the real keys fake-crio does not model are returned, to be ignored with a warning."""
    unmodelled = []
    for key in layers.values:
        if key.startswith("cristack."):
            if key not in KNOWN_KEYS:
                known = [k.split(".", 1)[1] for k in KNOWN_KEYS if k.startswith("cristack.")]
                raise ConfigError(layers.source(key), key,
                                  f"unknown key{did_you_mean(key.split('.', 1)[1], known)}")
            continue
        table, name = _table_of(key)
        real = TABLE_KEYS.get(table)
        if real is None:
            if not table.startswith("crio.runtime.workloads.*."):  # free-form workload sub-tables
                raise ConfigError(layers.source(key), key,
                                  f"unknown table [{table}]{did_you_mean(table, TABLE_KEYS)}")
            continue
        if real and name not in real and not (table == "crio.runtime.runtimes.*" and name in MOCK_HANDLER_KEYS):
            raise ConfigError(layers.source(key), key, f"unknown key{did_you_mean(name, real)}")
        if key not in KNOWN_KEYS and table != "crio.runtime.runtimes.*":
            unmodelled.append(key)
    return sorted(unmodelled)


def load(argv: list[str] | None = None) -> CrioConfig:
    """Parses flags and files into a CrioConfig; ConfigError names the file and key at fault. A flag wins over
    the files' key (``Sources.pick``); each part is read by its own function below."""
    args = build_parser().parse_args(argv)
    layers = load_layers(args.config, args.config_dir)
    ignored = check_keys(layers)
    if ignored:
        log.warning("ignoring keys fake-crio does not model: %s", ", ".join(ignored))
    src = Sources(args, layers)
    level, level_name = _log_level(src)
    listen, listen_default = _listen(src)
    runtimes, default_runtime = _runtimes(src)
    latency, bandwidth = _pull(src)
    root = src.pick(args.root, "crio.root", (str, Path), None)
    runroot = src.pick(args.runroot, "crio.runroot", (str, Path), None)
    logs_root = src.pick(args.pod_logs_root, "cristack.pod_logs_root", (str, Path), None)
    record = src.pick(args.record_calls, "cristack.record_calls", (str, Path), None)
    return CrioConfig(
        listen=listen,
        listen_is_default=listen_default,
        root=Path(root) if root else default_root(),
        runroot=Path(runroot) if runroot else default_runtime_dir() / "crio",
        log_level=level,
        log_level_name=level_name,
        default_runtime=default_runtime,
        cgroup_manager=_cgroup_manager(layers),
        enable_pod_events=layers.get("crio.runtime.enable_pod_events", bool, False),
        runtimes=runtimes,
        pause_image=src.pick(args.pause_image, "crio.image.pause_image", str, "registry.k8s.io/pause:3.10"),
        tracing=_tracing(src),
        pull_latency_ms=float(latency),
        pull_bandwidth_mbps=float(bandwidth),
        pod_logs_root=Path(logs_root) if logs_root else Path("/var/log/pods"),
        confine_pod_logs=logs_root is not None,
        record_calls=Path(record) if record else None,
        network=_network(src),
        faults=_faults(src),
        sources=sorted(set(layers.sources.values())),
        **_caps(src),
    )


@dataclass
class Sources:
    """The command line and the config files, flags first."""

    args: argparse.Namespace
    layers: Layered

    def pick(self, flag_value: Any, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        """The flag's value when given, else the files' ``key`` (checked against ``kind``), else ``default``."""
        return flag_value if flag_value is not None else self.layers.get(key, kind, default)


def _log_level(src: Sources) -> tuple[int, str]:
    name = src.pick(src.args.log_level, "crio.runtime.log_level", str, "info")
    try:
        return parse_level(name), name
    except ValueError as err:
        raise ConfigError(src.layers.source("crio.runtime.log_level", "--log-level"), "log_level", str(err)) from None


def _cgroup_manager(layers: Layered) -> str:
    manager = layers.get("crio.runtime.cgroup_manager", str, "systemd")
    if manager not in CGROUP_MANAGERS:
        # CRI-O refuses to start: "invalid cgroup manager: X".
        raise ConfigError(layers.source("crio.runtime.cgroup_manager"), "crio.runtime.cgroup_manager",
                          f"invalid cgroup manager: {manager!r} (expected one of {', '.join(CGROUP_MANAGERS)})")
    return manager


def _listen(src: Sources) -> tuple[Endpoint, bool]:
    """Where to serve, and whether that is the default socket."""
    text = src.pick(src.args.listen, "crio.api.listen", str, None)
    if text is None:
        return parse_endpoint(str(default_runtime_dir() / "crio.sock")), True
    try:
        return parse_endpoint(text), False
    except ValueError as err:
        raise ConfigError(src.layers.source("crio.api.listen", "--listen"), "crio.api.listen", str(err)) from None


def _runtimes(src: Sources) -> tuple[dict[str, RuntimeHandler], str]:
    """The runtime handlers (``[crio.runtime.runtimes.*]``, crun when none) and the default one; a pod-type
    handler's monitor is --monitor-endpoint when given, else its own key, else the default socket."""
    layers, args = src.layers, src.args
    runtimes = {name: _handler(layers, name) for name in layers.tables_under("crio.runtime.runtimes")}
    if not runtimes:
        runtimes["crun"] = RuntimeHandler("crun")
    default_runtime = src.pick(args.default_runtime, "crio.runtime.default_runtime", str, "crun")
    if default_runtime not in runtimes:
        raise ConfigError(layers.source("crio.runtime.default_runtime", "--default-runtime"),
                          "crio.runtime.default_runtime",
                          f"{default_runtime!r} has no [crio.runtime.runtimes.{default_runtime}] table")
    if args.monitor_endpoint:
        try:
            parse_endpoint(args.monitor_endpoint)
        except ValueError as err:
            raise ConfigError("<flags>", "--monitor-endpoint", str(err)) from None
    for handler in runtimes.values():
        if handler.runtime_type == "pod":
            handler.monitor_endpoint = args.monitor_endpoint or handler.monitor_endpoint or \
                str(default_runtime_dir() / "conmon.sock")
    return runtimes, default_runtime


def _tracing(src: Sources) -> TracingConfig:
    args = src.args
    tracing = TracingConfig(
        enable_tracing=src.pick(args.enable_tracing, "crio.tracing.enable_tracing", bool, False),
        tracing_endpoint=src.pick(args.tracing_endpoint, "crio.tracing.tracing_endpoint", str,
                                  DEFAULT_TRACING_ENDPOINT),
        tracing_sampling_rate_per_million=src.pick(args.tracing_sampling_rate_per_million,
                                                   "crio.tracing.tracing_sampling_rate_per_million", int, 0),
    )
    if not 0 <= tracing.tracing_sampling_rate_per_million <= 1_000_000:
        raise ConfigError(src.layers.source("crio.tracing.tracing_sampling_rate_per_million"),
                          "crio.tracing.tracing_sampling_rate_per_million", "must be between 0 and 1000000")
    return tracing


def _pull(src: Sources) -> tuple[float, float]:
    """The mock registry: a pull's latency (ms) and bandwidth (MB/s, 0: layers take no time)."""
    latency = src.pick(src.args.pull_latency_ms, "cristack.pull_latency_ms", (int, float), 20.0)
    bandwidth = src.pick(src.args.pull_bandwidth_mbps, "cristack.pull_bandwidth_mbps", (int, float), 0.0)
    if bandwidth < 0:
        raise ConfigError(src.layers.source("cristack.pull_bandwidth_mbps", "--pull-bandwidth-mbps"),
                          "cristack.pull_bandwidth_mbps", "must be >= 0")
    if latency < 0:
        raise ConfigError(src.layers.source("cristack.pull_latency_ms"), "cristack.pull_latency_ms", "must be >= 0")
    return latency, bandwidth


def _network(src: Sources) -> PodNetwork:
    args, layers = src.args, src.layers
    network_dir = src.pick(args.cni_config_dir, "crio.network.network_dir", (str, Path), None)
    if network_dir is not None and not Path(network_dir).is_absolute() and args.cni_config_dir is None:
        # Relative to the file that names it, so shipped examples work from any directory.
        network_dir = Path(layers.source("crio.network.network_dir")).parent / network_dir
    return load_network(Path(network_dir) if network_dir is not None else None,
                        src.pick(args.cni_default_network, "crio.network.cni_default_network", str, ""),
                        "<flags>" if args.cni_config_dir is not None else layers.source("crio.network.network_dir"))


def _faults(src: Sources) -> Faults:
    """--faults FILE, or the ``[[cristack.faults]]`` of the config files."""
    if src.args.faults is not None:
        return load_faults(src.args.faults)
    layers = src.layers
    seed = layers.get("cristack.faults_seed", int, 0)
    return parse_faults(layers.get("cristack.faults", list, []), seed, layers.source("cristack.faults"),
                        "cristack.faults")


def _caps(src: Sources) -> dict[str, float]:
    """The caps that are set, each > 0."""
    args, caps = src.args, {}
    for key, kind, flag in (("max_containers", int, args.max_containers),
                            ("max_concurrent_rpcs", int, args.max_concurrent_rpcs),
                            ("max_log_bytes", int, None), ("max_exec_seconds", (int, float), None)):
        value = src.pick(flag, f"cristack.{key}", kind, None)
        if value is not None:
            if value <= 0:
                raise ConfigError(src.layers.source(f"cristack.{key}", f"--{key.replace('_', '-')}"),
                                  f"cristack.{key}", "must be > 0")
            caps[key] = value
    return caps
