"""Workshop scenarios: ``examples/scenarios/NAME/`` (scenario.toml, manifests, faults, README),
each run through the whole stack against the embedded sink, with the finding a workshop
exercise is about checked on the spans that came back.

A scenario's ``scenario.toml``:

    title = "..."
    mode = "runonce" | "timed"        # run the pods to completion, or for duration_s seconds
    duration_s = 7
    runtime_types = ["pod"]           # each runs once; oci-vs-pod lists both
    kubelet_sampling = 1000000        # samplingRatePerMillion
    crio_sampling = 1000000           # tracing_sampling_rate_per_million
    backoff_base = "10s"
    faults = "faults.toml"            # mock-only fault injection for fake-crio
    pull_bandwidth_mbps = 0           # mock-only: simulated registry bandwidth
    pods = 1                          # copies of each manifest (with distinct names)
    [[action]]                        # timed changes: replace-manifest, add-manifest, stop-sink, start-sink
    at_s = 4.0
    do = "replace-manifest"
    file = "app.yaml"
    with = "fixed/app.yaml"
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cristack.config.durations import parse_duration
from cristack.config.tomlconf import read_toml
from cristack.harness import expectations
from cristack.harness.jaeger import free_ports
from cristack.harness.keptlogs import KeptLogs
from cristack.harness.sink.receiver import Sink
from cristack.harness.sink.store import Span, SpanStore
from cristack.harness.stack import Stack, StackOptions, example
from cristack.wire.errors import ConfigError

ACTIONS = ("replace-manifest", "add-manifest", "stop-sink", "start-sink")


@dataclass
class Action:
    at_s: float
    do: str
    file: str = ""
    with_: str = ""


@dataclass
class Scenario:
    name: str
    dir: Path
    title: str
    mode: str = "runonce"
    duration_s: float = 10.0
    runtime_types: list[str] = field(default_factory=lambda: ["pod"])
    kubelet_sampling: int = 1_000_000
    crio_sampling: int = 1_000_000
    backoff_base: str = "10s"
    faults: Path | None = None
    pull_bandwidth_mbps: float = 0.0
    pods: int = 1
    kata: bool = False  # start a trace forwarder and point the kata handler's config at it
    actions: list[Action] = field(default_factory=list)

    @property
    def manifests(self) -> list[Path]:
        return sorted((self.dir / "manifests").glob("*.yaml"))


def scenarios_dir() -> Path:
    return example("scenarios")


def names() -> list[str]:
    return sorted(p.parent.name for p in scenarios_dir().glob("*/scenario.toml"))


def load(name: str) -> Scenario:
    """Reads examples/scenarios/NAME/scenario.toml; ConfigError names the file and key."""
    path = scenarios_dir() / name / "scenario.toml"
    if not path.is_file():
        raise ConfigError(str(path), "", f"no scenario {name!r} (known: {', '.join(names())})")
    doc = read_toml(path)
    known = {"title", "mode", "duration_s", "runtime_types", "kubelet_sampling", "crio_sampling", "backoff_base",
             "faults", "pull_bandwidth_mbps", "pods", "action", "kata"}
    for key in doc:
        if key not in known:
            raise ConfigError(str(path), key, "unknown key")
    if doc.get("mode", "runonce") not in ("runonce", "timed"):
        raise ConfigError(str(path), "mode", "expected runonce or timed")
    actions = []
    for i, a in enumerate(doc.get("action", [])):
        if a.get("do") not in ACTIONS:
            raise ConfigError(str(path), f"action[{i}].do", f"expected one of {', '.join(ACTIONS)}")
        actions.append(Action(float(a.get("at_s", 0)), a["do"], a.get("file", ""), a.get("with", "")))
    try:
        parse_duration(str(doc.get("backoff_base", "10s")))
    except ValueError as err:
        raise ConfigError(str(path), "backoff_base", str(err)) from None
    faults = doc.get("faults")
    return Scenario(
        name=name, dir=path.parent, title=str(doc.get("title", name)), mode=doc.get("mode", "runonce"),
        duration_s=float(doc.get("duration_s", 10)), runtime_types=list(doc.get("runtime_types", ["pod"])),
        kubelet_sampling=int(doc.get("kubelet_sampling", 1_000_000)),
        crio_sampling=int(doc.get("crio_sampling", 1_000_000)), backoff_base=str(doc.get("backoff_base", "10s")),
        faults=path.parent / faults if faults else None,
        pull_bandwidth_mbps=float(doc.get("pull_bandwidth_mbps", 0)), pods=int(doc.get("pods", 1)),
        kata=bool(doc.get("kata", False)),
        actions=sorted(actions, key=lambda a: a.at_s))


@dataclass
class Run:
    """What one scenario run left: the spans, the stack's logs, the kubelet's exit code."""

    scenario: Scenario
    runtime_type: str
    store: SpanStore
    logs: dict[str, str]
    kubelet_rc: int | None
    pod_logs: dict[str, list[str]] = field(default_factory=dict)

    def spans(self) -> list[Span]:
        return self.store.spans()

    def traces(self) -> list[list[Span]]:
        return [self.store.trace(t) for t in self.store.trace_ids()]

    def sync_traces(self, pod: str | None = None, update_type: str | None = None) -> list[list[Span]]:
        out = []
        for t in self.traces():
            root = next((s for s in t if s.name == "syncPod" and not s.parent_span_id), None)
            if root is None:
                continue
            if pod is not None and root.attributes.get("k8s.pod.name") != pod:
                continue
            if update_type is not None and root.attributes.get("k8s.pod.update_type") != update_type:
                continue
            out.append(t)
        return sorted(out, key=lambda t: min(s.start for s in t))


def _copy_manifests(scenario: Scenario, dest: Path) -> None:
    for path in scenario.manifests:
        if scenario.pods <= 1:
            shutil.copyfile(path, dest / path.name)
            continue
        doc = yaml.safe_load(path.read_text())
        for i in range(scenario.pods):
            d = dict(doc)
            d["metadata"] = {**doc["metadata"], "name": f"{doc['metadata']['name']}-{i}"}
            (dest / f"{path.stem}-{i}.yaml").write_text(yaml.safe_dump(d, sort_keys=False))


# The real kubelet's back-offs (pkg/kubelet/kubelet.go v1.36.3): 10 s at first, doubling, at most 300 s. A scenario
# gives its first delay; the ceiling is scaled by the same factor, so the story is the real one, only faster.
REAL_BACKOFF_BASE_S, REAL_BACKOFF_MAX_S = 10.0, 300.0


def backoff_max(scenario: Scenario) -> str:
    """The back-off ceiling scaled like the scenario's first delay (10 s -> 300 s, 0.4 s -> 12 s)."""
    base = parse_duration(scenario.backoff_base)
    return f"{base * REAL_BACKOFF_MAX_S / REAL_BACKOFF_BASE_S:g}s"


