"""Several nodes on one machine: N independent stacks (each its own kubelet, crio, conmon, sockets, state
and logs), named ``node-1``…``node-N``, each handing out pod IPs from its own slice of one cluster CIDR,
all exporting to one OTLP endpoint. Used by ``cristack up --nodes N``, ``cristack demo --nodes N`` and
``cristack load``.

The pod CIDRs are cut the way kube-controller-manager's node IPAM does it (``--cluster-cidr`` split into
``--node-cidr-mask-size`` blocks); node ``i`` takes block ``i``, so a fleet whose nodes know their index
(a StatefulSet's ``apps.kubernetes.io/pod-index``) never shares a pod IP.
"""

from __future__ import annotations

import ipaddress
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from cristack.harness.procs import Proc
from cristack.harness.stack import Stack, StackOptions

CLUSTER_CIDR = "10.244.0.0/16"  # kubeadm's and flannel's usual pod network
NODE_CIDR_MASK = 24  # kube-controller-manager's default --node-cidr-mask-size for IPv4


class ClusterError(ValueError):
    """A node plan that cannot be made (a bad CIDR, an index past the cluster CIDR's end)."""


@dataclass(frozen=True)
class NodePlan:
    """One node: its name (host.name, the kubelet's node name), its index and its pod CIDR."""

    name: str
    index: int
    pod_cidr: str


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


class Cluster:
    """N stacks under ``base/<node name>``, started and stopped side by side."""

    def __init__(self, base: Path, plans: list[NodePlan], options: StackOptions) -> None:
        self.base = base
        self.plans = plans
        self.stacks = [Stack(base / plan.name, replace(options, node_name=plan.name, pod_cidr=plan.pod_cidr))
                       for plan in plans]

    def __iter__(self):  # noqa: ANN204 - an iterator of (NodePlan, Stack)
        return iter(zip(self.plans, self.stacks, strict=True))

    def add_manifests(self, manifests: list[Path], spread: bool) -> None:
        """Gives each node its share of ``manifests`` (see ``assign``)."""
        for stack, share in zip(self.stacks, assign(manifests, len(self.stacks), spread), strict=True):
            for path in share:
                shutil.copyfile(path, stack.manifests / path.name)

    def start(self, *, runonce: bool = False) -> list[Proc]:
        """Starts every node's kubelet and runtime without waiting, then waits until every runtime serves
        (so that N nodes start in about the time of one). Returns the kubelets."""
        kubelets = [stack.start_kubelet(runonce=runonce) for stack in self.stacks]
        for stack in self.stacks:
            stack.spawn_runtime()
        try:
            for stack in self.stacks:
                stack.wait_runtime()
        except Exception:
            self.stop()
            raise
        return kubelets

    def alive(self) -> bool:
        """Whether every process of every node still runs."""
        return all(stack.alive() for stack in self.stacks)

    def stop(self) -> dict[str, float]:
        """Stops every node; all are told at once, so this takes as long as the slowest process. Returns the
        seconds each component kind took, at most over the nodes."""
        for stack in self.stacks:
            stack.terminate()
        started = time.monotonic()
        took: dict[str, float] = {}
        for stack in self.stacks:
            for name, proc in stack.procs():
                proc.stop()
                took[name] = max(took.get(name, 0.0), time.monotonic() - started)
        return took
