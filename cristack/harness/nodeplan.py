"""Node plans: the names and pod CIDRs of several nodes, which pod manifests each runs, and the CRI runtimes a
node can run.

The pod CIDRs are cut the way kube-controller-manager's node IPAM does it (``--cluster-cidr`` split into
``--node-cidr-mask-size`` blocks); node ``i`` takes block ``i``, so a fleet whose nodes know their index
(a StatefulSet's ``apps.kubernetes.io/pod-index``) never shares a pod IP.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cristack.wording import did_you_mean

RUNTIMES = ("crio", "containerd")  # the CRI runtimes a node can run (cristack.harness.stack); the first is the default
CLUSTER_CIDR = "10.244.0.0/16"  # kubeadm's and flannel's usual pod network
NODE_CIDR_MASK = 24  # kube-controller-manager's default --node-cidr-mask-size for IPv4


def check_runtime(name: str) -> str:
    """``name`` if it is a runtime the harness runs; ValueError with the closest name otherwise."""
    if name not in RUNTIMES:
        raise ValueError(f"no runtime {name!r}{did_you_mean(name, RUNTIMES)} (known: {', '.join(RUNTIMES)})")
    return name


class ClusterError(ValueError):
    """A node plan that cannot be made (a bad CIDR, an index past the cluster CIDR's end)."""


@dataclass(frozen=True)
class NodePlan:
    """One node: its name (host.name, the kubelet's node name), its index and its pod CIDR. A node without a
    name is the machine itself (its hostname); without a pod CIDR it uses CRI-O's default network."""

    name: str | None
    index: int
    pod_cidr: str | None


def node_cidr(index: int, cluster_cidr: str = CLUSTER_CIDR, mask: int = NODE_CIDR_MASK) -> str:
    """Block ``index`` of ``cluster_cidr`` cut into /``mask`` blocks: ``node_cidr(3)`` is ``10.244.3.0/24``."""
    try:
        net = ipaddress.ip_network(cluster_cidr)
    except ValueError as err:
        raise ClusterError(f"cluster CIDR {cluster_cidr!r}: {err}") from None
    if not net.prefixlen < mask <= net.max_prefixlen - 2:
        raise ClusterError(f"node CIDR mask /{mask} does not fit cluster CIDR {net} "
                           f"(it is between /{net.prefixlen + 1} and /{net.max_prefixlen - 2})")
    blocks = 2 ** (mask - net.prefixlen)
    if not 0 <= index < blocks:
        raise ClusterError(f"node index {index} is outside cluster CIDR {net}, which holds {blocks} /{mask} "
                           f"blocks (indexes 0..{blocks - 1})")
    return str(ipaddress.ip_network((int(net.network_address) + index * 2 ** (net.max_prefixlen - mask), mask)))


def plan_nodes(count: int, cluster_cidr: str = CLUSTER_CIDR, mask: int = NODE_CIDR_MASK) -> list[NodePlan]:
    """``count`` nodes ``node-1``…``node-N``; node ``i`` takes block ``i`` of the cluster CIDR."""
    if count < 1:
        raise ClusterError(f"--nodes {count}: a cluster has at least one node")
    return [NodePlan(f"node-{i}", i, node_cidr(i, cluster_cidr, mask)) for i in range(1, count + 1)]


def assign(manifests: list[Path], nodes: int, spread: bool) -> list[list[Path]]:
    """Which manifests each node runs: all of them on every node, or (``spread``) dealt round-robin."""
    if not spread:
        return [list(manifests) for _ in range(nodes)]
    return [manifests[i::nodes] for i in range(nodes)]


def check_mix(runtimes: tuple[str, ...], nodes: int) -> None:
    """ClusterError when several runtimes are asked of fewer nodes than there are runtimes to deal (one per node,
    round-robin: demo, up and load alike)."""
    if len(runtimes) > nodes:
        raise ClusterError(f"--runtime {','.join(runtimes)}: {len(runtimes)} runtimes are dealt one per node "
                           f"round-robin; give --nodes {len(runtimes)} or more")
