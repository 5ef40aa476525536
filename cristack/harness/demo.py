"""``cristack demo``: the whole story in one command, no Docker needed.

Starts the embedded sink (or uses ``--otlp-endpoint``), the node's runtime (fake-crio and fake-conmon, or with
``--runtime containerd`` fake-containerd, which starts a shim per pod) and fake-kubelet from the shipped example
configs in a private temp dir, runs the pod manifests with ``--runonce`` while showing progress, prints the
containers' output and each pod's ``syncPod`` trace as a tree with a waterfall, and stops everything.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from cristack.containers.crilog import read_log
from cristack.harness import podevents
from cristack.harness.assertions import pod_start
from cristack.harness.cluster import Cluster
from cristack.harness.nodeplan import ClusterError, NodePlan, assign, check_mix, plan_nodes
from cristack.harness.procs import Cleanup, run_with_cleanup
from cristack.harness.render import html as html_render
from cristack.harness.render.escape import visible
from cristack.harness.render.model import TraceView, build
from cristack.harness.render.terminal import make_console, print_trace
from cristack.harness.sink.receiver import Sink
from cristack.harness.sink.store import Span, SpanStore
from cristack.harness.stack import StackOptions, example
from cristack.otel import otlpjson
from cristack.otel.envcontext import EnvContext, jaeger_link
from cristack.wording import plural
from fake_kubelet.manifests import ManifestError, parse_pod


@dataclass
class DemoOptions:
    pods: list[Path] = field(default_factory=list)
    # One for every node, or several dealt across --nodes N round-robin; none named: crio (a scenario: its own).
    runtimes: tuple[str, ...] = ()
    runtime_type: str = "pod"  # CRI-O's
    otlp_endpoint: str | None = None
    json_out: Path | None = None
    html_out: Path | None = None
    keep: bool = False
    quiet: bool = False
    wide: bool = False  # full span names (CRI-O's Go paths), lines as long as they need
    allow_export_failure: bool = False  # with --otlp-endpoint: exit 0 even when nothing was accepted there
    nodes: int = 1  # several: node-1..node-N side by side (cristack.harness.cluster)
    spread: bool = False  # deal the pods across the nodes instead of running each on every node
    timeout: float = 120.0
    parent: EnvContext = field(default_factory=EnvContext)  # TRACEPARENT/TRACESTATE: the pod starts' parent
    jaeger_ui: str | None = None  # a Jaeger UI to link each pod-start trace to


def container_output(pod_logs: Path) -> list[tuple[str, str, str]]:
    """(pod name, container, line) for every container log under the pod logs root."""
    out = []
    for log in sorted(pod_logs.glob("*/*/*.log")):
        pod_dir = log.parent.parent.name
        pod_name = pod_dir.split("_")[1] if pod_dir.count("_") >= 2 else pod_dir
        for _, line in read_log(log):
            # A tty container's lines end in the terminal's carriage return (ONLCR): not for printing.
            out.append((pod_name, log.parent.name, line.rstrip("\r")))
    return out


def start_traces(store: SpanStore) -> list[list[Span]]:
    """Each pod's first ``syncPod`` trace (update type create), in start order. Under a TRACEPARENT the pods
    share the parent's trace, and each pod's start is its ``syncPod`` subtree."""
    out = []
    for trace_id in store.trace_ids():
        spans = store.trace(trace_id)
        ids = {s.span_id for s in spans}
        roots = [s for s in spans if s.name == "syncPod" and s.parent_span_id not in ids
                 and s.attributes.get("k8s.pod.update_type") == "create"]
        if len(roots) == 1 and not roots[0].parent_span_id:
            out.append(spans)
            continue
        for root in roots:
            out.append(subtree(spans, root))
    return sorted(out, key=lambda t: min(s.start for s in t))


def subtree(spans: list[Span], root: Span) -> list[Span]:
    """``root`` and its descendants among ``spans``."""
    children: dict[str, list[Span]] = {}
    for s in spans:
        children.setdefault(s.parent_span_id, []).append(s)
    out, todo = [], [root]
    while todo:
        span = todo.pop()
        out.append(span)
        todo.extend(children.get(span.span_id, []))
    return out


def start_lines(pods: list[tuple[str, str]], opts: DemoOptions) -> list[str]:
    """``pod: trace ID`` for each pod start (and its Jaeger UI link when a UI was named)."""
    link = (lambda trace_id: f"  {jaeger_link(opts.jaeger_ui, trace_id)}") if opts.jaeger_ui else (lambda _: "")
    return [f"{visible(pod)} start: {trace_id}{link(trace_id)}" for pod, trace_id in pods]


def summary_line(store: SpanStore, shown: set[str]) -> str:
    """Everything not printed as a tree, in one line: PLEG relists, later syncs, teardown."""
    relists = other = 0
    names: dict[str, int] = {}
    for trace_id in store.trace_ids():
        if trace_id in shown:
            continue
        spans = store.trace(trace_id)
        ids = {s.span_id for s in spans}
        roots = [s for s in spans if s.parent_span_id not in ids]
        root = roots[0] if roots else spans[0]
        if root.service == "kubelet" and root.kind == "CLIENT":
            relists += 1 if root.name.endswith(("ListPodSandbox", "ListContainers")) else 0
            other += 0 if root.name.endswith(("ListPodSandbox", "ListContainers")) else 1
        else:
            label = root.name + (f" ({root.attributes['k8s.pod.update_type']})"
                                 if "k8s.pod.update_type" in root.attributes else "")
            names[label] = names.get(label, 0) + 1
    parts = [f"{relists} PLEG relist calls (one root trace each)"] if relists else []
    parts += [f"{n}× {name}" if n > 1 else name for name, n in names.items()]
    if other:
        parts.append(f"{other} other root calls")
    return "also traced: " + ", ".join(parts) if parts else ""


def wait_complete(store: SpanStore, pods: int, shapes: str | set[str], timeout: float) -> None:
    """Waits (at most ``timeout`` seconds) until ``pods`` start traces each hold every span and edge a pod start
    of one of ``shapes`` has (cristack.harness.expectations: pod, oci, containerd): completeness by shape, not by a
    quiet moment."""
    wanted = [pod_start(s) for s in ({shapes} if isinstance(shapes, str) else shapes)]

    def whole(trace: list[Span]) -> bool:
        return any(not shape.missing(trace) for shape in wanted)

    store.wait(lambda st: len(traces := start_traces(st)) >= pods and all(map(whole, traces)), timeout)


def write_outputs(store: SpanStore, views: list[tuple[str, TraceView]], opts: DemoOptions,
                  console: Console) -> None:
    if opts.json_out is not None:
        opts.json_out.write_text(otlpjson.dumps(store.export_request(), indent=1))
        console.print(f"wrote {opts.json_out} (OTLP JSON, {plural(len(store.spans()), 'span')})")
    if opts.html_out is not None:
        opts.html_out.write_text(html_render.render(views, "cristack demo"))
        console.print(f"wrote {opts.html_out} (self-contained HTML, {plural(len(views), 'trace')})")


def run_demo(opts: DemoOptions, console: Console | None = None) -> int:
    """The demo; whatever happens (Ctrl-C, SIGTERM, a closed pipe), the processes it started
    are stopped before it returns."""
    return run_with_cleanup(lambda cleanup: _run_demo(opts, console, cleanup))


def _run_demo(opts: DemoOptions, console: Console | None, cleanup: Cleanup) -> int:
    err = Console(stderr=True)
    pods = opts.pods or [example("pods", "hello.yaml")]
    refused = _refused_pods(pods, err)
    if refused is not None:
        return refused
    try:
        plans = plan_nodes(opts.nodes) if opts.nodes > 1 else [NodePlan(None, 0, None)]
        check_mix(opts.runtimes, opts.nodes)
    except (ClusterError, ValueError) as e:
        err.print(f"cristack demo: {e}", markup=False, highlight=False)
        return 2
    demo = _Demo(opts, console or make_console(), err, pods, plans)
    demo.start(cleanup)
    rc = demo.run_pods()
    if rc is None:
        return 1
    demo.show_output()
    # Stopped, every component has exported what it held and the sink has stored it: the traces are whole.
    took = demo.cluster.stop() if not opts.keep else {}
    if demo.sink is not None:
        demo.show_traces()
    if rc != 0:
        demo.show_failures()
    if opts.keep:
        return keep_running(demo.cluster, demo.sink, demo.console, rc)
    if demo.sink is not None:
        demo.sink.stop()
    elif not demo.report_export() and not opts.allow_export_failure:
        shutil.rmtree(demo.base, ignore_errors=True)
        return 1
    shutil.rmtree(demo.base, ignore_errors=True)
    demo.say(f"done in {time.monotonic() - demo.started:.1f}s (stopped in {max(took.values(), default=0):.2f}s)")
    return 0 if rc == 0 else 1


def _refused_pods(pods: list[Path], err: Console) -> int | None:
    """The exit code when a manifest is missing (2) or one the kubelet would skip (1), said before anything
    starts; None when every pod can run."""
    for p in pods:
        if not p.is_file():
            err.print(f"cristack demo: {p}: no such pod manifest")
            return 2
        try:
            parse_pod(p.read_bytes(), str(p))
        except ManifestError as e:
            err.print(f"cristack demo: the kubelet rejects this pod: {visible(e)}", markup=False, highlight=False,
                      soft_wrap=True)
            return 1
    return None


@dataclass
class _Demo:
    """One run of ``cristack demo``, step by step: start (sink, nodes), run the pods once, show what they printed
    and their start traces, and report where the spans went."""

    opts: DemoOptions
    console: Console
    err: Console
    pods: list[Path]
    plans: list[NodePlan]
    started: float = field(default_factory=time.monotonic)
    sink: Sink | None = None
    endpoint: str = ""
    base: Path = field(default_factory=Path)
    cluster: Cluster = field(init=False)
    shares: list[list[Path]] = field(default_factory=list)  # the pods each node runs

    @property
    def several(self) -> bool:
        return len(self.plans) > 1

    def say(self, *args: object, **kwargs: object) -> None:
        if not self.opts.quiet:
            self.console.print(*args, **kwargs)

    def start(self, cleanup: Cleanup) -> None:
        """The embedded sink (unless --otlp-endpoint) and the nodes' stacks in a temp dir, each undone by
        ``cleanup``; says what runs where."""
        opts = self.opts
        if opts.otlp_endpoint is None:
            self.sink = Sink()
            self.endpoint = self.sink.start().otlp_endpoint
            cleanup.append(self.sink.stop)
        else:
            self.endpoint = opts.otlp_endpoint
        self.base = Path(tempfile.mkdtemp(prefix="cristack-demo-"))
        cleanup.append(lambda: shutil.rmtree(self.base, ignore_errors=True))
        self.cluster = Cluster(self.base, self.plans, StackOptions(
            runtime_type=opts.runtime_type, otlp_endpoint=self.endpoint, relist_period="0.2s", backoff_base="1s",
            pull_latency_ms=40, pod_events=True, **stack_context(opts.parent)), runtimes=opts.runtimes)
        cleanup.append(self.cluster.stop)
        self.cluster.add_manifests(self.pods, opts.spread)
        self.shares = assign(self.pods, len(self.plans), opts.spread)
        on = f" on {len(self.plans)} nodes" if self.several else ""
        self.say(f"[bold]cristack demo[/bold]{on}: {self.cluster.describe()}, "
                 f"traces to {'the embedded sink' if self.sink else self.endpoint}", highlight=False, soft_wrap=True)
        if opts.parent.context is not None:
            self.say(f"pod starts are children of TRACEPARENT: trace {opts.parent.trace_id}, "
                     f"span {opts.parent.span_id}", highlight=False)

    def run_pods(self) -> int | None:
        """Each node's kubelet with --runonce, following their pod events; the first non-zero exit code (0 when
        all succeeded), or None when the stack failed to start (said, with the logs' tails, and stopped)."""
        stop_follow = threading.Event()
        followers: list[threading.Thread] = []
        try:
            kubelets = self.cluster.start(runonce=True)
            for plan, share in zip(self.plans, self.shares, strict=True):
                where = f" on {plan.name}" if self.several else ""
                self.say(f"running {', '.join(p.name for p in share) or 'no pods'}{where} with fake-kubelet --runonce")
            if not self.opts.quiet:
                followers = self._follow_events(stop_follow)
            deadline = time.monotonic() + self.opts.timeout
            codes = [k.popen.wait(timeout=max(0.1, deadline - time.monotonic())) for k in kubelets]
            return next((c for c in codes if c != 0), 0)
        except Exception as e:  # noqa: BLE001 - a failure to start is reported with the logs
            self.err.print(f"cristack demo: {e}")
            for plan, stack in self.cluster:
                for name, text in stack.logs().items():
                    label = f"{plan.name} {name}" if self.several else name
                    self.err.print(f"--- {label} log (tail) ---\n{text[-2000:]}", markup=False, highlight=False)
            self.cluster.stop()
            if self.sink:
                self.sink.stop()
            return None
        finally:
            stop_follow.set()
            for follower in followers:
                if follower.ident is not None:  # a signal may land while it is being started
                    follower.join(1)

    def _follow_events(self, stop: threading.Event) -> list[threading.Thread]:
        """A thread per node printing its pod events as they come (fake-kubelet's --events-file)."""
        followers = []
        for plan, stack in self.cluster:
            prefix = f"  {plan.name} " if self.several else "  "
            followers.append(threading.Thread(target=podevents.follow, daemon=True, args=(
                stack.events_file, lambda ev, prefix=prefix: print_event(self.console, ev, prefix=prefix),
                stop, 0.05)))
            followers[-1].start()
        return followers

    def show_output(self) -> None:
        if not self.opts.quiet:
            self.console.rule("container output")
        for plan, stack in self.cluster:
            where = f"{plan.name} " if self.several else ""
            for pod, ctr, line in container_output(stack.pod_logs):
                # The container's own output as it wrote it (as `kubectl logs` shows it); the names are ours to escape.
                self.console.print(f"[{where}{visible(pod)}/{visible(ctr)}] {line}", markup=False, highlight=False)

    def show_traces(self) -> None:
        """Each pod's start trace as a tree (not with --quiet), its trace id, and the --json/--html files."""
        assert self.sink is not None
        store, opts = self.sink.store, self.opts
        if opts.keep:  # still running: its spans may still be on their way
            wait_complete(store, sum(map(len, self.shares)), self.cluster.shapes, timeout=5.0)
        traces = start_traces(store)
        views, starts = [], []
        for spans in traces:
            root = next(s for s in spans if s.name == "syncPod")
            where = f" on {root.resource.get('host.name', '?')}" if self.several else ""
            views.append((f"syncPod {root.attributes.get('k8s.pod', '')}{where} · trace {root.trace_id}",
                          build(spans)))
            starts.append((f"{root.attributes.get('k8s.pod', '')}{where}", spans[0].trace_id))
        if not opts.quiet:
            self.console.rule("traces")
            for title, view in views:
                print_trace(self.console, view, title, wide=opts.wide)
            line = summary_line(store, {v.trace_id for _, v in views})
            if line:
                self.console.print(line, highlight=False)
        for line in start_lines(starts, opts):
            self.console.print(line, highlight=False, soft_wrap=True)
        write_outputs(store, views, opts, self.console)

    def show_failures(self) -> None:
        self.err.print("cristack demo: a pod failed:")
        for plan, stack in self.cluster:
            where = f"{plan.name}: " if self.several else ""
            for line in failure_lines(run_result(stack.result_file)):
                self.err.print("  " + where + line, markup=False, highlight=False, soft_wrap=True)

    def report_export(self) -> bool:
        """With --otlp-endpoint: each pod's trace ids, or that nothing was accepted there (False)."""
        logs = {f"{plan.name} {name}": text for plan, stack in self.cluster for name, text in stack.logs().items()}
        if export_failed(logs, self.endpoint):
            self.err.print(f"cristack demo: nothing was accepted at {self.endpoint}: the components could not "
                           "export their spans there", markup=False, highlight=False, soft_wrap=True)
            return False
        self.console.print(f"traces sent to {self.endpoint}:", highlight=False)
        for plan, stack in self.cluster:
            for line in trace_id_lines(run_result(stack.result_file) or [], self.opts):
                self.console.print(f"  {plan.name + ' ' if self.several else ''}{line}", highlight=False,
                                   soft_wrap=True)
        return True


def trace_id_lines(pods: list[dict], opts: DemoOptions | None = None) -> list[str]:
    """Each pod's start trace first (its first sync, the syncPod that created it), then the traces of its other
    syncs, labelled as such; ``pods`` as ``run_result`` reads them."""
    starts: dict[str, str] = {}
    for pod in pods:
        if pod.get("syncs"):
            starts.setdefault(pod["pod"], pod["syncs"][0]["traceId"])
    every = dict.fromkeys(s["traceId"] for pod in pods for s in pod.get("syncs", []))
    others = [t for t in every if t not in starts.values()]
    lines = start_lines(list(starts.items()), opts or DemoOptions())
    if others:
        lines.append(f"other syncs (running, stopping, cleanup): {', '.join(others)}")
    return lines or ["(no trace ids recorded)"]


def stack_context(parent: EnvContext) -> dict[str, str]:
    """The StackOptions that hand the kubelet a usable TRACEPARENT (and its TRACESTATE)."""
    if parent.context is None:
        return {}
    return {"traceparent": parent.traceparent, "tracestate": parent.tracestate}


def run_result(result_file: Path) -> list[dict] | None:
    """The pods of fake-kubelet's --runonce result file (phase, ok, reason, message, the trace of each sync);
    None when it wrote none."""
    try:
        return json.loads(result_file.read_text())["pods"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def failure_lines(pods: list[dict] | None) -> list[str]:
    """Why each failed pod failed: its phase, reason and message, and the trace of its last sync."""
    if pods is None:
        return ["(the kubelet wrote no result: see its log)"]
    lines = []
    for pod in pods:
        if not pod.get("ok"):
            syncs = pod.get("syncs") or [{}]
            last = syncs[-1].get("traceId", "")
            lines.append(visible(f"{pod['pod']}: {pod['phase']}, {pod['reason']}: {pod['message']}")
                         + (f" (last sync: trace {last})" if last else ""))
    return lines


def export_failed(logs: dict[str, str], endpoint: str) -> bool:
    """Whether a component could not export to ``endpoint`` and never could again (each says so in its log)."""
    failed = [text for text in logs.values() if f"cannot export spans to {endpoint}" in text]
    return bool(failed) and not any(f"exporting spans to {endpoint} works again" in text for text in failed)


def keep_running(cluster: Cluster, sink: Sink | None, console: Console, rc: int) -> int:
    """--keep: leave every node's runtime (and the sink) serving until Ctrl-C."""
    console.print(f"\nthe stack keeps running in {cluster.base} (Ctrl-C stops it):")
    for plan, stack in cluster:
        label = f"{plan.name} CRI:" if plan.name else "CRI endpoint:"
        console.print(f"  {label:14s} {stack.cri_endpoint}")
    console.print(f"  e.g.           crictl --runtime-endpoint {cluster.stacks[0].cri_endpoint} ps -a")
    if sink is not None and sink.addresses is not None:
        console.print(f"  OTLP gRPC:     {sink.addresses.otlp_endpoint}")
        console.print(f"  query API:     {sink.addresses.query_url}/api/traces?service=kubelet")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    cluster.stop()
    if sink is not None:
        sink.stop()
    return 0 if rc == 0 else 1


def print_event(console: Console, ev: podevents.PodEvent, prefix: str = "") -> None:
    """One pod event line (fake-kubelet's --events-file), after ``prefix`` (an indent, a node's name), warnings
    in yellow on a terminal."""
    line = podevents.format_line(ev, console.width - len(prefix))
    if line is not None:
        with contextlib.suppress(BrokenPipeError, OSError):
            console.print(prefix + line, markup=False, highlight=False, soft_wrap=True,
                          style="yellow" if ev.kind == "Warning" else None)
