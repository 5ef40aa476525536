"""``cristack load``: pods created and torn down at a steady rate across N nodes, for testing a tracing pipeline
under load.

Each pod is a static pod manifest (a unique name and uid) written atomically into one node's static pod directory,
the nodes taken round-robin, and removed again after its lifetime, so that every node's kubelet starts and stops
pods the way it does for any manifest (syncPod, syncTerminatingPod, their CRI-O and conmon-rs spans).

What the report counts:
- created: manifests written. started: pods whose containers all started (the kubelet's ``Started`` events);
  pending: created, not yet started, not yet removed: a node that cannot keep up shows as pods pending there.
- pod start: manifest written -> the last container's ``Started`` event (the kubelet's watch on its directory
  included), and from the kubelet picking the manifest up (its ``PodAdded`` event) -> ``Started``.
- spans exported / dropped: what the components' own exporters report (``ExportStats``): dropped counts the spans
  whose export failed (collector down or slower than the 1 s export timeout) and those the batch processor
  dropped on a full queue. Nothing waits for the collector: the pods keep coming at the rate whatever it does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cristack.harness import podevents
from cristack.harness.cluster import Cluster
from cristack.harness.nodeplan import CLUSTER_CIDR, NODE_CIDR_MASK, plan_nodes
from cristack.harness.procs import stop_children
from cristack.harness.stack import StackOptions
from cristack.otel.stats import ExportStats, total

LABEL = "cristack-load"
SETTLE_S = 5.0  # after the run: how long pods still pending get to start before everything stops


@dataclass
class LoadOptions:
    """What ``cristack load`` runs."""

    nodes: int
    rate: float  # pods per second, over all nodes
    duration: float  # seconds of creating pods
    otlp_endpoint: str
    lifetime: float = 10.0  # seconds from a pod's manifest written to it removed
    interval: float = 5.0  # seconds between progress lines
    runtimes: tuple[str, ...] = ("crio",)  # dealt across the nodes round-robin
    runtime_type: str = "pod"  # CRI-O's
    cluster_cidr: str = CLUSTER_CIDR
    node_cidr_mask: int = NODE_CIDR_MASK
    keep: bool = False
    cpus: set[int] | None = None  # run the nodes' processes on these CPUs only (the bench's one-core figure)
    stack: dict[str, object] = field(default_factory=dict)  # extra StackOptions fields


def manifest(name: str, uid: str) -> str:
    """A one-container pod that runs until it is stopped (restartPolicy Always, as most pods are)."""
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  uid: {uid}\n"
            f"  labels:\n    app: {LABEL}\nspec:\n  restartPolicy: Always\n  terminationGracePeriodSeconds: 5\n"
            "  containers:\n    - name: app\n      image: busybox\n      imagePullPolicy: IfNotPresent\n"
            "      command: [\"sleep\", \"infinity\"]\n")


@dataclass
class PodRecord:
    """One pod of the run, from its manifest written to its manifest removed."""

    name: str
    uid: str
    node: int
    path: Path
    written: float  # wall clock (the kubelet's events carry wall-clock times)
    containers: int = 1
    running: set[str] = field(default_factory=set)
    added: float | None = None  # when the kubelet picked the manifest up (its PodAdded event)
    started: float | None = None  # when the last container started
    removed: bool = False


@dataclass
class NodeSummary:
    name: str
    created: int
    started: int
    pending: int
    start_p50: float | None
    spans: ExportStats


@dataclass
class LoadSummary:
    """The figures of a run (``cristack load`` prints them; the bench and tests read them)."""

    seconds: float
    created: int
    started: int
    pending: int
    start_latencies: list[float]
    kubelet_latencies: list[float]  # PodAdded -> Started: the start without the kubelet's pickup
    spans: ExportStats
    nodes: list[NodeSummary]
    stopped_early: bool = False
    failure: str = ""

    @property
    def start_p50(self) -> float | None:
        return statistics.median(self.start_latencies) if self.start_latencies else None


class Tracker:
    """The pods of a run and what the kubelets' events say about them (fed from one thread per node)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pods: dict[str, PodRecord] = {}

    def add(self, pod: PodRecord) -> None:
        with self.lock:
            self.pods[pod.uid] = pod

    def on_event(self, ev: podevents.PodEvent) -> None:
        if ev.reason == "PodAdded":
            with self.lock:
                if (pod := self.pods.get(ev.uid)) is not None:
                    pod.added = ev.at
            return
        if ev.reason != "Started" or not ev.container:
            return
        with self.lock:
            pod = self.pods.get(ev.uid)
            if pod is None or pod.started is not None:
                return  # not ours, or a restart of a container that started before
            pod.running.add(ev.container)
            if len(pod.running) >= pod.containers:
                pod.started = ev.at if ev.at is not None else time.time()

    def snapshot(self) -> list[PodRecord]:
        with self.lock:
            return list(self.pods.values())


