"""Issue 30's figures, side by side in one run, each load generator alone on CPU 0 and the same counting null OTLP
receiver (``bench/null_otlp.py --count``, a fresh one per run) on CPU 1:

- ``cristack fleet --nodes 1000``: spans per second delivered (counted by the receiver), what the fleet itself
  counted (exported, dropped), its peak RSS and CPU; the same with half the nodes on containerd (``--runtimes
  crio=0.5,containerd=0.5``); then more nodes on the same core, for the headroom; and 100 nodes, the Kubernetes
  overlay's size (its requests and limits come from this row);
- telemetrygen v0.161.0 (``./scripts/install-tools.sh telemetrygen``), one worker, unthrottled: spans per second
  delivered, and the ratio;
- one live node (three processes) on one core: its spans per CPU-second (``load_bench.trial``);
- the fleet's traces against a live node's, kind by kind, for each runtime (``cristack.harness.fleet.fidelity``).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.load_bench import NullSink, trial
from bench.report import Row, verdict
from bench.stats import cpu_seconds, rss_kb
from cristack.harness.load import pinned
from cristack.harness.procs import component_argv, find_tool

FLEET_CPU, RECEIVER_CPU = {0}, {1}
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    what: str
    seconds: float
    delivered: int  # spans the receiver counted
    window: float  # first to last request the receiver got
    rss_mib: float
    cpu: float  # cores used over the run
    summary: str = ""  # the generator's own last lines
    exported: int | None = None
    dropped: int | None = None
    reasons: str = ""  # the fleet's drops by reason, as it printed them
    asked: float | None = None  # the fleet's steady-state spans/s for its model, as it printed it
    lag: float | None = None  # the fleet's "most behind the schedule", seconds

    @property
    def per_s(self) -> float:
        return self.delivered / self.window if self.window > 0 else 0.0


def _measure(base: Path, what: str, argv: list[str], seconds: float) -> Run:
    """Runs ``argv`` on CPU 0 against a fresh counting receiver on CPU 1, sampling its RSS and CPU as it goes."""
    count = base / f"count-{time.monotonic_ns()}.json"
    sink = NullSink(cpus=RECEIVER_CPU, count=count)
    argv = [a.replace("{endpoint}", sink.endpoint) for a in argv]
    peak = cpu = 0.0
    started = time.monotonic()
    try:
        with pinned(FLEET_CPU):
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while proc.poll() is None and time.monotonic() - started < seconds + 60:
            try:
                peak = max(peak, rss_kb(proc.pid, peak=True) / 1024)
                cpu = cpu_seconds(proc.pid)
            except OSError:
                break
            time.sleep(0.25)
        out, _ = proc.communicate(timeout=60)
    finally:
        got = sink.stop() or {}
    wall = time.monotonic() - started
    run = Run(what, wall, int(got.get("spans", 0)), float(got.get("last", 0) - got.get("first", 0)), peak,
              cpu / max(wall, 1e-9), "\n".join(out.strip().splitlines()[-2:]))
    if m := re.search(r"exported ([\d,]+) .* requests, dropped ([\d,]+)( \([^)]*\))?", out):
        run.exported, run.dropped = (int(x.replace(",", "")) for x in m.groups()[:2])
        run.reasons = (m.group(3) or "").strip()
    if m := re.search(r"spans asked ([\d,]+)/s", out):
        run.asked = float(m.group(1).replace(",", ""))
    if m := re.search(r"most behind the schedule: ([\d.]+) s", out):
        run.lag = float(m.group(1))
    return run


def fleet(base: Path, nodes: int, seconds: float, extra: tuple[str, ...] = ()) -> Run:
    return _measure(base, f"cristack fleet --nodes {nodes}",
                    component_argv("cristack", "fleet", "--nodes", str(nodes), "--otlp-endpoint", "{endpoint}",
                                   "--duration", f"{seconds:g}", "--seed", "1", "--interval", "5", *extra), seconds)


def telemetrygen(base: Path, binary: str, seconds: float, workers: int = 1) -> Run:
    return _measure(base, f"telemetrygen traces --workers {workers}",
                    [binary, "traces", "--otlp-endpoint", "{endpoint}", "--otlp-insecure", "--rate", "0",
                     "--workers", str(workers), "--duration", f"{seconds:g}s"], seconds)


def _fleet_row(r: Run) -> str:
    return (f"{r.per_s:,.0f} spans/s delivered ({r.delivered:,} in {r.window:.1f} s); the fleet counted "
            f"{r.exported if r.exported is not None else '?':,} exported, {r.dropped if r.dropped is not None else '?'}"
            f" dropped{' ' + r.reasons if r.reasons else ''}; peak RSS {r.rss_mib:.0f} MiB; {r.cpu:.2f} of the core "
            "(start-up included)")


def _overlay_resources() -> str:
    """What deploy/kubernetes/overlays/fleet's pod requests and is limited to, as the manifest says."""
    doc = yaml.safe_load((REPO / "deploy/kubernetes/overlays/fleet/cristack-fleet.yaml").read_text())
    res = doc["spec"]["template"]["spec"]["containers"][0]["resources"]
    return (f"requests cpu {res['requests']['cpu']}, memory {res['requests']['memory']}; limits cpu "
            f"{res['limits']['cpu']}, memory {res['limits']['memory']}")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"


