"""A node's components started together from the shipped example configs: used by ``cristack demo``/``up``/
``load``, the pytest plugin and our own tests, so that every one of them runs the stack the same way.

The harness knows two CRI runtimes (``StackOptions.runtime``): ``crio`` (fake-kubelet → fake-crio → fake-conmon,
the default) and ``containerd`` (fake-kubelet → fake-containerd → one fake-containerd-shim-runc-v2 per pod, which
fake-containerd starts itself, as containerd does).

Everything lives in one private base directory: sockets, state, pod logs, the per-run copies
of the configs (the shipped files with their paths pointed into the base directory).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from cristack.config.tomlconf import dumps_toml, read_toml
from cristack.harness.nodeplan import check_runtime
from cristack.harness.procs import Proc, start, stop_strays
from cristack.otel.stats import STATS_ENV, ExportStats, children_stats, read_stats, total
from cristack.wire.endpoints import free_ports, parse_endpoint, private_dir
from cristack.wording import did_you_mean
from fake_containerd.runtime.shim import SHIM_MODULE  # what a shim process runs

# The shipped examples are package data: `cristack/examples` is a link to the checkout's `examples/`, and a
# built wheel holds a copy, so an installed cristack runs its demo and scenarios anywhere.
EXAMPLES = Path(str(resources.files("cristack") / "examples"))


def example(*parts: str) -> Path:
    """A file of the shipped examples."""
    return EXAMPLES.joinpath(*parts)


RUNTIME_TYPES = ("pod", "oci")  # CRI-O's runtime types a stack can select
# Chains of processes a pod's start crosses, as the demo and `cristack up` name them.
CHAINS = {("crio", "pod"): "fake-kubelet → fake-crio → fake-conmon", ("crio", "oci"): "fake-kubelet → fake-crio",
          ("containerd", ""): "fake-kubelet → fake-containerd → shim"}


def chain(runtime: str, runtime_type: str = "pod") -> str:
    """The processes a pod's start crosses on this runtime: ``fake-kubelet → fake-containerd → shim``."""
    return CHAINS[(runtime, runtime_type if runtime == "crio" else "")]


def runtime_label(runtime: str, runtime_type: str = "pod") -> str:
    """``runtime type pod`` (CRI-O's, as the demo always said) or ``runtime containerd``."""
    return f"runtime type {runtime_type}" if runtime == "crio" else f"runtime {runtime}"


@dataclass
class StackOptions:
    """How to start the stack. Defaults are the shipped example configs."""

    # The node's CRI runtime: "crio" (fake-crio; fake-conmon for runtime type pod) or "containerd" (fake-containerd,
    # which runs each pod under a shim of its own).
    runtime: str = "crio"
    runtime_type: str = "pod"  # CRI-O's: "pod" (through fake-conmon) or "oci"; containerd has none
    otlp_endpoint: str | None = None  # None: tracing off everywhere
    # The runtime's tracing (fake-crio's, or fake-containerd's through its OTEL_* environment) and its sampling:
    # a ratio under a parent-based sampler in both (CRI-O's tracing_sampling_rate_per_million; containerd's
    # OTEL_TRACES_SAMPLER=parentbased_traceidratio).
    crio_tracing: bool = True
    crio_sampling_per_million: int = 1_000_000
    kubelet_tracing: bool = True
    kubelet_sampling_per_million: int | None = 1_000_000
    conmon_tracing: bool = True  # the monitor's: fake-conmon's, or the shims' (off: the shim's release build)
    relist_period: str = "1s"
    backoff_base: str = "10s"
    backoff_max: str = "5m"
    gc_period: str = "1m"
    file_check_frequency: str = "1s"
    log_level: str = "info"
    pull_latency_ms: float | None = None
    record_calls: bool = False
    pod_events: bool = False  # fake-kubelet --events-file (Stack.events_file)
    telemetry_stats: bool = False  # each component keeps its span counts in base/<name>-stats.json (export_stats)
    kubelet_config: dict[str, object] = field(default_factory=dict)  # extra KubeletConfiguration keys
    crio_args: list[str] = field(default_factory=list)
    containerd_args: list[str] = field(default_factory=list)
    kubelet_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # One node of several: its name (the kubelet's --hostname-override and every component's
    # host.name) and its pod CIDR (KubeletConfiguration podCIDR and the runtime's CNI network). None: the
    # machine's hostname and the runtime's default network (CRI-O's 10.85.0.0/16, containerd's 10.88.0.0/16).
    node_name: str | None = None
    pod_cidr: str | None = None
    # A parent trace context for the pods' start traces, as the kubelet reads it (TRACEPARENT, TRACESTATE).
    # None: none, whatever the caller's environment holds (a stray TRACEPARENT must not re-parent a test run).
    traceparent: str | None = None
    tracestate: str | None = None


