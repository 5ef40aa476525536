"""The fleet's traces beside live ones: for each kind of a runtime's catalogue, the traces the fleet issues for a pod
(or a node) of that runtime and those the runtime's real components make for the same work run now, compared with
``cristack diff`` (``snapshots.diff``). Used by the fidelity test and by the bench.

The fleet side is the real schedule on a simulated clock (so it takes no time); its seed decides, for each pod kind,
a pod that has its node to itself for its whole life. The live side runs those same pods (name, namespace, spec)
through the same episodes on live nodes (``capture.record``), beside an idle live node for the node kinds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from cristack.harness.fleet.capture import Recording, record
from cristack.harness.fleet.catalogue import Catalogue, load
from cristack.harness.fleet.episodes import EPISODES, NODE_ROOTS
from cristack.harness.fleet.live import RawSpan
from cristack.harness.fleet.nodes import Fleet, FleetModel
from cristack.harness.sink.store import Event, Span, flatten
from cristack.harness.snapshots import diff, normalise
from cristack.otel.tracediff import any_value

S = 1_000_000_000
T0 = 1_700_000_000 * S
MODEL = FleetModel(nodes=80, pod_rate=2.0, lifetime=6, seed=7,
                   faults={"crashloop": 0.15, "pull-backoff": 0.15, "slow-storage": 0.15})
# The live side needs no long running window: a running pod's own roots have the shapes its start phase has too.
SHORT = {k: replace(e, running_s=min(e.running_s, 2.0)) for k, e in EPISODES.items()}
NODE_SAMPLE = 3  # fleet traces compared per node kind
HORIZON_S = 200  # the fleet side's simulated seconds: the pods compared are those whose whole life fits


def span_of(r: RawSpan) -> Span:
    s = r.span
    return Span(s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.name,
                {1: "INTERNAL", 2: "SERVER", 3: "CLIENT"}.get(s.kind, str(s.kind)), s.start_time_unix_nano,
                s.end_time_unix_nano, str(r.resource.get("service.name")), r.scope[0],
                {kv.key: any_value(kv.value) for kv in s.attributes},
                [Event(e.name, e.time_unix_nano, {kv.key: any_value(kv.value) for kv in e.attributes})
                 for e in s.events],
                {0: "UNSET", 1: "OK", 2: "ERROR"}.get(s.status.code, "UNSET"), s.status.message, dict(r.resource))


def traces_of(spans: list[Span]) -> list[list[Span]]:
    by: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        by[s.trace_id].append(s)
    return list(by.values())


def root_of(trace: list[Span]) -> Span:
    ids = {s.span_id for s in trace}
    return min((s for s in trace if s.parent_span_id not in ids), key=lambda s: s.start)


@dataclass
class KindResult:
    kind: str
    fleet_traces: int
    live_traces: int
    with_twin: int
    closest: list[str]  # the diff of a fleet trace without a twin against its closest live trace

    @property
    def clean(self) -> bool:
        return self.fleet_traces > 0 and self.with_twin == self.fleet_traces


class Comparison:
    """The fleet side at once, the live side on ``run_live``; ``result(kind)`` compares one kind."""

    def __init__(self, catalogue: Catalogue | None = None, model: FleetModel = MODEL) -> None:
        self.cat = catalogue or load("crio")
        self.model = model = replace(model, runtimes={self.cat.runtime: 1.0})  # every node of the catalogue's
        log: list = []
        sent: list[bytes] = []
        fleet = Fleet(model, {self.cat.runtime: self.cat}, T0, lambda data, _n: sent.append(data), log)
        fleet.advance(T0 + HORIZON_S * S)
        self.fleet_spans = flatten(ExportTraceServiceRequest.FromString(b"".join(sent)))
        self.chosen = self._lone_pods(log)
        missing = {k.name for k in self.cat.of_role("episode")} - set(self.chosen)
        if missing:
            raise ValueError(f"seed {model.seed} gives no lone pod of {', '.join(sorted(missing))}")
        self.recs: list[Recording] = []  # live samples of the same work (run_live adds one)

    def _span_s(self, kind: str) -> float:
        k = self.cat.kinds[kind]
        return max(self.model.lifetime, k.start_s) + EPISODES[kind].stop_s + 2

    def _lone_pods(self, log: list) -> dict[str, tuple[str, str, int]]:
        """The first pod of each episode kind alone on its node for its whole life, which ends within the horizon
        (a span of its that ends later, a task.Wait say, was not issued): kind -> (node, name, t0)."""
        pods = [(t, node, kind, name) for t, node, kind, name in log if self.cat.kinds[kind].role == "episode"]
        out: dict[str, tuple[str, str, int]] = {}
        for t, node, kind, name in pods:
            alone = all(n != node or x == name or x_t > t + self._span_s(kind) * S or x_t + self._span_s(k) * S < t
                        for x_t, n, k, x in pods)
            if kind not in out and alone and t + self._span_s(kind) * S <= HORIZON_S * S:
                out[kind] = (node, name, t)
        return out

    def run_live(self, say: Callable[[str], None] = lambda _: None) -> None:
        """Runs the same work on live nodes once more and keeps it beside the earlier samples: which of a pod's
        periodic syncs land inside its life depends on the machine's timing, so one sample may lack a shape
        that the live stack makes for that work."""
        self.recs.append(record(self.cat.runtime, SHORT, idle_window_s=12.0,
                          pod_names={k: name for k, (_, name, _) in self.chosen.items()}, say=say))

    def _root_name(self, kind: str) -> str:
        return next(s.name for s in self.cat.kinds[kind].spans if s.parent is None)

    def fleet_traces(self, kind: str) -> list[list[Span]]:
        k = self.cat.kinds[kind]
        if k.role == "node":  # from any node: a rare root (image GC every 5 minutes) is on some node by now
            return [t for t in traces_of(self.fleet_spans) if root_of(t).name == self._root_name(kind)][:NODE_SAMPLE]
        episode = k.of or kind
        node, _, t0 = self.chosen[episode]
        until = T0 + t0 + int((self._span_s(episode) - 1) * S)
        mine = [t for t in traces_of([s for s in self.fleet_spans if s.resource.get("host.name") == node])
                if root_of(t).name not in NODE_ROOTS and T0 + t0 <= root_of(t).start <= until]
        return mine if kind == episode else [t for t in mine if root_of(t).name == self._root_name(kind)]

    def live_traces(self, kind: str) -> list[list[Span]]:
        assert self.recs, "run_live first"
        k = self.cat.kinds[kind]
        out: list[list[Span]] = []
        for rec in self.recs:
            if k.role == "node":
                out += traces_of([span_of(r) for r in rec.raw[rec.nodes[0].name]])
                continue
            node, run = rec.runs[k.of or kind]
            out += [t for t in traces_of([span_of(r) for r in rec.raw[node.name]])
                    if root_of(t).name not in NODE_ROOTS and run.t0 <= root_of(t).start <= run.end]
        return out

    def result(self, kind: str) -> KindResult:
        ours = self.fleet_traces(kind)
        live = [normalise(t) for t in self.live_traces(kind)]
        twins, closest = 0, []
        for trace in ours:
            snap = normalise(trace)
            diffs = [diff(other, snap, "live", "fleet") for other in live]
            best = min(diffs, key=len) if diffs else ["(no live trace)"]
            if not best:
                twins += 1
            elif not closest:
                closest = [f"fleet trace {root_of(trace).name}:", *best]
        return KindResult(kind, len(ours), len(live), twins, closest)
