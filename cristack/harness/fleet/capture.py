"""Captures the trace-kind catalogue of a runtime from live runs of its real components.

    python -m cristack.harness.fleet.capture [--runtime crio|containerd] [--out FILE]

Starts one live node of the runtime per part of the catalogue side by side (an idle node; one running the
long-running pod twice, so that the second finds its image; one per fault the runtime has), runs ``episodes`` on
them, and turns what they
exported into span templates (``catalogue``): ids become indexes, the node's and the pod's names, ids, pids and
paths become markers, times become offsets from the episode's anchors. About five and a half minutes (the
idle node's window holds one run of the image garbage collector, every five minutes).
"""

from __future__ import annotations

import argparse
import pickle
import re
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cristack.harness.fleet.catalogue import (
    RUNTIMES,
    Catalogue,
    EventTemplate,
    Kind,
    SpanTemplate,
    catalogue_path,
    marker,
)
from cristack.harness.fleet.episodes import CAPTURE_POD, IDLE, NODE_ROOTS, POD_ROOTS, Episode, episodes_on
from cristack.harness.fleet.live import LIVE_RUNTIMES, EpisodeRun, LiveNode, NodeInfo, RawSpan, receiver
from cristack.otel.tracediff import any_value

_HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_PID = re.compile(r"PID:? (\d+)|/proc/(\d+)/")


class Marks:
    """Concrete value -> marker, applied to every string of a span (longest value first)."""

    def __init__(self, table: dict[str, str], pids: dict[str, str] | None = None) -> None:
        self.table = sorted(((k, v) for k, v in table.items() if k), key=lambda kv: -len(kv[0]))
        self.pids = pids or {}
        self._pid_re = re.compile(r"(?<!\d)(" + "|".join(map(re.escape, self.pids)) + r")(?!\d)") if self.pids \
            else None

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for concrete, mark in self.table:
                if concrete in value:
                    value = value.replace(concrete, mark)
            if self._pid_re is not None:
                value = self._pid_re.sub(lambda m: self.pids[m.group(1)], value)
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        return value


def _traces(spans: list[RawSpan]) -> list[list[RawSpan]]:
    """Spans grouped by trace, each trace's spans by start time, traces by their root's start."""
    by_trace: dict[bytes, list[RawSpan]] = defaultdict(list)
    for r in spans:
        by_trace[r.span.trace_id].append(r)
    out = [sorted(t, key=lambda r: (r.span.start_time_unix_nano, r.span.span_id)) for t in by_trace.values()]
    return sorted(out, key=lambda t: _root(t).span.start_time_unix_nano)


def _root(trace: list[RawSpan]) -> RawSpan:
    ids = {r.span.span_id for r in trace}
    roots = [r for r in trace if r.span.parent_span_id not in ids]
    return min(roots, key=lambda r: r.span.start_time_unix_nano)


def _shape(trace: list[RawSpan]) -> tuple:
    return tuple(sorted(Counter((r.resource.get("service.name"), r.span.name) for r in trace).items()))


def templates(kind: str, traces: list[list[RawSpan]], stamp: Callable[[int, int], tuple[str, int]],
              marks: Marks) -> list[SpanTemplate]:
    """The spans of ``traces`` as templates of ``kind``: ``stamp(ns, trace_no)`` anchors each time."""
    out = []
    index: dict[bytes, int] = {}
    for trace in traces:
        for r in trace:
            index[r.span.span_id] = len(index)
    uuids: dict[str, str] = {}
    for t, trace in enumerate(traces):
        for r in trace:
            s = r.span
            attrs = {kv.key: any_value(kv.value) for kv in s.attributes}
            for key in ("uuid",):  # conmon-rs's per-request uuid: fresh per issue
                if isinstance(attrs.get(key), str):
                    attrs[key] = uuids.setdefault(attrs[key], marker(f"uuid{len(uuids)}"))
            if s.links:
                raise ValueError(f"{kind}: span {s.name!r} has links, which the fleet does not re-issue")
            out.append(SpanTemplate(
                kind=kind, trace=t, span=index[s.span_id], parent=index.get(s.parent_span_id), flags=s.flags,
                service=marks(str(r.resource.get("service.name"))), scope=r.scope, name=marks(s.name), span_kind=s.kind,
                start=stamp(s.start_time_unix_nano, t), end=stamp(s.end_time_unix_nano, t),
                attributes=marks(attrs),
                events=[EventTemplate(stamp(e.time_unix_nano, t), marks(e.name),
                                      marks({kv.key: any_value(kv.value) for kv in e.attributes})) for e in s.events],
                status=(s.status.code, marks(s.status.message))))
    return out