class Stack:
    """fake-kubelet and the node's runtime (fake-crio and fake-conmon, or fake-containerd) in ``base``."""

    def __init__(self, base: Path, options: StackOptions | None = None) -> None:
        self.base = base
        self.opts = options or StackOptions()
        check_runtime(self.opts.runtime)
        if self.opts.runtime_type not in RUNTIME_TYPES:
            rt = self.opts.runtime_type
            raise ValueError(f"no runtime type {rt!r}{did_you_mean(rt, RUNTIME_TYPES)} "
                             f"(known: {', '.join(RUNTIME_TYPES)})")
        self.run_dir = private_dir(base / "run")
        self.manifests = base / "manifests"
        self.pod_logs = base / "pods"
        self.crio_socket = self.run_dir / "crio.sock"
        self.conmon_socket = self.run_dir / "conmon.sock"
        self.containerd_socket = self.run_dir / "containerd.sock"
        self.crio_calls = base / "crio-calls.txt"
        self.kubelet_calls = base / "kubelet-calls.txt"
        self.events_file = base / "pod-events.jsonl"
        self.result_file = base / "runonce-result.json"  # fake-kubelet --runonce: each pod's outcome
        self.conmon: Proc | None = None
        self.crio: Proc | None = None
        self.containerd: Proc | None = None
        self.kubelet: Proc | None = None
        for d in (self.manifests, self.pod_logs):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def crio_endpoint(self) -> str:
        return f"unix://{self.crio_socket}"

    @property
    def cri_socket(self) -> Path:
        """Where the node's runtime serves the CRI (the kubelet's containerRuntimeEndpoint, crictl's)."""
        return self.containerd_socket if self.opts.runtime == "containerd" else self.crio_socket

    @property
    def cri_endpoint(self) -> str:
        return f"unix://{self.cri_socket}"

    @property
    def chain(self) -> str:
        """The processes a pod's start crosses on this node (``fake-kubelet → fake-containerd → shim``)."""
        return chain(self.opts.runtime, self.opts.runtime_type)

    @property
    def shape(self) -> str:
        """The pod-start shape of this node's traces (``cristack.harness.expectations``): pod, oci or containerd."""
        from cristack.harness.expectations import shape

        return shape(self.opts.runtime, self.opts.runtime_type)

    def add_manifest(self, path: Path) -> Path:
        dest = self.manifests / path.name
        shutil.copyfile(path, dest)
        return dest

    def add_unique_manifest(self, path: Path) -> str:
        """Copies a pod manifest with a fresh ``metadata.uid`` (so its trace can be told apart
        from other runs' in a shared Jaeger); returns the uid."""
        doc = yaml.safe_load(path.read_text())
        uid = str(uuid.uuid4())
        doc.setdefault("metadata", {})["uid"] = uid
        (self.manifests / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
        return uid

    # -- argument lists (also what compose's equivalence test compares against)

    def conmon_args(self) -> list[str]:
        args = ["--listen", f"unix://{self.conmon_socket}", "--runtime-dir", str(self.base / "conmon"),
                "--log-level", self.opts.log_level]
        if self.opts.otlp_endpoint and self.opts.conmon_tracing:
            args += ["--enable-tracing", "--tracing-endpoint", self.opts.otlp_endpoint]
        return args

    def crio_args(self) -> list[str]:
        o = self.opts
        args = ["--config", str(example("crio", "crio.conf")), "--config-dir", str(example("crio", "crio.conf.d")),
                "--listen", self.crio_endpoint, "--root", str(self.base / "crio-root"),
                "--runroot", str(self.base / "crio-runroot"), "--pod-logs-root", str(self.pod_logs),
                "--monitor-endpoint", f"unix://{self.conmon_socket}", "--log-level", o.log_level,
                "--default-runtime", "conmonrs" if o.runtime_type == "pod" else "crun"]
        if o.otlp_endpoint:
            args += ["--tracing-endpoint", o.otlp_endpoint,
                     "--tracing-sampling-rate-per-million", str(o.crio_sampling_per_million)]
        args.append("--enable-tracing=" + ("true" if o.otlp_endpoint and o.crio_tracing else "false"))
        if o.pull_latency_ms is not None:
            args += ["--pull-latency-ms", str(o.pull_latency_ms)]
        if o.record_calls:
            args += ["--record-calls", str(self.crio_calls)]
        if o.pod_cidr:
            args += ["--cni-config-dir", str(self.cni_config())]
        return args + o.crio_args

    def cni_config(self) -> Path:
        """A CNI network directory whose one network hands out ``pod_cidr``: the runtime's default bridge
        conflist (CRI-O's, or containerd's install script's) with this node's subnet, as an operator would write
        it per node."""
        net_dir = self.base / "cni"
        net_dir.mkdir(parents=True, exist_ok=True)
        name, file = (("containerd-net", "10-containerd-net.conflist") if self.opts.runtime == "containerd"
                      else ("crio", "11-crio-ipv4-bridge.conflist"))
        conflist = {"cniVersion": "1.0.0", "name": name, "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": self.opts.pod_cidr}]]}}]}
        (net_dir / file).write_text(json.dumps(conflist, indent=2) + "\n")
        return net_dir

    def containerd_config(self) -> Path:
        """The shipped containerd config.toml (version 4) with this run's paths, sockets, log level, pod network
        and mock-only settings: written to ``base/containerd.toml``."""
        o = self.opts
        doc = read_toml(example("containerd", "config.toml"))
        doc.update(root=str(self.base / "containerd-root"), state=str(self.base / "containerd-state"))
        doc.setdefault("debug", {})["level"] = o.log_level
        plugins = doc.setdefault("plugins", {})
        plugins.setdefault("io.containerd.server.v1.grpc", {})["address"] = str(self.containerd_socket)
        plugins.setdefault("io.containerd.server.v1.ttrpc", {})["address"] = f"{self.containerd_socket}.ttrpc"
        cni = plugins.setdefault("io.containerd.cri.v1.runtime", {}).setdefault("cni", {})
        # The shipped file names its network relative to itself; this copy lives elsewhere.
        cni["conf_dir"] = str(self.cni_config() if o.pod_cidr else example("containerd", "net.d"))
        mock = doc.setdefault("cristack", {})
        mock.update(pod_logs_root=str(self.pod_logs), shim_tracing=o.conmon_tracing,
                    # A harness stop, or fake-containerd's death however it comes, leaves no shim running.
                    shim_lifeline=True)
        if o.pull_latency_ms is not None:
            mock["pull_latency_ms"] = o.pull_latency_ms
        path = self.base / "containerd.toml"
        path.write_text("# cristack: examples/containerd/config.toml with this run's paths and settings\n"
                        + dumps_toml(doc))
        return path

    def containerd_args(self) -> list[str]:
        return ["--config", str(self.containerd_config()), *self.opts.containerd_args]

    def containerd_env(self) -> dict[str, str]:
        """containerd's tracing, as the real one takes it: only from the OTEL_* environment (its shims inherit
        it), none of the caller's own OTEL_* variables leaking in."""
        o = self.opts
        env = {k: "" for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                               "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")}
        if o.otlp_endpoint and o.crio_tracing:
            env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{o.otlp_endpoint}", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                       OTEL_EXPORTER_OTLP_INSECURE="true")
            if o.crio_sampling_per_million != 1_000_000:
                env.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                           OTEL_TRACES_SAMPLER_ARG=f"{o.crio_sampling_per_million / 1_000_000:g}")
        return {**self._env("containerd"), **env}

    def kubelet_config(self) -> Path:
        """The shipped KubeletConfiguration with this run's paths and tracing settings."""
        doc = yaml.safe_load(example("kubelet", "kubelet-config.yaml").read_text())
        doc["containerRuntimeEndpoint"] = self.cri_endpoint
        doc["staticPodPath"] = str(self.manifests)
        doc["podLogsDir"] = str(self.pod_logs)
        doc["fileCheckFrequency"] = self.opts.file_check_frequency
        # The kubelet's API port (10250 in the real kubelet): a free loopback port per stack, so that two
        # stacks (two demos, parallel tests) never fight over it.
        doc.setdefault("port", free_ports(1)[0])
        if self.opts.pod_cidr:
            doc["podCIDR"] = self.opts.pod_cidr
        doc.update(self.opts.kubelet_config)
        if self.opts.otlp_endpoint and self.opts.kubelet_tracing:
            doc["tracing"] = {"endpoint": self.opts.otlp_endpoint}
            if self.opts.kubelet_sampling_per_million is not None:
                doc["tracing"]["samplingRatePerMillion"] = self.opts.kubelet_sampling_per_million
        else:
            doc.pop("tracing", None)
        path = self.base / "kubelet-config.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def kubelet_args(self, *, runonce: bool) -> list[str]:
        o = self.opts
        args = ["--config", str(self.kubelet_config()), "--relist-period", o.relist_period,
                "--backoff-base", o.backoff_base, "--backoff-max", o.backoff_max, "--gc-period", o.gc_period,
                "--log-level", o.log_level]
        if runonce:
            # The harness's runs leave nothing behind: the pods are torn down before the kubelet exits.
            args += ["--runonce", "--runonce-teardown", "--result-file", str(self.result_file)]
        if o.node_name:
            args += ["--hostname-override", o.node_name]
        if o.record_calls:
            args += ["--record-cri-calls", str(self.kubelet_calls)]
        if o.pod_events:
            args += ["--events-file", str(self.events_file)]
        return args + o.kubelet_args

    # -- processes

    def stats_file(self, component: str) -> Path:
        """Where ``component`` keeps its exporter stats (with ``StackOptions.telemetry_stats``)."""
        return self.base / f"{component}-stats.json"

    def export_stats(self) -> dict[str, ExportStats]:
        """Each started component's span counts as it last wrote them (about once a second, and at exit); on
        containerd, ``shims`` too: its shims' counts together, those of shims already gone included."""
        out = {name: stats for name, _ in self.procs() if (stats := read_stats(self.stats_file(name))) is not None}
        if self.opts.runtime == "containerd" and (shims := children_stats(self.stats_file("containerd"))):
            out["shims"] = total(shims, "shims")
        return out

    def _env(self, component: str = "") -> dict[str, str]:
        env = dict(self.opts.env)
        # Three components must not share one stats file named by the caller's shell.
        env[STATS_ENV] = str(self.stats_file(component)) if self.opts.telemetry_stats and component else ""
        # Our components take their tracing settings from their own configs; stray OTEL_*
        # variables from the caller's shell must not redirect a test or demo run.
        env.setdefault("OTEL_SDK_DISABLED", os.environ.get("OTEL_SDK_DISABLED", "false"))
        env.setdefault("TRACEPARENT", "")  # only the kubelet is given one, and only when asked (below)
        env.setdefault("TRACESTATE", "")
        if self.opts.node_name:
            # crio and conmon-rs take host.name from the UTS hostname, which nodes on one machine share;
            # the standard variable names this node (kept with whatever else the caller put there).
            given = env.get("OTEL_RESOURCE_ATTRIBUTES", os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
            kept = [kv for kv in given.split(",") if kv.strip() and kv.split("=", 1)[0].strip() != "host.name"]
            env["OTEL_RESOURCE_ATTRIBUTES"] = ",".join([*kept, f"host.name={self.opts.node_name}"])
        return env

    def start_runtime(self) -> None:
        """Starts fake-conmon (for runtime type pod) and fake-crio side by side, and waits until
        both serve (crio connects to the monitor lazily, so neither waits for the other)."""
        self.spawn_runtime()
        self.wait_runtime()

    def spawn_runtime(self) -> None:
        """Starts the runtime without waiting for it: fake-containerd, or fake-conmon (for runtime type pod) and
        fake-crio."""
        if self.opts.runtime == "containerd":
            self.containerd = start("fake-containerd", self.containerd_args(), self.base / "containerd.log",
                                    endpoint=parse_endpoint(str(self.containerd_socket)), env=self.containerd_env(),
                                    wait=False)
            return
        if self.opts.runtime_type == "pod":
            self.conmon = start("fake-conmon", self.conmon_args(), self.base / "conmon.log",
                                endpoint=parse_endpoint(str(self.conmon_socket)), env=self._env("conmon"), wait=False)
        self.crio = start("fake-crio", self.crio_args(), self.base / "crio.log",
                          endpoint=parse_endpoint(str(self.crio_socket)), env=self._env("crio"), wait=False)

    def wait_runtime(self) -> None:
        """Waits until what ``spawn_runtime`` started serves; on failure stops the stack and raises."""
        for proc in (self.conmon, self.crio, self.containerd):
            if proc is not None:
                try:
                    proc.wait_serving()
                except Exception:
                    self.stop()
                    raise

    def start(self, *, runonce: bool = False) -> Proc:
        """All three at once: the kubelet waits for the runtime by itself."""
        kubelet = self.start_kubelet(runonce=runonce)
        self.start_runtime()
        return kubelet

    def start_kubelet(self, *, runonce: bool = False) -> Proc:
        env = self._env("kubelet")
        if self.opts.traceparent is not None:
            env.update(TRACEPARENT=self.opts.traceparent, TRACESTATE=self.opts.tracestate or "")
        self.kubelet = start("fake-kubelet", self.kubelet_args(runonce=runonce), self.base / "kubelet.log",
                             env=env, wait=False)
        return self.kubelet

    def stop(self) -> dict[str, float]:
        """Stops the kubelet and the runtime; returns the seconds each took to exit. The kubelet is told first,
        then all shut down side by side, so stopping takes as long as the slowest, not the sum. Shims that
        outlived their fake-containerd (a SIGKILL leaves them to end by its lifeline) are waited for, and
        stopped if they linger: when this returns, nothing of the node runs."""
        procs = self.procs()
        started = time.monotonic()
        self.terminate()
        took = {}
        for name, proc in procs:
            proc.stop()
            took[name] = time.monotonic() - started
        if self.opts.runtime == "containerd" and stop_strays(self.base, SHIM_MODULE):
            took["shims"] = time.monotonic() - started
        return took

    def procs(self) -> list[tuple[str, Proc]]:
        """The processes started so far, kubelet first."""
        return [(name, p) for name in PROCS if (p := getattr(self, name)) is not None]

    def terminate(self) -> None:
        """SIGTERM to every process, the kubelet first, without waiting (``stop`` waits)."""
        for _, proc in self.procs():
            proc.terminate()

    def alive(self) -> bool:
        """Whether every process started so far still runs."""
        return all(proc.popen.poll() is None for _, proc in self.procs())

    def logs(self) -> dict[str, str]:
        return {name: p.log_text() for name in reversed(PROCS) if (p := getattr(self, name)) is not None}


PROCS = ("kubelet", "crio", "containerd", "conmon")  # a Stack's processes by name, the kubelet first
