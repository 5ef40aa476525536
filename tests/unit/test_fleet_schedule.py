"""The fleet's schedule, driven on a simulated clock: a seed fixes what happens when; nodes make their periodic
roots at the captured rates; pods arrive at the rate asked, with the faults' shares; a node pulls an image once;
nodes of both runtimes side by side, each with its own runtime's traces and faults."""

from __future__ import annotations

from collections import Counter

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from cristack.harness.fleet.catalogue import load
from cristack.harness.fleet.nodes import Fleet, FleetModel
from cristack.harness.fleet.run import expected_spans_per_s
from cristack.otel.tracediff import any_value

CATS = {"crio": load("crio"), "containerd": load("containerd")}
HALF = {"crio": 0.5, "containerd": 0.5}
S = 1_000_000_000
T0 = 1_700_000_000 * S


def simulate(model: FleetModel, seconds: float, keep: list | None = None):
    log: list = []
    spans = Counter()

    def emit(data: bytes, n: int) -> None:
        spans["n"] += n
        if keep is not None:
            keep.append(data)

    fleet = Fleet(model, CATS, T0, emit, log)
    fleet.advance(T0 + int(seconds * S))
    return fleet, log, spans["n"]


def test_the_same_seed_gives_the_same_sequence_and_another_seed_another():
    model = FleetModel(nodes=50, pod_rate=3.0, lifetime=10, faults={"crashloop": 0.2}, seed=42)
    _, a, _ = simulate(model, 30)
    _, b, _ = simulate(model, 30)
    _, c, _ = simulate(FleetModel(nodes=50, pod_rate=3.0, lifetime=10, faults={"crashloop": 0.2}, seed=43), 30)
    assert a == b and len(a) > 1000
    assert [x for x in a if x[3]] != [x for x in c if x[3]]


def test_ids_are_fresh_even_with_the_same_seed():
    model = FleetModel(nodes=3, pod_rate=0.0, seed=1)
    first, second = [], []
    simulate(model, 3, first)
    simulate(model, 3, second)
    ids = [{s.trace_id for rs in ExportTraceServiceRequest.FromString(d).resource_spans for ss in rs.scope_spans
            for s in ss.spans} for d in (b"".join(first), b"".join(second))]
    assert ids[0] and not ids[0] & ids[1]


def test_nodes_make_their_periodic_roots_at_the_captured_rates():
    fleet, log, _ = simulate(FleetModel(nodes=20, pod_rate=0.0, seed=3), 120)
    made = Counter(kind for _, _, kind, _ in log)
    for kind in CATS["crio"].of_role("node"):
        expected = kind.rate * 20 * 120
        assert abs(made[kind.name] - expected) <= 20 + 0.02 * expected, kind.name  # each node from its own phase
    assert {n.name for n in fleet.nodes} == {f"node-{i}" for i in range(1, 21)}


def test_pods_arrive_at_the_rate_with_the_fault_shares_and_pull_once_per_node():
    model = FleetModel(nodes=10, pod_rate=20.0, lifetime=5, seed=5,
                       faults={"crashloop": 0.1, "pull-backoff": 0.1, "slow-storage": 0.1})
    fleet, log, _ = simulate(model, 100)
    pods = [(node, kind, name) for _, node, kind, name in log if kind in CATS["crio"].kinds
            and CATS["crio"].kinds[kind].role == "episode"]
    assert 1800 <= len(pods) <= 2200  # Poisson, 2,000 expected
    kinds = Counter(kind for _, kind, _ in pods)
    for fault in ("crashloop", "pull-backoff", "slow-storage"):
        assert 150 <= kinds[fault] <= 250, kinds
    pulls = Counter(node for node, kind, _ in pods if kind == "pod-pull")
    assert pulls == Counter({f"node-{i}": 1 for i in range(1, 11)})  # the first long-running pod of each node
    assert len({name for _, _, name in pods}) == len(pods)
    assert all(name.startswith(("web-", "crasher-", "app-", "db-")) for _, _, name in pods)