def stack_options(scenario: Scenario, runtime_type: str, otlp_endpoint: str) -> StackOptions:
    crio_args = []
    if scenario.faults is not None:
        crio_args += ["--faults", str(scenario.faults)]
    if scenario.pull_bandwidth_mbps:
        crio_args += ["--pull-bandwidth-mbps", str(scenario.pull_bandwidth_mbps)]
    return StackOptions(runtime_type=runtime_type, otlp_endpoint=otlp_endpoint, relist_period="0.2s",
                        backoff_base=scenario.backoff_base, backoff_max=backoff_max(scenario), gc_period="1s",
                        file_check_frequency="0.2s",
                        crio_sampling_per_million=scenario.crio_sampling,
                        kubelet_sampling_per_million=scenario.kubelet_sampling, crio_args=crio_args,
                        pull_latency_ms=30)


def run(scenario: Scenario, runtime_type: str, *, say: Callable[[str], None] = lambda _: None) -> Run:
    """Runs one scenario once under one runtime type and returns what came back."""
    grpc_port, http_port = free_ports(2)
    store = SpanStore()
    sink = Sink(store)
    sink.start(f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}")
    base = Path(tempfile.mkdtemp(prefix=f"cristack-{scenario.name}-"))
    stack = Stack(base, stack_options(scenario, runtime_type, f"127.0.0.1:{grpc_port}"))
    _copy_manifests(scenario, stack.manifests)
    kept = KeptLogs(stack.pod_logs, base / "kept-logs")  # the kubelet deletes the logs of what it removes
    rc: int | None = None
    forwarder = None
    try:
        if scenario.kata:
            forwarder = _start_kata(stack, base, f"127.0.0.1:{grpc_port}")
        kubelet = stack.start(runonce=scenario.mode == "runonce")
        started = time.monotonic()
        pending = list(scenario.actions)
        end = started + (scenario.duration_s if scenario.mode == "timed" else 120)
        while time.monotonic() < end:
            now = time.monotonic() - started
            while pending and pending[0].at_s <= now:
                action = pending.pop(0)
                say(f"  … at {action.at_s:g}s: {action.do} {action.file}".rstrip())
                sink = _act(action, scenario, stack, sink, store, grpc_port, http_port)
            kept.sweep()
            if scenario.mode == "runonce" and kubelet.popen.poll() is not None:
                rc = kubelet.popen.returncode
                break
            time.sleep(0.05)
        for action in pending:  # whatever the runonce finished before
            sink = _act(action, scenario, stack, sink, store, grpc_port, http_port)
        pod_logs = kept.lines()
        # Every component exports what it holds before it exits, and the sink stores a request before it
        # answers: once they have stopped, their spans are in the store. The agents' last frames went to the
        # forwarder as the VMs stopped (with crio); it exports them before it exits.
        stack.stop()
        if forwarder is not None:
            forwarder.stop()
        return Run(scenario, runtime_type, store, stack.logs(), rc, pod_logs)
    finally:
        stack.stop()
        if sink is not None:
            sink.stop()
        shutil.rmtree(base, ignore_errors=True)


