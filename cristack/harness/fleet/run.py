"""``cristack fleet``: the schedule of ``nodes`` run against the wall clock, its requests exported by ``export``,
a progress line every ``interval`` and a summary at the end (or at Ctrl-C/SIGTERM, which stops it within the
export's shutdown budget)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cristack.harness.fleet.catalogue import Catalogue, load
from cristack.harness.fleet.export import Batcher, ExportCounts, Exporter
from cristack.harness.fleet.nodes import FAULT_KINDS, Fleet, FleetModel

FLUSH_NS = 200_000_000  # a request at least this often (two of the components' export periods)


@dataclass
class FleetOptions:
    model: FleetModel
    otlp_endpoint: str
    duration: float | None = None  # None: until stopped
    interval: float = 5.0
    max_queue_spans: int | None = None


@dataclass
class FleetSummary:
    seconds: float
    nodes: dict[str, int]  # runtime -> nodes
    pods_started: int
    kinds: dict[str, int]
    issued: int
    asked_per_s: float
    counts: ExportCounts
    max_lag: float
    stopped_early: bool = False


def expected_spans_per_s(model: FleetModel, catalogues: dict[str, Catalogue]) -> float:
    """The spans per second the model asks for in its steady state: every node's periodic roots, the pods
    started, and the periodic roots of the pods running."""
    total_share = sum(model.runtimes.values())
    out = 0.0
    for runtime, share in model.runtimes.items():
        cat = catalogues[runtime]
        nodes = model.nodes * share / total_share
        out += nodes * sum(k.rate * len(k.spans) for k in cat.of_role("node"))
        pods = model.pod_rate * share / total_share
        rest = 1.0 - sum(model.faults.get(f, 0.0) for f in FAULT_KINDS if f in cat.kinds)
        for name, weight in [("pod", rest), *((f, model.faults.get(f, 0.0)) for f in FAULT_KINDS)]:
            kind = cat.kinds.get(name)
            if kind is None or not weight:
                continue
            running = max(model.lifetime, kind.start_s) - kind.start_s
            per_pod = len(kind.spans) + sum(p.rate * len(p.spans) * running for p in cat.periodic_of(name))
            out += pods * weight * per_pod
    return out


def faults_line(model: FleetModel, catalogues: dict[str, Catalogue], runtimes: Iterable[str]) -> str:
    """``crashloop 2%, slow-storage 2% (crio nodes only)``: a fault some of the fleet's runtimes lack (its catalogue
    has no such kind) says where it happens."""
    names, out = list(runtimes), []
    for kind, share in model.faults.items():
        if not share:
            continue
        has = [r for r in names if kind in catalogues[r].kinds]
        where = "" if len(has) == len(names) else f" ({', '.join(has) or 'no'} nodes only)"
        out.append(f"{kind} {share:.0%}{where}")
    return ", ".join(out) or "none"


def _num(n: float) -> str:
    return f"{n:,.0f}"


def _dropped(c: ExportCounts) -> str:
    if not c.lost:
        return "dropped 0"
    return f"dropped {_num(c.lost)} (" + ", ".join(f"{k} {_num(v)}" for k, v in sorted(c.dropped.items())) + ")"


class Progress:
    def __init__(self, fleet: Fleet, exporter: Exporter, asked: float, out: Callable[[str], None]) -> None:
        self.fleet, self.exporter, self.asked, self.out = fleet, exporter, asked, out
        self.last = (0.0, 0, 0, 0)  # elapsed, pods, issued, exported

    def __call__(self, elapsed: float, lag: float) -> None:
        c = self.exporter.snapshot()
        f = self.fleet
        t, p0, i0, e0 = self.last
        dt = max(elapsed - t, 1e-9)
        behind = f"; behind the schedule by {lag:.2f} s" if lag > 0.5 else ""
        self.out(f"{elapsed:6.1f}s  pods started {_num(f.pods_started)} ({(f.pods_started - p0) / dt:.1f}/s), "
                 f"running {_num(f.pods_running)}  spans issued {_num(f.issued_spans)} "
                 f"({(f.issued_spans - i0) / dt:,.0f}/s, asked {self.asked:,.0f}/s), exported {_num(c.exported)} "
                 f"({(c.exported - e0) / dt:,.0f}/s), queued {_num(c.queued)}, {_dropped(c)}{behind}")
        self.last = (elapsed, f.pods_started, f.issued_spans, c.exported)


def print_summary(s: FleetSummary, model: FleetModel, out: Callable[[str], None]) -> None:
    secs = max(s.seconds, 1e-9)
    how = " (stopped early)" if s.stopped_early else ""
    nodes = ", ".join(f"{r} {n}" for r, n in s.nodes.items())
    out(f"cristack fleet: {s.seconds:.1f} s{how}, {model.nodes} node{'s' if model.nodes != 1 else ''} ({nodes}); "
        f"pods asked {model.pod_rate:g}/s, started {_num(s.pods_started)} ({s.pods_started / secs:.1f}/s): "
        + ", ".join(f"{k} {v}" for k, v in sorted(s.kinds.items())))
    out(f"  spans asked {s.asked_per_s:,.0f}/s, issued {_num(s.issued)} ({s.issued / secs:,.0f}/s), exported "
        f"{_num(s.counts.exported)} ({s.counts.exported / secs:,.0f}/s) in {_num(s.counts.requests)} requests, "
        f"{_dropped(s.counts)}; most behind the schedule: {s.max_lag:.2f} s")


def run_fleet(opts: FleetOptions, out: Callable[[str], None] | None = None,
              catalogues: dict[str, Catalogue] | None = None) -> int:
    """Runs until ``duration`` or Ctrl-C/SIGTERM; prints progress and the summary. 0 unless nothing could be sent."""
    emit = out or (lambda line: print(line, flush=True))
    model = opts.model
    cats = catalogues or {r: load(r) for r in model.runtimes}
    exporter = Exporter(opts.otlp_endpoint, **({"max_queue_spans": opts.max_queue_spans}
                                                if opts.max_queue_spans else {}))
    batcher = Batcher(exporter.offer)
    wall0, mono0 = time.time_ns(), time.monotonic_ns()

    def now() -> int:
        return wall0 + time.monotonic_ns() - mono0

    fleet = Fleet(model, cats, wall0, batcher.add)
    asked = expected_spans_per_s(model, cats)
    runtimes: dict[str, int] = {}
    for node in fleet.nodes:
        runtimes[node.runtime] = runtimes.get(node.runtime, 0) + 1
    emit(f"cristack fleet: {model.nodes} nodes ({', '.join(f'{r} {n}' for r, n in runtimes.items())}) exporting to "
         f"{opts.otlp_endpoint}: {model.pod_rate:g} pods/s, each removed after {model.lifetime:g} s, faults "
         f"{faults_line(model, cats, runtimes)}; about {asked:,.0f} spans/s"
         f"{'' if opts.duration is None else f' for {opts.duration:g} s'}; seed {model.seed}; Ctrl-C stops")
    progress = Progress(fleet, exporter, asked, emit)
    end = None if opts.duration is None else wall0 + int(opts.duration * 1e9)
    interval = int(opts.interval * 1e9)
    next_flush, next_report = wall0 + FLUSH_NS, wall0 + interval
    lag = max_lag = 0.0
    early = False
    try:
        while True:
            t = now()
            if end is not None and t >= end:
                break
            fleet.advance(t if end is None else min(t, end))
            if t >= next_flush:
                batcher.flush()
                next_flush = t + FLUSH_NS
            lag = max(lag, (now() - t) / 1e9)
            if t >= next_report:
                progress((t - wall0) / 1e9, lag)
                max_lag, lag = max(max_lag, lag), 0.0
                next_report += interval
            wake = min(x for x in (fleet.next_due(), next_flush, next_report, end) if x is not None)
            pause = (wake - now()) / 1e9
            if pause > 0:
                time.sleep(min(pause, 0.05))
    except KeyboardInterrupt:
        early = True
    seconds = (min(now(), end) if end is not None else now()) - wall0
    batcher.flush()
    counts = exporter.shutdown()
    max_lag = max(max_lag, lag)
    summary = FleetSummary(seconds / 1e9, runtimes, fleet.pods_started, dict(fleet.kinds_started),
                           fleet.issued_spans, asked, counts, max_lag, early)
    print_summary(summary, model, emit)
    return 0 if counts.exported or not fleet.issued_spans else 1