def report(bench, section: str) -> None:  # noqa: ANN001 - bench.run.Bench (run imports us)
    print(section, flush=True)
    load_before = _load()
    base = bench.base / "fleet"
    base.mkdir(parents=True, exist_ok=True)
    secs = bench.n(45, 15)
    # The defaults: 20 pods/s (one per node every 50 s), each removed after 30 s, so the pods' whole lives are in
    # the run.
    main = fleet(base, 1000, secs)
    ok = main.per_s >= 20_000 and main.rss_mib <= 300 and main.dropped == 0 and main.exported == main.delivered
    bench.report.add(section, Row("`cristack fleet --nodes 1000` (its defaults: 20 pods/s, each removed after 30 s, "
                                  "2% each of three faults) on one core (taskset CPU 0), receiver on CPU 1",
                                  _fleet_row(main), "≥ 20,000 spans/s, RSS ≤ 300 MiB, no drops", verdict(ok)))
    # A containerd node's traces have fewer spans than a CRI-O node's (no interceptor or function spans under each
    # CRI call: 2 spans a relist against 5), so half the nodes on containerd ask for fewer spans a second: the
    # point is that the fleet keeps to its schedule, every span delivered.
    mixed = fleet(base, 1000, secs, ("--runtimes", "crio=0.5,containerd=0.5"))
    ok = (mixed.lag is not None and mixed.lag < 1.0 and mixed.rss_mib <= 300 and mixed.dropped == 0
          and mixed.exported == mixed.delivered)
    bench.report.add(section, Row("the same with half the nodes on containerd: `cristack fleet --nodes 1000 --runtimes "
                                  "crio=0.5,containerd=0.5` (slow-storage on the CRI-O nodes only)",
                                  _fleet_row(mixed) + f"; asked {mixed.asked or 0:,.0f} spans/s in the steady state, "
                                  f"most behind the schedule {mixed.lag if mixed.lag is not None else '?'} s",
                                  "keeps to its schedule (< 1 s behind), RSS ≤ 300 MiB, no drops", verdict(ok)))
    more = fleet(base, 4000, secs)
    bench.report.add(section, Row("headroom: `cristack fleet --nodes 4000` (80 pods/s) on the same core",
                                  _fleet_row(more)))
    small = fleet(base, 100, secs)
    bench.report.add(section, Row("`cristack fleet --nodes 100` (the Kubernetes overlay's size, default pods)",
                                  _fleet_row(small), note=f"the overlay asks for {_overlay_resources()}"))
    binary = find_tool("telemetrygen")
    if binary is None:
        bench.report.add(section, Row("telemetrygen", "not measured: run `./scripts/install-tools.sh telemetrygen`"))
    else:
        tg = telemetrygen(base, binary, secs)
        bench.report.add(section, Row("telemetrygen v0.161.0 `traces --workers 1 --rate 0` on one core, same receiver",
                                      f"{tg.per_s:,.0f} spans/s delivered ({tg.delivered:,} in {tg.window:.1f} s); "
                                      f"peak RSS {tg.rss_mib:.0f} MiB; {tg.cpu:.2f} of the core"))
        ratio = main.per_s / tg.per_s if tg.per_s else float("inf")
        bench.report.add(section, Row("cristack fleet (1,000 nodes) / telemetrygen, spans/s delivered",
                                      f"{ratio:.1f}×", "≥ 2×", verdict(ratio >= 2)))
    sink = NullSink(cpus=RECEIVER_CPU)
    try:
        with pinned(RECEIVER_CPU):
            live = trial(base, sink, 1, 12.0, cpus=FLEET_CPU)
    finally:
        sink.stop()
    bench.report.add(section, Row("one live node (kubelet, crio, conmon) on one core, 12 pods/s asked: spans per "
                                  "CPU-second of its three processes", f"{live.spans_per_cpu_s:,.0f}",
                                  note=f"{live.spans_per_s:,.0f} spans/s using {live.node_cores:.2f} of the core; "
                                       f"the fleet gives {main.per_s / max(main.cpu, 1e-9):,.0f} per CPU-second"))
    from cristack.harness.fleet.catalogue import RUNTIMES, load
    from cristack.harness.fleet.fidelity import Comparison

    for runtime in RUNTIMES:
        comparison = Comparison(load(runtime))
        comparison.run_live()
        results = [comparison.result(k) for k in sorted(comparison.cat.kinds)]
        clean = [r for r in results if r.clean]
        bench.report.add(section, Row(
            f"the fleet's {runtime} traces against a live {runtime} node's (`cristack diff`), kind by kind",
            f"{len(clean)} of {len(results)} kinds: every fleet trace has a live twin "
            f"({sum(r.fleet_traces for r in results)} fleet traces against {sum(r.live_traces for r in results)} "
            "live)", "all kinds", verdict(len(clean) == len(results)),
            note="; ".join(f"{r.kind} {r.with_twin}/{r.fleet_traces}" for r in results)))
    bench.report.add(section, Row("the machine meanwhile", f"{load_before} at the start, {_load()} at the end",
                                  note="other work on the machine slows what waits for a CPU: a latency-bound "
                                       "generator (telemetrygen waits for each export) more than a rate-driven one"))
