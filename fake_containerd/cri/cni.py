"""The CRI plugin's CNI path for pods with a network namespace of their own (internal/cri/server/sandbox_run.go
setupPodNetwork, sandbox_stop.go teardownPodNetwork, cni_conf_syncer.go and go-cni v1.1.14 of containerd
v2.4.2); host-network pods never come here, as upstream.

Which network: the first ``max_conf_num`` configurations of ``cni.conf_dir`` in libcni's order (the library's
cristack.cni reads them; pod IPs come from the first one's host-local range). containerd ships no default
network: with a ``conf_dir`` that holds none, the plugin is not initialized (Status says NetworkReady false,
"cni plugin not initialized", and a pod with its own network namespace fails "cni config not initialized").
Without ``conf_dir`` in the config, fake-containerd uses the network containerd's own install script writes
(script/setup/install-cni: ``containerd-net``, host-local on 10.88.0.0/16) instead of reading this machine's
/etc/cni/net.d.

The span ``cni.setup_pod_network`` and its events (``cni.setup.start``, ``cni.setup.complete``) and attributes
are upstream's; no plugin runs, no namespace is made: the pod's "netns" is a path under the state dir.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from pathlib import Path

from cristack.cni import PodNetwork, conf_files, host_local_range, network_from_file
from cristack.wire.errors import ConfigError, ResourceExhausted
from fake_containerd.tracing import ContainerdTracing, add_event

log = logging.getLogger(__name__)

DEFAULT_NETWORK = "containerd-net"
DEFAULT_SUBNET = "10.88.0.0/16"
NOT_INITIALIZED = "cni config not initialized"


def default_network() -> PodNetwork:
    return host_local_range(DEFAULT_NETWORK, {"subnet": DEFAULT_SUBNET}, "<containerd's install-cni default>",
                            "subnet")


def load(conf_dir: Path, max_conf_num: int, explicit: bool, source: str) -> PodNetwork | None:
    """The network pods get, or None when the directory holds no usable configuration."""
    if not explicit:
        return default_network()
    try:
        files = conf_files(conf_dir)[:max_conf_num or None]
    except OSError as err:
        raise ConfigError(source, "plugins.'io.containerd.cri.v1.runtime'.cni.conf_dir",
                          f"cannot read {conf_dir}: {err}") from None
    for path in files:
        name, net = network_from_file(path)
        if net is not None:
            log.info("Found CNI network %s at %s: pod IPs from %s", name, path, net.describe())
            return net
    log.warning("failed to load cni during init, please check CRI plugin status before setting up network for "
                "pods: no network config found in %s: cni plugin not initialized", conf_dir)
    return None


class PodNetworks:
    """Pod IPs handed out of one network's range, held from setup to teardown."""

    def __init__(self, network: PodNetwork | None, state_dir: Path, tracing: ContainerdTracing) -> None:
        self.network = network
        self.state_dir = state_dir
        self.tracing = tracing
        self.leases: dict[str, str] = {}  # sandbox id -> IP

    @property
    def ready(self) -> bool:
        return self.network is not None

    def new_netns(self) -> str:
        """netns.NewNetNS: where the pod's namespace would be bind-mounted (nothing is mounted)."""
        return str(self.state_dir / "netns" / f"cni-{uuid.uuid4()}")

    def setup(self, sandbox_id: str, netns_path: str, runtime_handler: str, used: Collection[str] = ()) -> str:
        with self.tracing.span("cni.setup_pod_network", {"sandbox.id": sandbox_id, "netns.path": netns_path,
                                                         "runtime.handler": runtime_handler}, namespace=True) as span:
            if self.network is None:
                raise RuntimeError(NOT_INITIALIZED)
            log.debug("begin cni setup", extra={"fields": {"podsandboxid": sandbox_id}})
            add_event("cni.setup.start")
            ip = self.network.allocate(set(self.leases.values()) | set(used))
            if ip is None:
                raise ResourceExhausted(f"plugin type=\"host-local\" failed (add): failed to allocate for range 0: "
                                        f"no IP addresses available in range set: {self.network.describe()}")
            self.leases[sandbox_id] = ip
            add_event("cni.setup.complete")
            span.set_attributes({"sandbox.ip": ip, "sandbox.additional_ips.count": 0})
            return ip

    def teardown(self, sandbox_id: str) -> None:
        if self.network is None:
            raise RuntimeError(NOT_INITIALIZED)
        self.leases.pop(sandbox_id, None)