def pending(pods: list[PodRecord]) -> list[PodRecord]:
    return [p for p in pods if p.started is None and not p.removed]


@contextlib.contextmanager
def pinned(cpus: set[int] | None) -> Iterator[None]:
    """Processes started inside run on ``cpus`` (a child inherits the CPU mask of the thread that forks it)."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class Load:
    """A run: ``start`` the cluster, ``step`` until the end, ``finish``; ``stop`` in every case."""

    def __init__(self, opts: LoadOptions, base: Path) -> None:
        self.opts = opts
        stack_opts = StackOptions(runtime=opts.runtimes[0], runtime_type=opts.runtime_type,
                                  otlp_endpoint=opts.otlp_endpoint, pod_events=True, telemetry_stats=True)
        for key, value in opts.stack.items():
            setattr(stack_opts, key, value)
        self.cluster = Cluster(base, plan_nodes(opts.nodes, opts.cluster_cidr, opts.node_cidr_mask), stack_opts,
                               opts.runtimes)
        self.tracker = Tracker()
        self.created = 0
        self.t0 = 0.0
        self.ended: float | None = None
        self._stop_events = threading.Event()
        self._followers: list[threading.Thread] = []
        self._live: list[PodRecord] = []  # manifests still in place, oldest first
        self._stopped = False

    def start(self) -> None:
        """Starts every node and follows its pod events; raises (with the component's log) if one fails."""
        with pinned(self.opts.cpus):
            self.cluster.start()
        for _, stack in self.cluster:
            t = threading.Thread(target=podevents.follow, name="pod-events", daemon=True,
                                 args=(stack.events_file, self.tracker.on_event, self._stop_events))
            t.start()
            self._followers.append(t)
        self.t0 = time.monotonic()

    def create(self) -> PodRecord:
        """Writes the next pod's manifest into the next node's static pod dir (atomically: a hidden temp file,
        which the kubelet skips, renamed into place)."""
        index = self.created % len(self.cluster.stacks)
        stack = self.cluster.stacks[index]
        self.created += 1
        name, uid = f"load-{self.created:06d}", str(uuid.uuid4())
        path = stack.manifests / f"{name}.yaml"
        tmp = stack.manifests / f".{name}.yaml.tmp"
        tmp.write_text(manifest(name, uid))
        pod = PodRecord(name, uid, index, path, written=time.time())
        self.tracker.add(pod)
        os.replace(tmp, path)
        self._live.append(pod)
        return pod

    def remove_expired(self, now_wall: float) -> None:
        while self._live and self._live[0].written + self.opts.lifetime <= now_wall:
            pod = self._live.pop(0)
            with contextlib.suppress(FileNotFoundError):
                pod.path.unlink()
            pod.removed = True

    def run(self, tick: Callable[[float], None] | None = None, deadline: float | None = None) -> bool:
        """Creates pods at the rate until ``duration`` (or ``deadline``, monotonic) and removes them after their
        lifetime; calls ``tick(elapsed)`` every ``interval``. False when a component died."""
        opts = self.opts
        end = deadline if deadline is not None else self.t0 + opts.duration
        next_report = self.t0 + opts.interval
        next_alive = self.t0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            # The k-th pod is due at t0 + k/R: a late wake-up catches up, so the average rate holds.
            while self.created < (now - self.t0) * opts.rate + 1e-9 and now < end:
                self.create()
            self.remove_expired(time.time())
            if now >= next_alive:
                if not self.cluster.alive():
                    self.ended = now
                    return False
                next_alive = now + 0.5
            if now >= next_report and tick is not None:
                tick(now - self.t0)
                next_report += opts.interval
            due = self.t0 + self.created / opts.rate
            time.sleep(max(0.0, min(due, next_report, next_alive, end) - time.monotonic()) + 0.001)
        self.ended = time.monotonic()
        return True

    def settle(self, budget: float = SETTLE_S) -> None:
        """Gives pods still pending up to ``budget`` seconds to start (their lifetimes keep running)."""
        deadline = time.monotonic() + budget
        while pending(self.tracker.snapshot()) and time.monotonic() < deadline and self.cluster.alive():
            self.remove_expired(time.time())
            time.sleep(0.1)

    def stats(self) -> list[tuple[str, ExportStats]]:
        """Each node's span counts (its three components summed), as they last wrote them."""
        return [(plan.name, total(list(stack.export_stats().values()))) for plan, stack in self.cluster]

    def stop(self) -> None:
        """Stops every node (their exporters flush and write their final counts) and the event followers."""
        if self._stopped:
            return
        self._stopped = True
        self.cluster.stop()
        self._stop_events.set()
        for t in self._followers:
            t.join(2)

    def summary(self, failure: str = "", stopped_early: bool = False) -> LoadSummary:
        pods = self.tracker.snapshot()
        seconds = (self.ended or time.monotonic()) - self.t0
        per_node = []
        for index, (name, spans) in enumerate(self.stats()):
            mine = [p for p in pods if p.node == index]
            lat = [p.started - p.written for p in mine if p.started is not None]
            per_node.append(NodeSummary(name, len(mine), sum(p.started is not None for p in mine),
                                        len(pending(mine)), statistics.median(lat) if lat else None, spans))
        return LoadSummary(seconds=seconds, created=len(pods), started=sum(p.started is not None for p in pods),
                           pending=len(pending(pods)),
                           start_latencies=sorted(p.started - p.written for p in pods if p.started is not None),
                           kubelet_latencies=sorted(p.started - p.added for p in pods
                                                    if p.started is not None and p.added is not None),
                           spans=total([n.spans for n in per_node]), nodes=per_node, stopped_early=stopped_early,
                           failure=failure)


# -- the command


def _num(n: int) -> str:
    return f"{n:,}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _dropped(s: ExportStats) -> str:
    return f"dropped {_num(s.lost)} (export failed {_num(s.dropped)}, queue full {_num(s.queue_full)})"


class Progress:
    """The periodic line: totals since the start, and rates over the last interval."""

    def __init__(self, load: Load, out: Callable[[str], None]) -> None:
        self.load = load
        self.out = out
        self.last = (0.0, 0, 0)  # elapsed, started, exported

    def __call__(self, elapsed: float) -> None:
        pods = self.load.tracker.snapshot()
        started = sum(p.started is not None for p in pods)
        spans = total([s for _, s in self.load.stats()])
        t, s0, e0 = self.last
        dt = max(elapsed - t, 1e-9)
        waiting = pending(pods)
        slow = ""
        if waiting:
            by_node: dict[int, int] = {}
            for p in waiting:
                by_node[p.node] = by_node.get(p.node, 0) + 1
            worst = sorted(by_node.items(), key=lambda kv: -kv[1])[:3]
            names = [plan.name for plan in self.load.cluster.plans]
            slow = " (" + ", ".join(f"{names[i]} {n}" for i, n in worst) + (", ..." if len(by_node) > 3 else "") + ")"
        self.out(f"{elapsed:6.1f}s  pods created {_num(self.load.created)}, started {_num(started)} "
                 f"({(started - s0) / dt:.1f}/s), pending {len(waiting)}{slow}  spans exported "
                 f"{_num(spans.exported)} ({(spans.exported - e0) / dt:,.0f}/s), {_dropped(spans)}")
        self.last = (elapsed, started, spans.exported)


def print_summary(s: LoadSummary, opts: LoadOptions, out: Callable[[str], None]) -> None:
    lat = s.start_latencies
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None
    how = " (stopped early)" if s.stopped_early else ""
    out(f"cristack load: {s.seconds:.1f} s{how}, {opts.nodes} node{'s' if opts.nodes != 1 else ''} at "
        f"{opts.rate:g} pods/s asked: pods created {_num(s.created)} ({s.created / max(s.seconds, 1e-9):.1f}/s), "
        f"started {_num(s.started)} ({s.started / max(s.seconds, 1e-9):.1f}/s), pending at the end {s.pending}")
    kub = statistics.median(s.kubelet_latencies) if s.kubelet_latencies else None
    out(f"  pod start (manifest written -> containers started): p50 {_secs(s.start_p50)}, p99 {_secs(p99)}; "
        f"from the kubelet picking it up: p50 {_secs(kub)}")
    out(f"  spans exported {_num(s.spans.exported)} ({s.spans.exported / max(s.seconds, 1e-9):,.0f}/s), "
        f"{_dropped(s.spans)}")
    for n in s.nodes:
        out(f"  {n.name}: created {n.created}, started {n.started}, pending {n.pending}, start p50 "
            f"{_secs(n.start_p50)}, spans exported {_num(n.spans.exported)}, {_dropped(n.spans)}")


def run_load(opts: LoadOptions, out: Callable[[str], None] | None = None) -> int:
    """``cristack load``: 0 when the run went its length (or was stopped by Ctrl-C/SIGTERM), 1 when a component
    died or a node could not start. Everything it started is stopped and its temp dir removed (``keep``: kept)."""
    emit = out or (lambda line: print(line, flush=True))
    base = Path(tempfile.mkdtemp(prefix="cristack-load-"))
    load: Load | None = None
    code, failure, early = 0, "", False
    try:
        load = Load(opts, base)
        emit(f"cristack load: starting {opts.nodes} node(s) exporting to {opts.otlp_endpoint}; "
             f"{opts.rate:g} pods/s for {opts.duration:g} s, each removed after {opts.lifetime:g} s")
        try:
            load.start()
        except Exception as err:  # noqa: BLE001 - a node that cannot start is reported, not a traceback
            print(f"cristack load: a node did not start: {err}", file=sys.stderr)
            return 1
        emit(f"  nodes: {', '.join(f'{p.name} ({p.pod_cidr}, {s.opts.runtime})' for p, s in load.cluster)}; "
             f"logs under {base} "
             f"({'kept' if opts.keep else 'removed'} on exit); Ctrl-C stops early")
        try:
            if not load.run(Progress(load, emit)):
                code, failure = 1, "a component exited"
                print("cristack load: a component exited; stopping", file=sys.stderr)
            else:
                load.settle()
        except KeyboardInterrupt:
            early = True
            load.ended = load.ended or time.monotonic()
        load.stop()  # before the summary: the exporters' final counts are written at exit
        print_summary(load.summary(failure, early), opts, emit)
        return code
    finally:
        if load is not None:
            with contextlib.suppress(Exception):
                load.stop()
        stop_children()
        if opts.keep:
            print(f"cristack load: kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
