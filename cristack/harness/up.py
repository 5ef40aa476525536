"""``cristack up``: the long-running stack, one node or several. Drop pod manifests into a node's directory;
Ctrl-C, SIGTERM, SIGHUP (a closed terminal) or a closed stdout stop everything it started and remove its temp
dir (kept with ``--keep``, and then named).

One node is today's single stack (the machine's hostname, CRI-O's default pod network) unless it is given a
name and an index, as a node of a fleet on Kubernetes is (``--node-name $(POD_NAME) --node-index
$(POD_INDEX)``). ``--nodes N`` starts N nodes ``node-1``…``node-N`` side by side (``cristack.harness.cluster``).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from cristack.harness import podevents
from cristack.harness.cluster import Cluster
from cristack.harness.demo import DemoOptions, print_event, stack_context, start_lines
from cristack.harness.nodeplan import CLUSTER_CIDR, NODE_CIDR_MASK, NodePlan, check_mix, node_cidr, plan_nodes
from cristack.harness.procs import Cleanup, run_with_cleanup, stop_children
from cristack.harness.sink.receiver import Sink
from cristack.harness.sink.store import SpanStore
from cristack.harness.stack import StackOptions
from cristack.otel.envcontext import EnvContext
from fake_kubelet.manifests import MANIFEST_SUFFIXES  # what the kubelet reads from a static pod directory


class UpError(ValueError):
    """A combination of options that cannot run (said before anything starts; exit 2)."""


@dataclass
class UpOptions:
    """What ``cristack up`` was asked for."""

    manifests: Path | None = None  # one node: its static pod dir; N nodes: DIR/<node name> each
    # One for every node, or several dealt across the nodes round-robin; none named: crio, or a scenario's own.
    runtimes: tuple[str, ...] = ()
    runtime_type: str = "pod"  # CRI-O's
    otlp_endpoint: str | None = None  # None: the embedded sink
    otlp_port: int = 0
    http_port: int = 0
    scenario: object | None = None  # a scenarios.Scenario
    keep: bool = False
    store: SpanStore | None = None
    parent: EnvContext = field(default_factory=EnvContext)
    jaeger_ui: str | None = None
    nodes: int = 1
    spread: bool = False
    node_name: str | None = None
    node_index: int | None = None
    cluster_cidr: str = CLUSTER_CIDR
    node_cidr_mask: int = NODE_CIDR_MASK


def node_plans(opts: UpOptions) -> list[NodePlan]:
    """The nodes to start. One node keeps the machine's hostname and its runtime's default pod network unless it
    is named or indexed; N nodes are node-1..node-N with blocks 1..N of the cluster CIDR."""
    check_mix(opts.runtimes, opts.nodes)
    if opts.scenario is not None:
        if len(opts.runtimes) > 1:
            raise UpError("--scenario runs on one runtime: --runtime crio or --runtime containerd")
        opts.scenario.check_runtime(runtime_of(opts))
    if opts.nodes == 1:
        cidr = None if opts.node_index is None else node_cidr(opts.node_index, opts.cluster_cidr, opts.node_cidr_mask)
        if cidr is None and (opts.cluster_cidr != CLUSTER_CIDR or opts.node_cidr_mask != NODE_CIDR_MASK):
            raise UpError("--cluster-cidr and --node-cidr-mask-size cut pod CIDRs for --nodes N or a --node-index")
        return [NodePlan(opts.node_name, opts.node_index or 0, cidr)]
    if opts.node_name is not None or opts.node_index is not None:
        raise UpError(f"--node-name and --node-index describe one node; --nodes {opts.nodes} names its nodes "
                      f"node-1..node-{opts.nodes} and gives node i block i of --cluster-cidr")
    return plan_nodes(opts.nodes, opts.cluster_cidr, opts.node_cidr_mask)


def runtime_of(opts: UpOptions) -> str:
    """The (first) runtime named, or the scenario's own, or crio."""
    if opts.runtimes:
        return opts.runtimes[0]
    return opts.scenario.runtimes[0] if opts.scenario is not None else "crio"


def run_up(opts: UpOptions, console: Console | None = None) -> int:
    """``cristack up``; whatever happens, the processes it started are stopped before it returns."""
    # Off a terminal (a pipe, `kubectl logs`), lines are never wrapped: whoever reads them decides.
    console = console or Console(soft_wrap=not sys.stdout.isatty())
    return run_with_cleanup(lambda cleanup: _run_up(opts, console, cleanup))


def _stack_options(opts: UpOptions, endpoint: str) -> StackOptions:
    if opts.scenario is not None:
        from cristack.harness.scenarios import stack_options

        options = stack_options(opts.scenario.on(runtime_of(opts)), opts.runtime_type, endpoint, runtime_of(opts))
        options.relist_period, options.file_check_frequency = "1s", "1s"
    else:
        options = StackOptions(runtime=runtime_of(opts), runtime_type=opts.runtime_type, otlp_endpoint=endpoint)
    options.pod_events = True
    for key, value in stack_context(opts.parent).items():
        setattr(options, key, value)
    return options


def _place_manifests(opts: UpOptions, cluster: Cluster) -> list[Path]:
    """Points each node at its static pod directory and gives the nodes the starting manifests (the
    scenario's, and with several nodes the files at the top of --manifests); returns the directories."""
    start_with = list(opts.scenario.manifests) if opts.scenario is not None else []
    if opts.manifests is not None:
        opts.manifests.mkdir(parents=True, exist_ok=True)
        root = opts.manifests.resolve()
        if len(cluster.stacks) == 1:
            cluster.stacks[0].manifests = root
        else:
            start_with += sorted(p for p in root.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file()
                                 and not p.name.startswith("."))
            for plan, stack in cluster:
                stack.manifests = root / str(plan.name)
                stack.manifests.mkdir(exist_ok=True)
    cluster.add_manifests(start_with, opts.spread)
    return [stack.manifests for stack in cluster.stacks]


