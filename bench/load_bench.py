"""Issue 21's figures, measured with ``cristack load``'s own machinery (cristack/harness/load.py):

(a) the spans per second one node produces on one core, tracing at 1,000,000 per million: the node's three
    processes pinned to CPU 0 (the harness and the sink to CPU 1), the pod rate raised until the spans per
    second stop rising; spans counted by the components' exporters (exported + lost).
(b) the single-node p50 pod start (manifest written -> the container's Started event) at a light rate, then for
    N = 1, 2, 4, 8 nodes the highest rate R whose p50 pod start stays within 2x that figure with at least 95% of
    the pods started: the ceiling of this 2-core machine, and which process's CPU limits it.

Spans go to ``null_otlp`` (a receiver that decodes nothing) in a process of its own, so the sink costs little.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.report import Row
from bench.stats import cpu_seconds
from cristack.harness.load import Load, LoadOptions, pinned
from cristack.otel.stats import read_stats
from cristack.wire.endpoints import free_ports, parse_endpoint, serving

WARMUP_S = 3.0
MEASURE_S = 7.0
LIFETIME_S = 4.0
ONE_CORE_RATES = (4, 8, 12, 16, 24, 32)
NODE_COUNTS = (1, 2, 4, 8)
LADDER = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0)  # pods/s tried in (b)
MAX_TRIALS_B = 20


@dataclass
class Trial:
    nodes: int
    rate: float
    spans_per_s: float  # produced: exported + lost, summed over every component of every node
    lost: int
    pods_per_s: float  # pods started per second in the window
    p50: float  # PodAdded -> started, over the window's pods; inf when fewer than half started
    p50_written: float  # manifest written -> started (adds the kubelet's pickup through its directory watch)
    started_frac: float
    cpu: dict[str, float]  # process kind -> cores used (CPU seconds per wall second), summed over nodes

    @property
    def node_cores(self) -> float:
        """CPU the nodes' processes used (cores), whatever else the machine ran."""
        return sum(v for k, v in self.cpu.items() if k in ("kubelet", "crio", "conmon"))

    @property
    def spans_per_cpu_s(self) -> float:
        """Spans per CPU-second of the nodes' processes: what one core gives them, on a machine shared or not."""
        return self.spans_per_s / self.node_cores if self.node_cores else math.nan

    def line(self) -> str:
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in sorted(self.cpu.items(), key=lambda kv: -kv[1]))
        return (f"N={self.nodes} R={self.rate:g}/s: {self.spans_per_s:,.0f} spans/s, {self.pods_per_s:.1f} pods/s "
                f"started, p50 start {self.p50_written:.2f} s ({self.p50:.2f} s from PodAdded), "
                f"{self.started_frac:.0%} started; cores: {cpu}")


class NullSink:
    """bench/null_otlp.py in a process of its own."""

    def __init__(self, cpus: set[int] | None = None, count: Path | None = None) -> None:
        port = free_ports(1)[0]
        self.endpoint = f"127.0.0.1:{port}"
        self.count = count
        with pinned(cpus):
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.null_otlp", self.endpoint,
                                          *(["--count", str(count)] if count else [])],
                                         cwd=Path(__file__).resolve().parent.parent)
        deadline = time.monotonic() + 15
        while not serving(parse_endpoint(self.endpoint)):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("bench: the null OTLP sink did not start")
            time.sleep(0.05)

    def stop(self) -> dict[str, float] | None:
        """Stops it; with ``count``: what it received (spans, requests, first and last, epoch seconds)."""
        self.proc.terminate()
        self.proc.wait(10)
        return json.loads(self.count.read_text()) if self.count and self.count.exists() else None


def _spans(load: Load) -> dict[str, tuple[int, int, float]]:
    """(spans produced, spans lost, when the counts were written) per component of every node."""
    out = {}
    for plan, stack in load.cluster:
        for name, _ in stack.procs():
            path = stack.stats_file(name)
            stats = read_stats(path)
            if stats is not None:
                out[f"{plan.name}/{name}"] = (stats.exported + stats.lost, stats.lost, path.stat().st_mtime)
    return out


def _cpu(load: Load, sink: NullSink) -> dict[str, float]:
    got: dict[str, float] = {"sink": cpu_seconds(sink.proc.pid)}
    for _, stack in load.cluster:
        for name, proc in stack.procs():
            try:
                got[name] = got.get(name, 0.0) + cpu_seconds(proc.pid)
            except OSError:
                pass
    got["harness"] = time.process_time()
    return got