def test_a_pods_spans_carry_its_name_and_its_nodes_resource():
    keep: list[bytes] = []
    fleet, log, _ = simulate(FleetModel(nodes=2, pod_rate=1.0, lifetime=5, seed=9), 30, keep)
    pods = {name: node for _, node, kind, name in log if kind == "pod-pull"}
    req = ExportTraceServiceRequest.FromString(b"".join(keep))
    seen = set()
    for rs in req.resource_spans:
        res = {kv.key: any_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                attrs = {kv.key: any_value(kv.value) for kv in s.attributes}
                if s.name == "syncPod" and attrs.get("k8s.pod.name") in pods:
                    assert res["host.name"] == pods[attrs["k8s.pod.name"]]
                    seen.add(attrs["k8s.pod.name"])
    assert seen == set(pods)


def test_the_rate_asked_is_what_a_long_run_issues():
    model = FleetModel(nodes=30, pod_rate=1.0, lifetime=20, seed=11, faults={"crashloop": 0.1})
    fleet, _, _ = simulate(model, 200)
    before = fleet.issued_spans
    fleet.advance(T0 + 600 * S)  # the steady state: pods started and removed at the same rate
    rate = (fleet.issued_spans - before) / 400
    asked = expected_spans_per_s(model, CATS)
    assert abs(rate - asked) <= 0.1 * asked, (rate, asked)


def resource_spans(keep: list[bytes]):  # noqa: ANN201 - (resource attributes, span) pairs
    req = ExportTraceServiceRequest.FromString(b"".join(keep))
    for rs in req.resource_spans:
        res = {kv.key: any_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                yield res, s


def test_a_mixed_fleet_gives_each_node_its_runtimes_traces_and_faults():
    model = FleetModel(nodes=40, pod_rate=4.0, lifetime=8, seed=21, runtimes=HALF,
                       faults={"crashloop": 0.1, "pull-backoff": 0.1, "slow-storage": 0.3})
    keep: list[bytes] = []
    fleet, log, _ = simulate(model, 60, keep)
    runtime = {n.name: n.runtime for n in fleet.nodes}
    assert 10 <= sum(r == "containerd" for r in runtime.values()) <= 30
    kinds = Counter((runtime[node], kind) for _, node, kind, pod in log if pod)
    assert kinds[("crio", "slow-storage")] > 20, "CRI-O nodes take their share of slow-storage"
    assert kinds[("containerd", "slow-storage")] == 0, "containerd has no such fault"
    assert kinds[("containerd", "crashloop")] and kinds[("containerd", "pull-backoff")]
    services: dict[str, set[str]] = {"crio": set(), "containerd": set()}
    shims: dict[str, set[str]] = {}  # node -> the shims' sandbox ids
    sandboxes: dict[str, set[str]] = {}  # node -> the sandbox ids containerd's spans name
    for res, span in resource_spans(keep):
        node, service = res["host.name"], res["service.name"]
        services[runtime[node]].add("containerd-shim-*" if service.startswith("containerd-shim-") else service)
        if service.startswith("containerd-shim-"):
            shims.setdefault(node, set()).add(service.removeprefix("containerd-shim-"))
        for kv in span.attributes:
            if kv.key == "sandbox.id" and service == "containerd":
                sandboxes.setdefault(node, set()).add(any_value(kv.value))
    assert services["crio"] == {"kubelet", "crio", "conmonrs"}
    assert services["containerd"] == {"kubelet", "containerd", "containerd-shim-*"}
    # One shim per pod, named after the pod's sandbox as containerd's own spans name it (a pod that arrived in the
    # last seconds may not have started its shim yet).
    assert all(ids <= sandboxes.get(node, set()) for node, ids in shims.items()), "a shim of no sandbox"
    pods = [(at, kind) for at, node, kind, pod in log if pod and runtime[node] == "containerd"
            and CATS["containerd"].kinds[kind].role == "episode"]
    assert len([p for p in pods if p[0] < 50 * S]) <= sum(map(len, shims.values())) <= len(pods)


def test_the_rate_asked_is_what_a_long_mixed_run_issues():
    model = FleetModel(nodes=30, pod_rate=1.0, lifetime=20, seed=12, runtimes=HALF,
                       faults={"crashloop": 0.1, "slow-storage": 0.1})
    fleet, _, _ = simulate(model, 200)
    before = fleet.issued_spans
    fleet.advance(T0 + 600 * S)
    rate = (fleet.issued_spans - before) / 400
    asked = expected_spans_per_s(model, CATS)
    assert abs(rate - asked) <= 0.1 * asked, (rate, asked)