def _start_kata(stack: Stack, base: Path, otlp_endpoint: str):  # noqa: ANN202
    """A trace forwarder on a unix socket in ``base``, and a crio drop-in whose kata handler
    reads a configuration.toml that points the agents at it."""
    from cristack.harness.procs import start
    from cristack.wire.endpoints import parse_endpoint

    sock = base / "run" / "kata-forwarder.sock"
    config = base / "kata-configuration.toml"
    text = example("kata", "configuration.toml").read_text()
    config.write_text(text.replace("unix:///tmp/cristack/kata-trace-forwarder.sock", f"unix://{sock}"))
    drop_ins = base / "crio.conf.d"
    shutil.copytree(example("crio", "crio.conf.d"), drop_ins)
    (drop_ins / "60-kata.conf").write_text(f'[crio.runtime.runtimes.kata]\nruntime_type = "vm"\n'
                                           f'runtime_config_path = "{config}"\n')
    stack.opts.crio_args = [*stack.opts.crio_args, "--config-dir", str(drop_ins)]
    return start("cristack", ["trace-forwarder", "--listen", f"unix://{sock}", "--otlp-endpoint", otlp_endpoint],
                 base / "forwarder.log", endpoint=parse_endpoint(str(sock)))


def _act(action: Action, scenario: Scenario, stack: Stack, sink: Sink | None, store: SpanStore, grpc_port: int,
         http_port: int) -> Sink | None:
    if action.do == "replace-manifest":
        shutil.copyfile(scenario.dir / action.with_, stack.manifests / action.file)
    elif action.do == "add-manifest":
        shutil.copyfile(scenario.dir / action.file, stack.manifests / Path(action.file).name)
    elif action.do == "stop-sink" and sink is not None:
        sink.stop()
        return None
    elif action.do == "start-sink" and sink is None:
        sink = Sink(store)
        sink.start(f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}")
    return sink


# -- findings: what each exercise is about, checked on the spans


@dataclass
class SyncRow:
    """One ``syncPod`` trace of a pod, in a line: when, what the kubelet decided, which CRI calls it made."""

    trace_id: str
    start: int  # ns since the epoch
    pod: str
    uid: str
    update_type: str
    error: str  # the kubelet's reason (ErrImagePull, CrashLoopBackOff, ...) or ""
    message: str  # the reason's message (back-off 0.8s restarting failed container=...)
    calls: list[str]  # the kubelet's CRI calls under syncPod, in order; a failed one ends in ✗


