"""The simulated nodes and what each emits when: one seeded schedule for the whole fleet.

Each node has a name and a pod CIDR (``cristack.harness.nodeplan``, as ``cristack up --nodes`` and ``cristack
load`` cut them), a runtime, its own temp dir and pids (its resources), and the images it has pulled. Every node
makes its runtime's ``node`` kinds at their captured rates, each from its own phase. Pods arrive at ``pod_rate``
per second over the fleet (Poisson arrivals, each on a node drawn at random); each is an ``episode``: a fault kind
with its ``faults`` share, else the long-running pod (``pod-pull`` on a node without the image yet). A pod's
emissions follow its captured timeline: t0 when it arrives, t1 after its lifetime (at least its kind's start
window); while it runs it makes its kind's ``pod-periodic`` roots.

Everything the schedule decides (which node, which kind, names, pids, phases, times) comes from one
``random.Random(seed)``, in an order that does not depend on the wall clock: the same seed gives the same
sequence. Trace and span ids, uids and container ids come from a second generator seeded by the OS, so two runs
never share an id.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from cristack.harness.fleet import wire
from cristack.harness.fleet.catalogue import Catalogue, Kind
from cristack.harness.nodeplan import NODE_CIDR_MASK, node_cidr

FAULT_KINDS = ("crashloop", "pull-backoff", "slow-storage")
# The runtimes each fault kind exists on (each runtime's catalogue has exactly these): slow-storage is CRI-O's fault
# injection (its --faults file), which containerd has no counterpart of; a containerd node's pod drawn for it
# starts as a plain pod.
FAULT_RUNTIMES = {"crashloop": ("crio", "containerd"), "pull-backoff": ("crio", "containerd"),
                  "slow-storage": ("crio",)}
FLEET_CIDR = "10.0.0.0/12"  # 4,096 /24 node blocks: a thousand nodes and more
# Deployment-style pod names: a workload, the pod-template hash (10) and a suffix (5), from the alphabet the
# real controllers use (k8s.io/apimachinery/pkg/util/rand: no vowels, no look-alikes).
WORKLOAD = {"pod-pull": "web", "pod": "web", "crashloop": "crasher", "pull-backoff": "app", "slow-storage": "db"}
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FIXED = {"base": 25, "uid": 36}
# What a node's temp dir looks like (cristack up's: tempfile.mkdtemp(prefix="cristack-up-")).
BASE_PREFIX = "/tmp/cristack-up-"
_TMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


@dataclass
class FleetModel:
    """What the fleet simulates (the command's options, less where it sends)."""

    nodes: int = 1000
    pod_rate: float = 20.0  # pods started per second over the fleet (the command's default: one per node every 50 s)
    lifetime: float = 30.0  # seconds from a pod's manifest written to it removed
    faults: dict[str, float] = field(default_factory=dict)  # fault kind -> share of the pods started
    runtimes: dict[str, float] = field(default_factory=lambda: {"crio": 1.0})  # runtime -> share of the nodes
    seed: int | None = None
    cluster_cidr: str = FLEET_CIDR
    node_cidr_mask: int = NODE_CIDR_MASK


class Node:
    __slots__ = ("index", "name", "runtime", "resources", "base", "pulled", "ips", "net", "hosts")

    def __init__(self, index: int, name: str, runtime: str, resources: dict[str, bytes], base: bytes,
                 cidr: str) -> None:
        self.index, self.name, self.runtime, self.resources, self.base = index, name, runtime, resources, base
        self.pulled = False
        self.ips = 0
        net = ipaddress.ip_network(cidr)
        self.net, self.hosts = int(net.network_address), net.num_addresses

    def next_ip(self) -> bytes:
        """host-local IPAM's order: .2, .3, ... (.1 is the bridge's), then round again."""
        self.ips += 1
        return str(ipaddress.ip_address(self.net + 2 + (self.ips - 1) % max(1, self.hosts - 3))).encode()


class Pod:
    __slots__ = ("node", "kind", "name", "emissions", "next", "anchors", "traces", "spans", "markers", "until")

    def __init__(self, node: Node, kind: Kind, name: str, emissions: list[wire.Emission], anchors: dict[str, int],
                 traces: list[bytes], spans: list[bytes], markers: dict[str, bytes]) -> None:
        self.node, self.kind, self.name, self.emissions = node, kind, name, emissions
        self.next = 0
        self.anchors, self.traces, self.spans, self.markers = anchors, traces, spans, markers
        self.until = anchors["t1"]


# Events of the schedule: (due ns, sequence, what, subject, detail).
NODE_KIND, POD_EMISSION, POD_PERIODIC, ARRIVAL = 0, 1, 2, 3


class Fleet:
    """The schedule. ``advance(now)`` issues everything due by ``now`` (fleet time, ns since the epoch) through
    ``emit(resource_spans_bytes, spans)``; ``log``, when a list, gets (ns since the start, node, kind, pod)."""

    def __init__(self, model: FleetModel, catalogues: dict[str, Catalogue], start_ns: int,
                 emit: Callable[[bytes, int], None], log: list | None = None) -> None:
        self.model, self.catalogues, self.emit, self.log = model, catalogues, emit, log
        self.start_ns = start_ns
        self.rng = random.Random(model.seed)
        self.ids = random.Random(os.urandom(16))
        self.heap: list[tuple[int, int, int, object, object]] = []
        self.seq = 0
        self.compiled: dict[tuple[str, str, tuple[int, ...]], list[wire.Emission]] = {}
        self.markers: dict[tuple[str, str], list[str]] = {}  # (runtime, kind) -> the markers its spans hold
        self.issued_spans = 0
        self.pods_started = 0
        self.pods_running = 0
        self.kinds_started: dict[str, int] = {}
        # Resources named per pod (containerd's shims: containerd-shim-<sandbox id>), by runtime and service, and
        # those issued lately (a pod's shim sends one at each of its emissions).
        self.pod_resources = {(runtime, service): attrs for runtime, cat in catalogues.items()
                              for service, attrs in cat.resources.items() if _per_pod(attrs)}
        self._pod_resource_bytes: dict[tuple[int, str, bytes], bytes] = {}
        self.nodes = [self._node(i) for i in range(1, model.nodes + 1)]
        self._warm()
        for node in self.nodes:
            for kind in catalogues[node.runtime].of_role("node"):
                period = int(1e9 / kind.rate)
                self._at(start_ns + int(self.rng.random() * period), NODE_KIND, node, kind)
        if model.pod_rate > 0:
            self._at(start_ns + self._gap(), ARRIVAL, None, None)

    # -- set-up

    def _node(self, index: int) -> Node:
        runtimes = list(self.model.runtimes)
        runtime = self.rng.choices(runtimes, weights=[self.model.runtimes[r] for r in runtimes])[0]
        name = f"node-{index}"
        base = BASE_PREFIX + "".join(self.rng.choice(_TMP_CHARS) for _ in range(8))
        resources = {}
        for service, attrs in self.catalogues[runtime].resources.items():
            if (runtime, service) in self.pod_resources:
                continue  # filled per pod, at issue
            pid = self.rng.randrange(300, 4_000_000)  # each process of the node its own
            filled = {k: name if v == "{{node}}" else pid if v == "{{process.pid}}" else v for k, v in attrs.items()}
            resources[service] = wire.resource_bytes(filled)
        return Node(index, name, runtime, resources, base.encode(),
                    node_cidr(index, self.model.cluster_cidr, self.model.node_cidr_mask))

    def _warm(self) -> None:
        """Compiles every kind the nodes will issue now rather than on its first issue, where a large one (a
        crash loop's hundreds of spans) would hold the schedule up for a moment."""
        for runtime in {n.runtime for n in self.nodes}:
            for kind in self.catalogues[runtime].kinds.values():
                pod = len(WORKLOAD.get(kind.of or kind.name, "app")) + 17  # workload-hash10-suffix5
                with contextlib.suppress(KeyError):  # a marker whose length varies per issue (a pod IP)
                    self._compiled(runtime, kind, {"pod": pod})

    def _at(self, due: int, what: int, subject: object, detail: object) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, what, subject, detail))

    def _gap(self) -> int:
        return int(self.rng.expovariate(self.model.pod_rate) * 1e9)

    def _markers_of(self, runtime: str, kind: Kind) -> list[str]:
        got = self.markers.get((runtime, kind.name))
        if got is None:
            got = self.markers[(runtime, kind.name)] = wire.kind_markers(kind)
        return got

    def _compiled(self, runtime: str, kind: Kind, lengths: dict[str, int]) -> list[wire.Emission]:
        """``kind`` compiled for these marker lengths (the fixed ones need not be given), once."""
        names = self._markers_of(runtime, kind)
        full = {m: lengths.get(m) or _marker_length(m) for m in names}
        key = (runtime, kind.name, tuple(full[m] for m in names))
        got = self.compiled.get(key)
        if got is None:
            got = self.compiled[key] = wire.compile_kind(kind, full)
        return got

    # -- running

    def next_due(self) -> int | None:
        return self.heap[0][0] if self.heap else None

    def advance(self, now: int) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            due, _, what, subject, detail = heapq.heappop(heap)
            if what == NODE_KIND:
                self._node_kind(due, subject, detail)  # type: ignore[arg-type]
            elif what == POD_EMISSION:
                self._pod_emission(subject)  # type: ignore[arg-type]
            elif what == POD_PERIODIC:
                self._pod_periodic(due, subject, detail)  # type: ignore[arg-type]
            else:
                self._arrival(due)

    def _issue(self, node: Node, emission: wire.Emission, traces: list[bytes], spans: list[bytes],
               anchors: dict[str, int], markers: dict[str, bytes]) -> None:
        resources = node.resources
        for group in emission.groups:
            resource = resources.get(group.service) or self._pod_resource(node, group.service, markers)
            self.emit(wire.issue(group, resource, traces, spans, anchors, markers), group.spans)
        self.issued_spans += emission.spans

    def _pod_resource(self, node: Node, service: str, markers: dict[str, bytes]) -> bytes:
        """The resource of a process of one pod (a containerd shim), its markers from the pod's."""
        attrs = self.pod_resources[(node.runtime, service)]
        names = wire.markers_in(attrs)
        key = (node.index, service, b"/".join(markers[m] for m in sorted(names) if m in markers))
        got = self._pod_resource_bytes.get(key)
        if got is None:
            if len(self._pod_resource_bytes) >= 65_536:  # pods come and go: keep the recent ones only
                self._pod_resource_bytes.clear()
            values = {**{m: v.decode() for m, v in markers.items()}, "node": node.name}
            got = self._pod_resource_bytes[key] = wire.resource_bytes(wire.fill_markers(attrs, values))
        return got

    def _fresh(self, kind: Kind) -> tuple[list[bytes], list[bytes]]:
        rb = self.ids.randbytes
        n_traces = 1 + max(s.trace for s in kind.spans)
        n_spans = 1 + max(s.span for s in kind.spans)
        return [rb(16) for _ in range(n_traces)], [rb(8) for _ in range(n_spans)]

    def _node_kind(self, due: int, node: Node, kind: Kind) -> None:
        emissions = self._compiled(node.runtime, kind, {})
        last = emissions[-1].offset
        traces, spans = self._fresh(kind)
        markers = self._issue_markers(kind, node)
        anchors = {"r": due - last}  # the root began so that its last span ends now
        for emission in emissions:
            self._issue(node, emission, traces, spans, anchors, markers)
        if self.log is not None:
            self.log.append((due - self.start_ns, node.name, kind.name, ""))
        self._at(due + int(1e9 / kind.rate), NODE_KIND, node, kind)

    def _issue_markers(self, kind: Kind, node: Node, pod: dict[str, bytes] | None = None) -> dict[str, bytes]:
        out = dict(pod or {})
        out["base"] = node.base
        out["node"] = node.name.encode()
        for m in self._markers_of(node.runtime, kind):
            if m not in out:
                out[m] = _fresh_marker(m, self.ids)
        return out

    def _arrival(self, due: int) -> None:
        model = self.model
        node = self.nodes[self.rng.randrange(len(self.nodes))]
        catalogue = self.catalogues[node.runtime]
        kind_name = "pod" if node.pulled else "pod-pull"
        draw = self.rng.random()
        for fault in FAULT_KINDS:
            share = model.faults.get(fault, 0.0)
            if draw < share and fault in catalogue.kinds:
                kind_name = fault
                break
            draw -= share
        kind = catalogue.kinds[kind_name]
        if kind_name == "pod-pull":
            node.pulled = True
        name = f"{WORKLOAD.get(kind_name, 'app')}-{self._chars(10)}-{self._chars(5)}"
        pids = {m: str(self.rng.randrange(10000, 100000)).encode() for m in self._markers_of(node.runtime, kind)
                if m.startswith("pid")}
        lifetime = max(model.lifetime, kind.start_s)
        anchors = {"t0": due, "t1": due + int(lifetime * 1e9)}
        pod_markers = {"pod": name.encode(), "uid": _uuid(self.ids), "ip": node.next_ip(), **pids}
        markers = self._issue_markers(kind, node, pod_markers)
        lengths = {m: len(v) for m, v in markers.items()}
        traces, spans = self._fresh(kind)
        pod = Pod(node, kind, name, self._compiled(node.runtime, kind, lengths), anchors, traces, spans, markers)
        self.pods_started += 1
        self.pods_running += 1
        self.kinds_started[kind_name] = self.kinds_started.get(kind_name, 0) + 1
        if self.log is not None:
            self.log.append((due - self.start_ns, node.name, kind_name, name))
        self._schedule_emission(pod)
        for periodic in catalogue.periodic_of(kind_name):
            period = int(1e9 / periodic.rate)
            first = due + int(kind.start_s * 1e9) + int(self.rng.random() * period)
            if first < pod.until:
                self._at(first, POD_PERIODIC, pod, periodic)
        self._at(due + self._gap(), ARRIVAL, None, None)

    def _chars(self, n: int) -> str:
        return "".join(self.rng.choice(_ALPHABET) for _ in range(n))

    def _schedule_emission(self, pod: Pod) -> None:
        if pod.next >= len(pod.emissions):
            self.pods_running -= 1
            return
        e = pod.emissions[pod.next]
        self._at(pod.anchors[e.anchor] + e.offset, POD_EMISSION, pod, None)

    def _pod_emission(self, pod: Pod) -> None:
        e = pod.emissions[pod.next]
        self._issue(pod.node, e, pod.traces, pod.spans, pod.anchors, pod.markers)
        pod.next += 1
        self._schedule_emission(pod)

    def _pod_periodic(self, due: int, pod: Pod, kind: Kind) -> None:
        node = pod.node
        emissions = self._compiled(node.runtime, kind, {m: len(v) for m, v in pod.markers.items()})
        traces, spans = self._fresh(kind)
        anchors = {"r": due - emissions[-1].offset}
        markers = self._issue_markers(kind, node, pod.markers)
        for emission in emissions:
            self._issue(node, emission, traces, spans, anchors, markers)
        if self.log is not None:
            self.log.append((due - self.start_ns, node.name, kind.name, pod.name))
        nxt = due + int(1e9 / kind.rate)
        if nxt < pod.until:
            self._at(nxt, POD_PERIODIC, pod, kind)


def _per_pod(attrs: dict) -> bool:
    """A resource with markers other than the node's own (host.name, process.pid)."""
    return bool(wire.markers_in(attrs) - {"node", "process.pid"})


def _marker_length(name: str) -> int:
    if name in _FIXED:
        return _FIXED[name]
    if name.startswith("id"):
        return 64
    if name.startswith("uuid"):
        return 36
    if name.startswith("pid"):
        return 5
    raise KeyError(f"no length for marker {name!r}")


def _uuid(rng: random.Random) -> bytes:
    h = rng.randbytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".encode()


def _fresh_marker(name: str, rng: random.Random) -> bytes:
    if name.startswith("id"):
        return rng.randbytes(32).hex().encode()
    if name.startswith("uuid"):
        return _uuid(rng)
    if name.startswith("pid"):
        return str(rng.randrange(10000, 100000)).encode()
    raise KeyError(f"no value for marker {name!r}")