def trial(base: Path, sink: NullSink, nodes: int, rate: float, cpus: set[int] | None = None) -> Trial:
    """One run of ``cristack load``: WARMUP_S seconds, then MEASURE_S measured, then pods pending get SETTLE_S."""
    opts = LoadOptions(nodes=nodes, rate=rate, duration=WARMUP_S + MEASURE_S, otlp_endpoint=sink.endpoint,
                       lifetime=LIFETIME_S, interval=1e9, cpus=cpus)
    d = base / f"load-{nodes}-{rate:g}-{time.monotonic_ns()}"
    load = Load(opts, d)
    try:
        load.start()
        load.run(deadline=load.t0 + WARMUP_S)
        s0, c0, w0, n0 = _spans(load), _cpu(load, sink), time.monotonic(), load.created
        load.run()
        s1, c1, w1 = _spans(load), _cpu(load, sink), time.monotonic()
        load.settle()
        pods = load.tracker.snapshot()[n0:]
    finally:
        load.stop()
        shutil.rmtree(d, ignore_errors=True)
    # Each component's rate over the time between its own two writes (they are about a second apart, so the
    # window's edges would otherwise be off by up to a second).
    per_s = sum((s1[k][0] - a) / (s1[k][2] - ta) for k, (a, _, ta) in s0.items() if k in s1 and s1[k][2] > ta)
    lost = sum(s1[k][1] - s0[k][1] for k in s0 if k in s1)
    lat = sorted(p.started - p.added if p.started is not None and p.added is not None else math.inf for p in pods)
    written = sorted(p.started - p.written if p.started is not None else math.inf for p in pods)
    window = w1 - w0
    started = [p for p in pods if p.started is not None]
    return Trial(nodes, rate, per_s, lost, len(started) / window, lat[len(lat) // 2] if lat else math.inf,
                 written[len(written) // 2] if written else math.inf,
                 len(started) / len(pods) if pods else 0.0, {k: (c1[k] - c0.get(k, 0.0)) / window for k in c1})


def one_core(base: Path, log: list[str]) -> tuple[Trial, list[Trial]]:
    """(a): raise R until the spans per second of one node pinned to CPU 0 stop rising (< 5% more)."""
    trials: list[Trial] = []
    sink = NullSink(cpus={1})
    try:
        with pinned({1}):
            for rate in ONE_CORE_RATES:
                t = trial(base, sink, 1, rate, cpus={0})
                print("  " + t.line(), flush=True)
                log.append(t.line())
                rising = not trials or t.spans_per_s > 1.05 * max(x.spans_per_s for x in trials)
                trials.append(t)
                if not rising:
                    break
    finally:
        sink.stop()
    return max(trials, key=lambda x: x.spans_per_s), trials


def ceiling(base: Path, log: list[str]) -> tuple[Trial, dict[int, Trial | None], list[Trial]]:
    """(b): the single-node baseline, then per N the highest R with p50 <= 2x baseline and >= 95% started."""
    sink = NullSink()
    best: dict[int, Trial | None] = {}
    trials: list[Trial] = []
    try:
        base_trial = trial(base, sink, 1, 1.0)
        print("  baseline " + base_trial.line(), flush=True)
        log.append("baseline " + base_trial.line())
        limit = 2 * base_trial.p50_written
        step = LADDER.index(4.0)
        for n in NODE_COUNTS:
            passed: Trial | None = None
            failed_at = len(LADDER)
            while len(trials) < MAX_TRIALS_B:
                t = trial(base, sink, n, LADDER[step])
                ok = t.p50_written <= limit and t.started_frac >= 0.95
                print(f"  {'pass' if ok else 'FAIL'} {t.line()}", flush=True)
                log.append(f"{'pass' if ok else 'FAIL'} {t.line()}")
                trials.append(t)
                if ok:
                    passed = t
                    if step + 1 >= failed_at:
                        break
                    step += 1
                else:
                    failed_at = step
                    if passed is not None or step == 0:
                        break
                    step -= 1
            best[n] = passed
            if passed is None:
                break
            step = LADDER.index(passed.rate)  # more nodes cost more: start the next N where this one topped out
        return base_trial, best, trials
    finally:
        sink.stop()


def machine_load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores when it started"


def _cores(t: Trial) -> str:
    nodes = {k: v for k, v in t.cpu.items() if k in ("kubelet", "crio", "conmon")}
    busiest = max(nodes, key=nodes.get) if nodes else "?"
    others = ", ".join(f"{k} {v:.2f}" for k, v in sorted(t.cpu.items(), key=lambda kv: -kv[1]))
    return f"busiest: {busiest} ({nodes.get(busiest, 0):.2f} cores over {t.nodes} node(s)); all: {others}"


def report(bench, section: str) -> None:  # noqa: ANN001 - bench.run.Bench (run imports us)
    """Runs (a) and (b) and adds their rows to the bench's report."""
    print(section, flush=True)
    base = bench.base / "load"
    base.mkdir(parents=True, exist_ok=True)
    note = machine_load()
    log: list[str] = []
    best, steps = one_core(base, log)
    bench.report.add(section, Row(
        "(a) one node on one core, tracing at 1000000 per million: spans/s produced (max over R)",
        f"{best.spans_per_s:,.0f} spans/s at R = {best.rate:g} pods/s asked ({best.pods_per_s:.1f} started/s, "
        f"{best.spans_per_s / max(best.pods_per_s, 1e-9):.0f} spans per pod incl. teardown and relists), using "
        f"{best.node_cores:.2f} of the core",
        note=f"R tried: {', '.join(f'{t.rate:g} → {t.spans_per_s:,.0f}/s' for t in steps)}; lost {best.lost}; "
             f"{_cores(best)}"))
    per_cpu = [t.spans_per_cpu_s for t in steps if t.node_cores > 0]
    bench.report.add(section, Row(
        "(a) spans per CPU-second of the node's three processes (= spans/s of one core of their own)",
        f"{max(per_cpu):,.0f} spans/s (best R; {', '.join(f'{x:,.0f}' for x in per_cpu)} over the R tried)"
        if per_cpu else "n/a"))
    base_trial, per_n, trials = ceiling(base, log)
    limit = 2 * base_trial.p50_written
    bench.report.add(section, Row("(b) single-node p50 pod start (manifest written → container Started), "
                                  "R = 1 pod/s", f"{base_trial.p50_written:.2f} s",
                                  note=f"{base_trial.p50:.2f} s of it from the kubelet's PodAdded (the kubelet "
                                       "sees the manifest through its inotify watch on the directory)"))
    for n, t in per_n.items():
        value = (f"R = {t.rate:g} pods/s: p50 {t.p50_written:.2f} s ({t.p50:.2f} s from PodAdded), "
                 f"{t.pods_per_s:.1f} started/s, "
                 f"{t.spans_per_s:,.0f} spans/s" if t else "none down to 0.5 pods/s")
        bench.report.add(section, Row(f"(b) N = {n}: highest R with p50 ≤ {limit:.2f} s and ≥ 95% started", value,
                                      note=_cores(t) if t else ""))
    top = [(n, t) for n, t in per_n.items() if t is not None]
    if top:
        n, t = max(top, key=lambda nt: (nt[0], nt[1].rate))
        failed = [x for x in trials if x.nodes == n and x.rate > t.rate]
        bound = (f"the next step up (R = {failed[0].rate:g}) missed: {_cores(failed[0])}" if failed else
                 f"not bounded: the trial budget ({MAX_TRIALS_B}) ran out before a step failed; {_cores(t)}")
        bench.report.add(section, Row("(b) ceiling on this machine (largest N tried that holds, with its R)",
                                      f"N = {n}, R = {t.rate:g} pods/s ({t.spans_per_s:,.0f} spans/s)",
                                      note=f"{bound}; {note}"))
    peak = max(trials, key=lambda x: x.node_cores, default=None)
    if peak is not None:
        one, five, _ = os.getloadavg()
        bench.report.add(section, Row(
            "(b) what limits it", f"the nodes' processes used at most {peak.node_cores:.2f} of "
            f"{os.cpu_count()} cores (N = {peak.nodes}, R = {peak.rate:g}); load average {one:.1f} / {five:.1f} "
            "at the end",
            note="where the nodes use well under the machine's cores while pod starts slow down, the limit is the "
                 "CPU other work on the machine takes, not a cristack process; otherwise the busiest process "
                 "named above"))
    print("\n".join(log), file=sys.stderr)