@dataclass
class Finding:
    ok: bool
    summary: str
    trace_ids: list[str] = field(default_factory=list)  # shown as trees (terminal and HTML)
    details: dict[str, Any] = field(default_factory=dict)
    timeline: list[SyncRow] = field(default_factory=list)  # every sync of the pod the exercise is about


def sync_rows(r: Run, pod: str) -> list[SyncRow]:
    """Every ``syncPod`` trace of ``pod`` as a :class:`SyncRow`, in start order."""
    rows = []
    for t in r.sync_traces(pod):
        root = next(s for s in t if s.name == "syncPod" and not s.parent_span_id)
        exc = next((e for e in root.events if e.name == "exception"), None)
        calls = [c.name.rsplit("/", 1)[-1] + ("✗" if c.status == "ERROR" else "") for c in
                 sorted(_children(t, root), key=lambda c: c.start) if c.service == "kubelet" and c.kind == "CLIENT"]
        rows.append(SyncRow(root.trace_id, root.start, pod, str(root.attributes.get("k8s.pod.uid", "")),
                            str(root.attributes.get("k8s.pod.update_type", "")),
                            str(exc.attributes.get("exception.type", "")) if exc else "",
                            str(exc.attributes.get("exception.message", "")) if exc else "", calls))
    return rows


def _ids(traces: list[list[Span]]) -> list[str]:
    return [t[0].trace_id for t in traces]


def _children(trace: list[Span], parent: Span) -> list[Span]:
    return [s for s in trace if s.parent_span_id == parent.span_id]


def find_hello(runs: list[Run]) -> Finding:
    r = runs[0]
    traces = r.sync_traces("hello", "create")
    ok = bool(traces) and all(ok for _, ok in expectations.check(traces[0], r.runtime_type)) and \
        "hi" in r.pod_logs.get("hello/hello", [])
    n = len(traces[0]) if traces else 0
    return Finding(ok, f"one syncPod trace of {n} spans across kubelet, crio and conmonrs; the container said hi",
                   _ids(traces[:1]))


def find_image_pull_backoff(runs: list[Run]) -> Finding:
    r = runs[0]
    failed = [s for s in r.spans() if s.service == "kubelet" and s.name == "runtime.v1.ImageService/PullImage"
              and s.status == "ERROR"]
    # CRI-O logs nothing at info level for a failed pull: the registry's message is the crio
    # SERVER span's status (gRPC UNKNOWN), and the kubelet's CLIENT span's.
    registry_events = [s for s in r.spans() if s.service == "crio" and s.name == "runtime.v1.ImageService/PullImage"
                       and s.status == "ERROR"]
    timeline = sync_rows(r, "app")
    pull_errors = [row for row in timeline if row.error == "ErrImagePull"]
    backoff_syncs = [row for row in timeline if row.error == "ImagePullBackOff"]
    fixed = [row for row in timeline if row.update_type == "create" and "StartContainer" in row.calls]
    message = registry_events[0].status_message if registry_events else ""
    # Between pulls the kubelet waits the back-off, counted from the failed pull: the next PullImage comes no sooner.
    pulls = sorted(failed, key=lambda s: s.start)
    waits = [(b.start - a.end) / 1e9 for a, b in zip(pulls, pulls[1:], strict=False)]
    ok = (bool(failed) and "no such host" in message and bool(backoff_syncs) and bool(fixed)
          and not any("PullImage" in c for row in backoff_syncs for c in row.calls))
    return Finding(ok, f"{len(failed)} ERROR PullImage span(s), the registry said '…{message[-40:]}'; "
                       f"{len(backoff_syncs)} ImagePullBackOff sync(s) without a PullImage; waits between pulls "
                       f"{', '.join(f'{w:.1f}s' for w in waits)}; after the fix a new pod started",
                   [row.trace_id for row in pull_errors[:1] + backoff_syncs[:1] + fixed[:1]],
                   {"registry_message": message, "failed_pulls": len(failed), "backoffs": len(backoff_syncs),
                    "pull_waits": waits}, timeline)


def backoff_kept(wait: float, delay: float) -> bool:
    """Whether a restart ``wait`` seconds after the exit kept a back-off of ``delay``: never sooner (the kubelet
    does not restart inside the window), and late only by the time it takes to notice and sync (a relist period
    and a loaded machine's scheduling)."""
    return delay - 0.05 <= wait <= delay + 0.3 + 0.1 * delay