def _short(root_name: str) -> str:
    return root_name.rsplit(".", 1)[-1] if "/" in root_name and "." in root_name.split("/")[0] else root_name


def node_kinds(node: NodeInfo, spans: list[RawSpan], marks: Marks) -> list[Kind]:
    """The idle node's periodic roots in its window: one kind per root name, at the rate seen."""
    lo = node.started_ns + int(IDLE.settle_s * 1e9)
    hi = lo + int(IDLE.window_s * 1e9)
    seen: dict[str, list[list[RawSpan]]] = defaultdict(list)
    for trace in _traces(spans):
        root = _root(trace)
        if lo <= root.span.start_time_unix_nano < hi and root.span.name in IDLE.node_roots:
            seen[root.span.name].append(trace)
    kinds = []
    for name, traces in sorted(seen.items()):
        common = Counter(_shape(t) for t in traces).most_common(1)[0][0]
        rep = [t for t in traces if _shape(t) == common][-1]
        start = _root(rep).span.start_time_unix_nano
        kind = f"node:{_short(name)}"
        kinds.append(Kind(kind, "node", rate=len(traces) / IDLE.window_s, title=f"{name}, {len(traces)} in "
                          f"{IDLE.window_s:g} s on an idle node",
                          spans=templates(kind, [rep], lambda ns, _t, s=start: ("r", ns - s), marks)))
    return kinds


def episode_kinds(ep: Episode, run: EpisodeRun, spans: list[RawSpan], marks: Marks) -> list[Kind]:
    """One episode's traces (its start and stop phases, anchored at t0 and t1) and its running pod's own
    periodic roots."""
    running_from = run.t0 + int(ep.start_s * 1e9)
    phase: list[list[RawSpan]] = []
    periodic: dict[str, list[list[RawSpan]]] = defaultdict(list)
    for trace in _traces(spans):
        root = _root(trace)
        at = root.span.start_time_unix_nano
        if root.span.name in NODE_ROOTS or not run.t0 <= at < run.end:
            continue
        if ep.running_s and running_from <= at < run.t1:
            # The kubelet's roots for a running pod, and the runtime's own periodic ones (episodes.POD_ROOTS); the
            # runtime's others in that window are not this pod's.
            service = root.resource.get("service.name")
            if service == "kubelet" or (service, root.span.name) in POD_ROOTS:
                periodic[root.span.name].append(trace)
        else:
            phase.append(trace)
    kind = Kind(ep.kind, "episode", start_s=ep.start_s, lifetime_s=(run.t1 - run.t0) / 1e9, title=ep.title,
                spans=templates(ep.kind, phase,
                                lambda ns, _t: ("t1", ns - run.t1) if ns >= run.t1 else ("t0", ns - run.t0), marks))
    out = [kind]
    for name, traces in sorted(periodic.items()):
        common = Counter(_shape(t) for t in traces).most_common(1)[0][0]
        rep = [t for t in traces if _shape(t) == common][-1]
        start = _root(rep).span.start_time_unix_nano
        pk = f"{ep.kind}:{_short(name)}"
        out.append(Kind(pk, "pod-periodic", rate=len(traces) / ep.running_s, of=ep.kind,
                        title=f"{name}, {len(traces)} in the {ep.running_s:g} s running window",
                        spans=templates(pk, [rep], lambda ns, _t, s=start: ("r", ns - s), marks)))
    return out


