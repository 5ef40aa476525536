"""Where CRI-O's pod IPs come from: the CNI configuration (read by the library's cristack.cni).

CRI-O hands a pod's network to the CNI plugins named by the first network configuration in
``[crio.network] network_dir`` (``--cni-config-dir``, default ``/etc/cni/net.d/``), or by
``cni_default_network`` when set; the IP comes from that network's IPAM.

CRI-O ignores the kubelet's UpdateRuntimeConfig pod CIDR (server/update_runtime_config.go in
CRI-O 1.36.3 does nothing), and so does fake-crio.

Without a ``network_dir`` in any file or flag, fake-crio uses CRI-O's shipped default network
(contrib/cni/11-crio-ipv4-bridge.conflist: ``crio``, host-local on 10.85.0.0/16) rather than
reading this machine's ``/etc/cni/net.d``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cristack.cni import PodNetwork, conf_files, host_local_range, network_from_file
from cristack.wire.errors import ConfigError

__all__ = ["PodNetwork", "default_network", "load"]

log = logging.getLogger(__name__)

DEFAULT_NETWORK_NAME = "crio"
DEFAULT_SUBNET = "10.85.0.0/16"


def default_network() -> PodNetwork:
    """CRI-O's shipped bridge network: 10.85.0.0/16, gateway 10.85.0.1."""
    return host_local_range(DEFAULT_NETWORK_NAME, {"subnet": DEFAULT_SUBNET}, "<built-in default>", "subnet")


def load(network_dir: Path | None, default_name: str, source: str) -> PodNetwork:
    """The pod network CRI-O would use: the ``default_name`` network, or the first configuration
    in ``network_dir`` in lexical order. ``source`` names where network_dir was set."""
    if network_dir is None:
        return default_network()
    try:
        files = conf_files(network_dir)
    except OSError as err:
        raise ConfigError(source, "crio.network.network_dir", f"cannot read {network_dir}: {err}") from None
    for path in files:
        name, net = network_from_file(path)
        if default_name and name != default_name:
            continue
        if net is None:
            log.warning("%s: fake-crio allocates pod IPs only from host-local ranges; using CRI-O's default %s",
                        path, DEFAULT_SUBNET)
            return default_network()
        log.info("Found CNI network %s at %s: pod IPs from %s", name, path, net.describe())
        return net
    what = f"network {default_name!r}" if default_name else "CNI network configuration"
    log.warning("no %s in %s; using CRI-O's default pod network %s", what, network_dir, DEFAULT_SUBNET)
    return default_network()