def find_crashloop(runs: list[Run]) -> Finding:
    """The kubelet restarts at once after the first crash, then waits the back-off counted from each exit:
    base, 2×base, 4×base, ... (doubling exactly, as flowcontrol.Backoff does)."""
    r = runs[0]
    timeline = sync_rows(r, "crasher")
    starts = [row for row in timeline if "StartContainer" in row.calls]
    loops = [row for row in timeline if row.error == "CrashLoopBackOff"]
    # A container's exit: the end of conmonrs's wait_for_exit_code in the trace that started it.
    exits = []
    for row in starts:
        waited = [s for s in r.store.trace(row.trace_id) if s.name == "wait_for_exit_code"]
        exits.append(max(s.end for s in waited) / 1e9 if waited else None)
    waits = [b.start / 1e9 - e for e, b in zip(exits, starts[1:], strict=False) if e is not None]
    gaps = [(b.start - a.start) / 1e9 for a, b in zip(starts, starts[1:], strict=False)]
    base = parse_duration(r.scenario.backoff_base)
    doubling = len(waits) >= 3 and all(backoff_kept(w, base * 2 ** i) for i, w in enumerate(waits[1:]))
    ok = len(starts) >= 3 and doubling and bool(loops) and all(not row.calls for row in loops)
    return Finding(ok, f"{len(starts)} starts, each in its own syncPod trace, "
                       f"{', '.join(f'{g:.1f}s' for g in gaps)} apart; waits from an exit to the next start "
                       f"{', '.join(f'{w:.1f}s' for w in waits)} (first restart at once, then doubling); "
                       f"{len(loops)} CrashLoopBackOff sync(s), no CRI calls in them",
                   [row.trace_id for row in starts[1:2] + loops[:1]], {"gaps": gaps, "waits": waits,
                                                                      "starts": len(starts)}, timeline)


def find_slow_storage(runs: list[Run]) -> Finding:
    r = runs[0]
    traces = r.sync_traces("hello", "create")
    # CRI-O creates the container's storage inside createSandboxContainer (no span of its own).
    slow = [s for t in traces for s in t if s.name.endswith("(*Server).createSandboxContainer")]
    if not slow:
        return Finding(False, "no createSandboxContainer span found")
    trace = next(t for t in traces if slow[0] in t)
    parent = next(s for s in trace if s.span_id == slow[0].parent_span_id)
    siblings = _children(trace, parent)
    longest = max(siblings, key=lambda s: s.duration_ns)
    ok = longest is slow[0] and slow[0].duration_ns >= 0.6e9
    return Finding(ok, f"{slow[0].name.rsplit('/', 1)[-1]} took {slow[0].duration_ns / 1e6:.0f} ms, the longest "
                       f"child of {parent.name.rsplit('/', 1)[-1]}", _ids([trace]))


def find_conmonrs_orphaned(runs: list[Run]) -> Finding:
    """The monitor's spans are not in the pod's trace: they share one trace of their own whose
    roots name a parent that was never exported (conmon-rs v0.8.0's backend span)."""
    r = runs[0]
    syncs = r.sync_traces("hello", "create")
    spans = r.spans()
    exported = {s.span_id for s in spans}
    rpcs = [s for s in spans if s.service == "conmonrs" and s.name in ("create_container", "version")]
    in_sync = [s for t in syncs for s in t if s.service == "conmonrs"]
    clients = [s for t in syncs for s in t if s.name == "conmonrs-client: CreateContainer"]
    childless = [c for c in clients if not any(s.parent_span_id == c.span_id for s in spans)]
    monitor_traces = {s.trace_id for s in rpcs}
    parents = {s.parent_span_id for s in rpcs}
    ok = (bool(syncs) and bool(rpcs) and not in_sync and len(childless) == len(clients) > 0
          and len(monitor_traces) == 1 and len(parents) == 1 and not parents & exported)
    return Finding(ok, f"{len(clients)} conmonrs-client: CreateContainer span(s) without children in the pod's "
                       f"trace; {len(rpcs)} conmonrs RPC span(s) in {len(monitor_traces)} trace(s) of their own, "
                       f"under {len(parents)} parent id(s) never exported",
                   _ids(syncs[:1]) + sorted(monitor_traces),
                   {"monitor_traces": len(monitor_traces), "missing_parents": sorted(parents - exported)})