def node_marks(node: NodeInfo, image_ids: list[str], run: EpisodeRun | None, spans: list[RawSpan]) -> Marks:
    """The markers of one node's spans (and of one episode's, with ``run``)."""
    table = {str(node.base): marker("base"), node.name: marker("node")}
    pids: dict[str, str] = {}
    if run is not None:
        table.update({run.pod: marker("pod"), run.uid: marker("uid")})
        if run.pod_ip:
            table[run.pod_ip] = marker("ip")
        known = set(image_ids)
        ids = list(dict.fromkeys(run.sandbox_ids + run.container_ids))
        for r in spans:  # ids of containers gone before the capture asked (a crash loop's earlier attempts)
            for text in [r.span.name, *(str(any_value(kv.value)) for kv in r.span.attributes),
                         *(e.name for e in r.span.events)]:
                ids += [h for h in _HEX64.findall(text) if h not in known and h not in ids]
        table.update({h: marker(f"id{i}") for i, h in enumerate(ids)})
        for r in spans:
            for text in [*(e.name for e in r.span.events),
                         *(str(any_value(kv.value)) for kv in r.span.attributes if kv.key in ("pid", "path"))]:
                for m in _PID.finditer(text):
                    pid = m.group(1) or m.group(2)
                    pids.setdefault(pid, marker(f"pid{len(pids)}"))
        for r in spans:
            for kv in r.span.attributes:
                if kv.key == "pid":
                    pids.setdefault(str(any_value(kv.value)), marker(f"pid{len(pids)}"))
    return Marks(table, pids)


def resources_of(parts: list[tuple[list[RawSpan], Marks]]) -> dict[str, dict[str, Any]]:
    """Each service's resource, by its name as the templates have it (``parts``: spans and the markers they were
    templated with): ``host.name`` and ``process.pid`` are the node's; a name with a pod's id in it (containerd's
    ``containerd-shim-{{id0}}``, one shim per pod) has it marked as in that pod's spans."""
    out: dict[str, dict[str, Any]] = {}
    for spans, marks in parts:
        for r in spans:
            service = marks(str(r.resource.get("service.name")))
            if service not in out:
                res = {k: marks(v) for k, v in r.resource.items()}
                if "host.name" in res:
                    res["host.name"] = marker("node")
                if "process.pid" in res:
                    res["process.pid"] = marker("process.pid")
                out[service] = res
    return out


@dataclass
class Recording:
    """What the live nodes of a capture exported, and what ``convert`` needs to know about them."""

    runtime: str
    nodes: list[NodeInfo]  # the idle node first
    runs: dict[str, tuple[NodeInfo, EpisodeRun]]  # episode kind -> its node and run
    images: dict[str, list[str]]  # node -> the image ids it had at the end
    raw: dict[str, list[RawSpan]]  # node -> its spans


