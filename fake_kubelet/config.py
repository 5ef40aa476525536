"""fake-kubelet's configuration: a KubeletConfiguration file (kubelet.config.k8s.io/v1beta1)
plus the kubelet's usual flags, which win over the file.

Mock-only knobs (the PLEG relist period and back-off base, which the real kubelet hard-codes)
are flags of their own and never keys of the KubeletConfiguration.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cristack.config import yamlload
from cristack.config.durations import parse_duration
from cristack.files import ReadLimitReached, read_config
from cristack.otel.logs import parse_level, verbosity_level
from cristack.versions import KUBERNETES_VERSION, version_flag
from cristack.wire.endpoints import Endpoint, default_runtime_dir, parse_endpoint
from cristack.wire.errors import ConfigError
from cristack.wording import cut, did_you_mean, shown
from fake_kubelet.podfields import FIELDS

log = logging.getLogger(__name__)

API_VERSION = "kubelet.config.k8s.io/v1beta1"
KIND = "KubeletConfiguration"
DEFAULT_TRACING_ENDPOINT = "localhost:4317"

# KubeletConfiguration keys we read, with the type YAML must give them.
KNOWN: dict[str, type | tuple[type, ...]] = {
    "apiVersion": str, "kind": str,
    "staticPodPath": str, "containerRuntimeEndpoint": str, "imageServiceEndpoint": str,
    "featureGates": dict, "tracing": dict, "podLogsDir": str, "fileCheckFrequency": str,
    "syncFrequency": str, "readOnlyPort": int, "address": str, "runtimeRequestTimeout": str,
    "port": int, "containerLogMonitorInterval": str, "podCIDR": str,
}

# Mock-only flags for the periods the real kubelet hard-codes; defaults are the real values.
PERIOD_FLAGS: dict[str, tuple[str, str]] = {
    "relist_period": ("1s", "PLEG relist period"),
    "housekeeping_period": ("2s", "housekeeping (runtime cache ListPodSandbox/ListContainers) period"),
    "runtime_status_period": ("5s", "runtime Status check period"),
    "eviction_period": ("10s", "eviction manager monitoring period (ImageFsInfo, stats)"),
    "image_cache_period": ("30s", "image cache refresh period (ListImages)"),
    "gc_period": ("1m", "container garbage collection period (Containers/GarbageCollect)"),
    "image_gc_period": ("5m", "image garbage collection period (Images/GarbageCollect)"),
}


@dataclass
class TracingConfig:
    """The KubeletConfiguration ``tracing`` block. ``enabled`` is False when it is absent."""

    enabled: bool = False
    endpoint: str = DEFAULT_TRACING_ENDPOINT
    sampling_rate_per_million: int | None = None


@dataclass
class KubeletConfig:
    runtime_endpoint: Endpoint
    static_pod_path: Path | None
    pod_logs_dir: Path = Path("/var/log/pods")
    feature_gates: dict[str, bool] = field(default_factory=dict)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    file_check_frequency: float = 20.0
    read_only_port: int = 0
    port: int = 10250
    address: str = "127.0.0.1"
    log_monitor_period: float = 10.0
    runtime_request_timeout: float = 120.0
    runonce: bool = False
    runonce_timeout: float = 300.0
    runonce_teardown: bool = False  # mock: tear the pods down before --runonce exits (the real kubelet leaves them)
    log_level: int = logging.INFO
    node_name: str = "cristack-node"
    pod_cidr: str = ""  # KubeletConfiguration podCIDR (standalone mode), passed to the runtime
    relist_period: float = 1.0
    housekeeping_period: float = 2.0
    runtime_status_period: float = 5.0
    eviction_period: float = 10.0
    image_cache_period: float = 30.0
    image_gc_period: float = 300.0
    backoff_base: float = 10.0
    backoff_max: float = 300.0
    gc_period: float = 60.0
    record_cri_calls: Path | None = None
    events_file: Path | None = None  # mock: pod events as JSON lines (fake_kubelet/events.py)
    result_file: Path | None = None  # mock: with --runonce, each pod's outcome as JSON (fake_kubelet/result.py)

    @property
    def tracing_gate(self) -> bool:
        # KubeletTracing is beta and on by default since Kubernetes 1.28.
        return self.feature_gates.get("KubeletTracing", True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fake-kubelet",
                                description="A mock kubelet: runs static pods through the real CRI call order.")
    version_flag(p, f"Kubernetes {KUBERNETES_VERSION}")
    p.add_argument("--config", type=Path, help="KubeletConfiguration YAML file")
    p.add_argument("--container-runtime-endpoint", help="CRI endpoint, unix:///PATH or HOST:PORT")
    p.add_argument("--pod-manifest-path", type=Path, help="directory of static pod manifests")
    p.add_argument("--runonce", action="store_true",
                   help="run the static pods until each is running (or has finished), then exit, leaving them "
                        "running (pkg/kubelet/runonce.go)")
    p.add_argument("--runonce-timeout", default="5m", help="give up on --runonce after this long (default 5m)")
    p.add_argument("--runonce-teardown", action="store_true",
                   help="mock: with --runonce, tear the pods down in the real stop order before exiting")
    p.add_argument("--v", "-v", type=int, default=None, help="klog verbosity (4 and above: debug)")
    p.add_argument("--log-level", help="debug, info, warn, error (overrides --v)")
    p.add_argument("--hostname-override", help="node name, also the traces' host.name (default: the hostname)")
    p.add_argument("--backoff-base", default="10s", help="mock: first crash/pull back-off (real: 10s)")
    p.add_argument("--backoff-max", default="5m", help="mock: back-off ceiling (real: 5m)")
    for name, (default, what) in PERIOD_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), default=default, help=f"mock: {what} (real: {default})")
    p.add_argument("--record-cri-calls", type=Path, help="debug: append 'operation method' per CRI call to FILE")
    p.add_argument("--events-file", type=Path, metavar="FILE",
                   help="mock: append pod events (core/v1 Event objects, one JSON per line) to FILE")
    p.add_argument("--result-file", type=Path, metavar="FILE",
                   help="mock: with --runonce, write each pod's phase, reason, message and sync trace ids to FILE")
    return p


def _check(doc: dict[str, Any], key: str, source: str, default: Any = None) -> Any:
    if key not in doc or doc[key] is None:
        return default
    kind = KNOWN[key]
    value = doc[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(source, key, f"expected {names}, got {type(value).__name__} {shown(value)}")
    return value


def _duration(value: str, source: str, key: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as err:
        raise ConfigError(source, key, str(err)) from None


def node_name(override: str | None) -> str:
    """The node name as the real kubelet derives it (k8s.io/component-helpers/node/util
    GetHostname): ``--hostname-override`` or the machine's hostname, trimmed and lower-cased."""
    name = (override if override else socket.gethostname()).strip().lower()
    if not name:
        raise ConfigError("<flags>", "--hostname-override", "empty hostname is invalid")
    return name