def find_slow_pull(runs: list[Run]) -> Finding:
    r = runs[0]
    pulls = [s for s in r.spans() if s.name.endswith("(*Server).pullImage")]
    if not pulls:
        return Finding(False, "no pullImage span")
    trace = r.store.trace(pulls[0].trace_id)
    layers = [s for s in trace if s.parent_span_id == pulls[0].span_id and "copyLayer" in s.name]
    biggest = max(layers, key=lambda s: s.attributes.get("layer.size", 0)) if layers else None
    longest = max(layers, key=lambda s: s.duration_ns) if layers else None
    # How many layers were copied at once: the most spans open at any layer's start.
    overlap = max((sum(1 for o in layers if o.start <= s.start < o.end) for s in layers), default=0)
    ok = len(layers) == 12 and biggest is longest and pulls[0].duration_ns > 1e9
    return Finding(ok, f"pullImage {pulls[0].duration_ns / 1e9:.1f}s over {len(layers)} copyLayer spans, at most "
                       f"{overlap} at a time; the "
                       f"biggest layer ({(biggest.attributes.get('layer.size', 0) if biggest else 0) / 2**20:.0f} MiB)"
                       " took longest", _ids([trace]))


def find_sampling(runs: list[Run]) -> Finding:
    r = runs[0]
    pods = r.scenario.pods
    sampled = r.sync_traces(update_type="create")
    crio_roots = [s for s in r.spans() if s.service == "crio" and not s.parent_span_id]
    crio_outside = [s for s in r.spans() if s.service == "crio" and s.trace_id not in
                    {t[0].trace_id for t in r.traces() if any(x.service == "kubelet" for x in t)}]
    share = len(sampled) / pods
    ok = 0 < len(sampled) <= pods * 0.3 and not crio_roots and not crio_outside
    return Finding(ok, f"{len(sampled)} of {pods} pod starts traced ({share:.0%}, rate 10%); every crio span sits "
                       "under a sampled kubelet span; crio started no trace of its own", _ids(sampled[:3]),
                   {"sampled": len(sampled), "pods": pods})


OCI_IMPL = "github.com/cri-o/cri-o/internal/oci.(*runtimeOCI)."


def find_oci_vs_pod(runs: list[Run]) -> Finding:
    shapes = {}
    ids = []
    for r in runs:
        t = r.sync_traces("hello", "create")
        shapes[r.runtime_type] = {(s.service, s.name) for s in t[0]} if t else set()
        ids += _ids(t[:1])
    conmon = {x for x in shapes.get("pod", set()) ^ shapes.get("oci", set())}
    # With pod, conmon-rs does creation and exec; with oci, CRI-O's runtimeOCI (runc) does.
    only_conmon = all(svc == "conmonrs" or name.startswith(("conmonrs-client", OCI_IMPL)) for svc, name in conmon)
    ok = bool(conmon) and only_conmon and not {x for x in shapes.get("oci", set()) if x[0] == "conmonrs"}
    return Finding(ok, f"the traces differ in {len(conmon)} span kinds, all conmonrs, conmonrs-client or "
                       "runtimeOCI; oci has no conmonrs span", ids, {"difference": sorted(conmon)})


def find_collector_outage(runs: list[Run]) -> Finding:
    r = runs[0]
    traced = {p: bool(r.sync_traces(p, "create")) for p in ("before", "during", "after")}
    ran = {p: f"{p}/main" in r.pod_logs for p in traced}
    warnings = sum(text.count("cannot export spans") for text in r.logs.values())
    ok = traced == {"before": True, "during": False, "after": True} and all(ran.values())
    return Finding(ok, f"traced: {', '.join(p for p, t in traced.items() if t)}; lost: "
                       f"{', '.join(p for p, t in traced.items() if not t) or 'none'}; all three pods ran; "
                       f"{warnings} warning line(s) in all", _ids(r.sync_traces("before", "create")[:1] +
                                                                  r.sync_traces("after", "create")[:1]))