def record(runtime: str = "crio", episodes: dict[str, Episode] | None = None, idle_window_s: float = IDLE.window_s,
           pod_names: dict[str, str] | None = None, say: Callable[[str], None] = print) -> Recording:
    """Runs the live nodes side by side: an idle one for ``idle_window_s`` after it settled, and one per chain of
    ``episodes`` (default ``EPISODES``) with the pods named by ``pod_names`` (default ``CAPTURE_POD``)."""
    if runtime not in LIVE_RUNTIMES:
        raise SystemExit(f"capture: no live path for runtime {runtime!r} yet (live.LIVE_RUNTIMES)")
    episodes = episodes_on(runtime, episodes)
    names = pod_names or {}
    with receiver() as (store, endpoint):
        idle = LiveNode("fleetcap-idle", 1, endpoint, runtime=runtime)
        plans: list[tuple[LiveNode, list[Episode]]] = [(idle, [])]
        for i, first in enumerate(e for e in episodes.values() if e.kind != "pod"):
            chain = [first] + ([episodes[first.after]] if first.after else [])
            plans.append((LiveNode(f"fleetcap-{first.kind}", 2 + i, endpoint, first.runtime_args, runtime), chain))
        runs: dict[str, tuple[NodeInfo, EpisodeRun]] = {}
        images: dict[str, list[str]] = {}
        errors: list[BaseException] = []

        def drive(node: LiveNode, chain: list[Episode]) -> None:
            try:
                node.start()
                time.sleep(IDLE.settle_s)
                if not chain:
                    time.sleep(idle_window_s + 1)
                for ep in chain:
                    say(f"capture: {node.name}: {ep.kind} ({ep.start_s + ep.running_s + ep.stop_s:g} s)")
                    pod = names.get(ep.kind) or CAPTURE_POD.format(kind=ep.kind)
                    runs[ep.kind] = (node.info, node.episode(ep, pod))
                images[node.name] = node.image_ids()
            except BaseException as err:  # noqa: BLE001 - reported after every node stopped
                errors.append(err)
            finally:
                node.stop()

        threads = [threading.Thread(target=drive, args=plan, name=plan[0].name) for plan in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        time.sleep(1.5)  # the last exports of the nodes' shutdown
        raw = {node.name: store.spans_of(node.name) for node, _ in plans}
    return Recording(runtime, [node.info for node, _ in plans], runs, images, raw)


def capture(runtime: str = "crio", say: Callable[[str], None] = print, keep: Path | None = None) -> Catalogue:
    """Runs the live nodes and returns the catalogue (see the module docstring)."""
    rec = record(runtime, say=say)
    if keep is not None:
        with keep.open("wb") as f:
            pickle.dump(rec, f)
    return convert(rec)


def convert(rec: Recording) -> Catalogue:
    """The catalogue from what ``record`` recorded."""
    runtime, nodes, runs, images, raw = rec.runtime, rec.nodes, rec.runs, rec.images, rec.raw
    idle = nodes[0]
    idle_spans = raw[idle.name]
    idle_marks = node_marks(idle, images[idle.name], None, idle_spans)
    kinds = node_kinds(idle, idle_spans, idle_marks)
    parts = [(idle_spans, idle_marks)]
    for ep in episodes_on(runtime).values():
        node, run = runs[ep.kind]
        spans = raw[node.name]
        marks = node_marks(node, images.get(node.name, []), run, spans)
        kinds += episode_kinds(ep, run, spans, marks)
        parts.append(([r for r in spans if run.t0 <= r.span.start_time_unix_nano < run.end], marks))
    used = {s.service for k in kinds for s in k.spans}
    resources = {service: res for service, res in resources_of(parts).items() if service in used}
    how = "runtime type pod" if runtime == "crio" else f"runtime {runtime}"
    captured = {"how": f"python -m cristack.harness.fleet.capture --runtime {runtime}",
                "date": time.strftime("%Y-%m-%d", time.gmtime()),
                "settings": f"cristack up's defaults (relist 1 s, back-off 10 s, GC every minute), {how}"}
    return Catalogue(runtime, captured, resources, {k.name: k for k in kinds})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cristack.harness.fleet.capture", description=__doc__.split("\n")[0])
    ap.add_argument("--runtime", choices=sorted(set(RUNTIMES) | set(LIVE_RUNTIMES)), default="crio")
    ap.add_argument("--out", type=Path, help="where to write it (default: the shipped catalogue)")
    ap.add_argument("--keep-raw", type=Path, metavar="FILE", help="also keep what the live nodes exported (pickle)")
    ap.add_argument("--from-raw", type=Path, metavar="FILE", help="convert a kept recording instead of running nodes")
    args = ap.parse_args(argv)
    if args.from_raw:
        with args.from_raw.open("rb") as f:
            loaded = pickle.load(f)  # noqa: S301 - our own file, written by --keep-raw
        cat = convert(loaded if isinstance(loaded, Recording) else Recording(*loaded))
    else:
        cat = capture(args.runtime, keep=args.keep_raw)
    out = args.out or catalogue_path(args.runtime)
    cat.write(out)
    for k in cat.kinds.values():
        rate = f", {k.rate:.3f}/s" if k.rate else ""
        print(f"  {k.name}: {k.role}{rate}, {k.traces} trace(s), {len(k.spans)} spans")
    print(f"capture: {sum(len(k.spans) for k in cat.kinds.values())} span templates in {len(cat.kinds)} kinds "
          f"written to {out} (median {statistics.median(len(k.spans) for k in cat.kinds.values()):g} spans a kind)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