def pod_cidr(value: str, source: str) -> str:
    """KubeletConfiguration ``podCIDR``: one CIDR, or an IPv4 and an IPv6 one separated by a comma
    (dual stack), passed to the runtime as written. Host bits may be set, as Go's ParseCIDR allows."""
    parts = [p.strip() for p in value.split(",")] if value.strip() else []
    nets = []
    for part in parts:
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(source, "podCIDR", f"{shown(part)} is not a CIDR such as 10.244.1.0/24") from None
        if "/" not in part:
            raise ConfigError(source, "podCIDR", f"{shown(part)} has no prefix length (e.g. {cut(part)}/24)")
    if len(nets) > 2 or len({n.version for n in nets}) != len(nets):
        raise ConfigError(source, "podCIDR", f"{shown(value)}: expected one CIDR, or one IPv4 and one IPv6 CIDR")
    return ",".join(parts)


def read_config_file(path: Path) -> dict[str, Any]:
    """Loads and checks the KubeletConfiguration document; ConfigError names the file and key."""
    src = str(path)
    try:
        # go-yaml's limits (aliases, depth) and a bounded read, as for static pod manifests.
        doc = yamlload.load(read_config(path))
    except FileNotFoundError:
        raise ConfigError(src, "", "no such file") from None
    except (OSError, ReadLimitReached) as err:
        raise ConfigError(src, "", f"cannot read: {cut(str(err), 200)}") from None
    except yamlload.YamlError as err:
        raise ConfigError(src, "", f"invalid YAML: {err}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(src, "", "expected a KubeletConfiguration mapping")
    if doc.get("apiVersion", API_VERSION) != API_VERSION:
        raise ConfigError(src, "apiVersion", f"expected {API_VERSION}, got {shown(doc.get('apiVersion'))}")
    if doc.get("kind", KIND) != KIND:
        raise ConfigError(src, "kind", f"expected {KIND}, got {shown(doc.get('kind'))}")
    unmodelled = []
    for key in doc:
        if key not in FIELDS["KubeletConfiguration"]:
            # Not a KubeletConfiguration field at all (the real kubelet's strict decoding refuses it too).
            name = cut(str(key))
            raise ConfigError(src, name, f"unknown field{did_you_mean(name, FIELDS['KubeletConfiguration'])}")
        if key not in KNOWN:
            unmodelled.append(str(key))
    if unmodelled:
        log.warning("%s: ignoring KubeletConfiguration fields fake-kubelet does not model: %s", src,
                    ", ".join(sorted(unmodelled)))
    return doc


def load(argv: list[str] | None = None) -> KubeletConfig:
    """Parses flags and the config file into a KubeletConfig."""
    args = build_parser().parse_args(argv)
    doc: dict[str, Any] = read_config_file(args.config) if args.config else {}
    src = str(args.config) if args.config else "<flags>"

    endpoint_text = args.container_runtime_endpoint or _check(doc, "containerRuntimeEndpoint", src)
    if endpoint_text is None:
        endpoint_text = f"unix://{default_runtime_dir() / 'crio.sock'}"
    try:
        endpoint = parse_endpoint(endpoint_text)
    except ValueError as err:
        where = "--container-runtime-endpoint" if args.container_runtime_endpoint else "containerRuntimeEndpoint"
        raise ConfigError(src if where != "--container-runtime-endpoint" else "<flags>", where, str(err)) from None

    # A flag's relative path is the working directory's, a config file's is the file's directory (the real kubelet's
    # resolveRelativePaths applies to the file's fields only): `--pod-manifest-path examples/manifests` with
    # --config examples/kubelet/... had looked in examples/kubelet/examples/manifests and run no pod.
    static = args.pod_manifest_path
    if static is None:
        static = _check(doc, "staticPodPath", src)
        if static is not None and args.config and not Path(static).is_absolute():
            static = args.config.parent / static

    gates_raw = _check(doc, "featureGates", src, {})
    gates: dict[str, bool] = {}
    for name, value in gates_raw.items():
        if not isinstance(value, bool):
            raise ConfigError(src, f"featureGates.{cut(str(name))}",
                              f"expected bool, got {type(value).__name__} {shown(value)}")
        gates[str(name)] = value

    tracing = TracingConfig()
    block = _check(doc, "tracing", src)
    if block is not None:
        tracing.enabled = True
        for key in block:
            if key not in ("endpoint", "samplingRatePerMillion"):
                log.warning("%s: unknown key tracing.%s ignored", src, key)
        endpoint_value = block.get("endpoint", DEFAULT_TRACING_ENDPOINT)
        if not isinstance(endpoint_value, str):
            raise ConfigError(src, "tracing.endpoint", f"expected str, got {type(endpoint_value).__name__}")
        try:
            parse_endpoint(endpoint_value)
        except ValueError as err:
            raise ConfigError(src, "tracing.endpoint", str(err)) from None
        tracing.endpoint = endpoint_value
        rate = block.get("samplingRatePerMillion")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or not 0 <= rate <= 1_000_000):
            raise ConfigError(src, "tracing.samplingRatePerMillion",
                              f"expected an integer 0..1000000, got {shown(rate)}")
        tracing.sampling_rate_per_million = rate

    if args.log_level:
        try:
            level = parse_level(args.log_level)
        except ValueError as err:
            raise ConfigError("<flags>", "--log-level", str(err)) from None
    else:
        level = verbosity_level(args.v or 0)

    flag_durations = {}
    for flag in (*PERIOD_FLAGS, "backoff_base", "backoff_max", "runonce_timeout"):
        flag_durations[flag] = _duration(getattr(args, flag), "<flags>", "--" + flag.replace("_", "-"))
    port = _check(doc, "readOnlyPort", src, 0)
    if not 0 <= port <= 65535:
        raise ConfigError(src, "readOnlyPort", f"{port} is not a port number")
    serving_port = _check(doc, "port", src, 10250)
    if not 0 <= serving_port <= 65535:
        raise ConfigError(src, "port", f"{serving_port} is not a port number")
    logs_dir = _check(doc, "podLogsDir", src, "/var/log/pods")
    if args.config and not Path(logs_dir).is_absolute():
        logs_dir = args.config.parent / logs_dir
    return KubeletConfig(
        runtime_endpoint=endpoint,
        static_pod_path=Path(static) if static is not None else None,
        pod_logs_dir=Path(logs_dir),
        feature_gates=gates,
        tracing=tracing,
        file_check_frequency=_duration(_check(doc, "fileCheckFrequency", src, "20s"), src, "fileCheckFrequency"),
        read_only_port=port,
        port=serving_port,
        address=_check(doc, "address", src, "127.0.0.1"),
        log_monitor_period=_duration(_check(doc, "containerLogMonitorInterval", src, "10s"), src,
                                     "containerLogMonitorInterval"),
        runtime_request_timeout=_duration(_check(doc, "runtimeRequestTimeout", src, "2m"), src,
                                          "runtimeRequestTimeout"),
        runonce=args.runonce,
        runonce_timeout=flag_durations["runonce_timeout"],
        runonce_teardown=args.runonce_teardown,
        log_level=level,
        node_name=node_name(args.hostname_override),
        pod_cidr=pod_cidr(_check(doc, "podCIDR", src, ""), src),
        backoff_base=flag_durations["backoff_base"],
        backoff_max=flag_durations["backoff_max"],
        **{name: flag_durations[name] for name in PERIOD_FLAGS},
        record_cri_calls=args.record_cri_calls,
        events_file=args.events_file,
        result_file=args.result_file,
    )