def _run_up(opts: UpOptions, console: Console, cleanup: Cleanup) -> int:
    err = Console(stderr=True)
    try:
        plans = node_plans(opts)
    except ValueError as e:
        err.print(f"cristack up: {e}", markup=False, highlight=False)
        return 2
    links = DemoOptions(parent=opts.parent, jaeger_ui=opts.jaeger_ui)
    sink = None
    endpoint = opts.otlp_endpoint
    if endpoint is None:
        sink = Sink(opts.store)
        try:
            addrs = sink.start(f"127.0.0.1:{opts.otlp_port}", f"127.0.0.1:{opts.http_port}")
        except OSError as e:
            err.print(f"cristack up: cannot start the sink: {e}")
            return 1
        cleanup.append(sink.stop)
        endpoint = addrs.otlp_endpoint
    base = Path(tempfile.mkdtemp(prefix="cristack-up-"))
    if opts.keep:
        cleanup.append(lambda: print(f"cristack up: kept {base}", file=sys.stderr))
    else:
        cleanup.append(lambda: shutil.rmtree(base, ignore_errors=True))
    cleanup.append(stop_children)  # after the stack's own stop: anything whose handle a signal cut off
    cluster = Cluster(base, plans, _stack_options(opts, endpoint), opts.runtimes)
    dirs = _place_manifests(opts, cluster)
    if opts.scenario is not None:
        console.print(f"scenario {opts.scenario.name}: {opts.scenario.title} (see {opts.scenario.dir / 'README.md'})")
    stopped: dict[str, float] = {}
    cleanup.append(lambda: stopped.update(cluster.stop()))
    try:
        cluster.start()
    except Exception as e:  # noqa: BLE001
        err.print(f"cristack up: {e}")
        return 1
    several = len(plans) > 1
    what = f"{len(plans)} nodes ({plans[0].name}..{plans[-1].name}) running: " if several else "running "
    console.print(f"[bold]cristack up[/bold]: {what}{cluster.describe()}", highlight=False)
    if several:
        console.print(f"  drop pod manifests into: {dirs[0].parent}/<node> (one directory per node)", soft_wrap=True)
        for plan, stack in cluster:
            console.print(f"  {plan.name}: pod CIDR {plan.pod_cidr}, CRI endpoint {stack.cri_endpoint}",
                          soft_wrap=True, highlight=False)
    else:
        stack = cluster.stacks[0]
        console.print(f"  drop pod manifests into: {stack.manifests}")
        console.print(f"  CRI endpoint:            {stack.cri_endpoint}")
        if plans[0].name is not None:
            console.print(f"  node:                    {plans[0].name}"
                          + (f" (pod CIDR {plans[0].pod_cidr})" if plans[0].pod_cidr else ""), highlight=False)
    console.print(f"  traces to:               {endpoint}")
    if sink is not None and sink.addresses is not None:
        console.print(f"  live view:               {sink.addresses.query_url}/")
        console.print(f"  query API:               {sink.addresses.query_url}/api/traces?service=kubelet")
    console.print(f"  logs:                    {base}", soft_wrap=True)
    console.print(f"                           ({'kept' if opts.keep else 'removed'} on exit; pod events in "
                  f"{'<node>/' if several else ''}{cluster.stacks[0].events_file.name})", soft_wrap=True)
    if opts.parent.context is not None:
        console.print(f"  pod starts are children of TRACEPARENT: trace {opts.parent.trace_id}, "
                      f"span {opts.parent.span_id}", highlight=False)
    console.print("  Ctrl-C stops everything; pod events follow:")

    stop_events = threading.Event()
    followers = []
    for plan, stack in cluster:
        prefix = f"{plan.name} " if several else ""

        def on_event(ev: podevents.PodEvent, prefix: str = prefix) -> None:
            print_event(console, ev, prefix=prefix)
            if ev.reason == "PodAdded" and ev.trace_id and links.jaeger_ui:  # the start trace's UI link
                for line in start_lines([(f"{ev.namespace}/{ev.pod}", ev.trace_id)], links):
                    console.print(prefix + line, highlight=False, soft_wrap=True)

        follower = threading.Thread(target=podevents.follow, name=f"pod-events-{plan.name}", daemon=True,
                                    args=(stack.events_file, on_event, stop_events))
        follower.start()
        followers.append(follower)

    def join_followers() -> None:
        stop_events.set()
        for follower in followers:
            follower.join(2)  # the last events (the pods' teardown) before the summary

    cleanup.append(join_followers)
    try:
        while cluster.alive():
            if stdout_closed():
                return 0
            time.sleep(0.2)
        console.print("cristack up: a component exited; stopping", style="red")
        rc = 1  # a supervisor (Kubernetes, systemd) restarts the node
    except KeyboardInterrupt:
        rc = 0
    except BrokenPipeError:
        return 0
    stopped.update(cluster.stop())
    join_followers()
    with contextlib.suppress(BrokenPipeError, OSError):
        console.print(f"stopped ({', '.join(f'{k} {v:.2f}s' for k, v in stopped.items())})")
    return rc


def stdout_closed() -> bool:
    """True when nobody reads our stdout any more (``cristack up | head``): the reader's end is gone."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return False
    poller = select.poll()
    poller.register(fd, 0)  # POLLERR and POLLHUP are always reported
    return any(ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, ev in poller.poll(0))