def find_multi_container(runs: list[Run]) -> Finding:
    r = runs[0]
    syncs = r.sync_traces("web")
    creates = [sum(1 for x in t if x.service == "kubelet" and x.name.endswith("CreateContainer")) for t in syncs]
    first = syncs[0] if syncs else []
    init_first = sum(1 for s in first if s.name.endswith("CreateContainer") and s.service == "kubelet") == 1
    later = [t for t in syncs[1:] if sum(1 for s in t if s.service == "kubelet" and s.name.endswith(
        "CreateContainer")) == 2]
    probes = [t for t in r.traces() if any(
        s.name == "runtime.v1.RuntimeService/ExecSync" and s.service == "kubelet" and not s.parent_span_id
        for s in t) and any(s.name == "exec_sync_container" for s in t)]
    ok = init_first and bool(later) and bool(probes)
    return Finding(ok, f"first syncPod starts the init container only; a later one starts both containers; "
                       f"{len(probes)} readiness probe(s), each an ExecSync root trace down to exec_sync_container",
                   _ids(syncs[:1] + later[:1] + probes[:1]), {"creates": creates}, sync_rows(r, "web"))


def find_kata(runs: list[Run]) -> Finding:
    """Kata's traces are the shim's own: the pod's syncPod trace ends at CRI-O; the shim's rootSpan trace (service
    kata) holds the VM's work, with the agent's RPC spans under the shim's ttrpc spans; the agent's root-span is a
    trace of its own."""
    r = runs[0]
    syncs = r.sync_traces("vm-pod", "create")
    if not syncs:
        return Finding(False, "no syncPod trace for the kata pod")
    in_pod_trace = [s for s in syncs[0] if s.service in ("kata", "kata-agent")]
    shim = [t for t in r.traces() if any(s.service == "kata" and s.name == "rootSpan" and not s.parent_span_id
                                         for s in t)]
    agent_rpcs: list[Span] = []
    for t in shim:
        by_id = {s.span_id: s for s in t}
        agent_rpcs += [s for s in t if s.service == "kata-agent" and s.name == "create_container"
                       and by_id.get(s.parent_span_id) is not None
                       and by_id[s.parent_span_id].name == "ttrpc.CreateContainer"]
    agent_roots = [t for t in r.traces() if any(s.service == "kata-agent" and s.name == "root-span"
                                                and not s.parent_span_id for s in t)]
    ok = not in_pod_trace and bool(shim) and bool(agent_rpcs) and bool(agent_roots)
    return Finding(ok, f"the pod's syncPod trace has {len(in_pod_trace)} Kata spans: the shim (service kata) traces "
                       f"on its own, {len(shim)} rootSpan trace(s) holding the VM's work, with "
                       f"{len(agent_rpcs)} agent create_container span(s) under its ttrpc.CreateContainer; "
                       f"the agent's root-span is a trace of its own ({len(agent_roots)})",
                   _ids(syncs[:1] + shim[:1] + agent_roots[:1]))


FINDINGS: dict[str, Callable[[list[Run]], Finding]] = {
    "kata": find_kata,
    "hello": find_hello,
    "image-pull-backoff": find_image_pull_backoff,
    "crashloop": find_crashloop,
    "slow-storage": find_slow_storage,
    "slow-pull": find_slow_pull,
    "sampling": find_sampling,
    "oci-vs-pod": find_oci_vs_pod,
    "collector-outage": find_collector_outage,
    "multi-container": find_multi_container,
    "conmonrs-orphaned": find_conmonrs_orphaned,
}


def run_scenario(name: str, say: Callable[[str], None] = lambda _: None) -> tuple[list[Run], Finding]:
    scenario = load(name)
    runs = [run(scenario, rt, say=say) for rt in scenario.runtime_types]
    finding = FINDINGS.get(name, lambda _runs: Finding(True, "ran"))(runs)
    return runs, finding


if __name__ == "__main__":  # python -m cristack.harness.scenarios NAME
    for n in sys.argv[1:] or names():
        _, f = run_scenario(n, print)
        print(f"{n}: {'OK' if f.ok else 'MISSING'} {f.summary} {f.trace_ids}")
