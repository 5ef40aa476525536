"""``cristack``: demo | up | sink | check | snapshot | diff | load | fleet (the user-facing command; argument parsing
only)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from cristack.harness import argtypes
from cristack.harness.nodeplan import CLUSTER_CIDR, NODE_CIDR_MASK
from cristack.wire.endpoints import parse_endpoint


def _store(args: argparse.Namespace):  # noqa: ANN202 - a SpanStore, imported late like the other commands do
    from cristack.harness.sink.store import SpanStore

    return SpanStore(max_spans=args.max_spans, max_bytes=args.max_bytes, jsonl=getattr(args, "jsonl", None))


def _bounds(p: argparse.ArgumentParser) -> None:
    from cristack.harness.sink.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_SPANS

    p.add_argument("--max-spans", type=argtypes.count, default=DEFAULT_MAX_SPANS, metavar="N",
                   help=f"the sink keeps at most N spans; the oldest traces go first (default {DEFAULT_MAX_SPANS})")
    p.add_argument("--max-bytes", type=argtypes.size, default=DEFAULT_MAX_BYTES, metavar="SIZE",
                   help=f"... and at most SIZE of memory for them: their OTLP encoding and the objects that hold it "
                        f"(default {DEFAULT_MAX_BYTES // 2**20}MiB); one trace keeps at most 10000 spans and 5MB; "
                        "/api/sink/stats counts what was dropped")


def _nodes_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=argtypes.count, default=1, metavar="N",
                   help="run N independent nodes, node-1..node-N, each with its own pod CIDR, all tracing to one "
                        "endpoint (default 1)")
    p.add_argument("--spread", action="store_true",
                   help="with --nodes: deal the pod manifests across the nodes instead of giving each node all")


def _runtime_arguments(p: argparse.ArgumentParser, mix: bool = True) -> None:
    """--runtime and CRI-O's --runtime-type, for demo, up and load alike (``_runtime_type`` checks them)."""
    p.add_argument("--runtime", type=argtypes.runtimes, default=None, metavar="NAME" + ("[,NAME]" if mix else ""),
                   help="the node's CRI runtime: crio (fake-crio, with fake-conmon for runtime type pod; the "
                        "default) or containerd (fake-containerd, which runs each pod under a shim of its own)"
                        + ("; with --nodes N a list is dealt round-robin (crio,containerd)" if mix else ""))
    p.add_argument("--runtime-type", choices=("pod", "oci"), default=None,
                   help="CRI-O's runtime type: pod (through fake-conmon, conmonrs spans; the default) or oci "
                        "(fake-crio runs containers itself)")


def _runtime_type(prog: str, args: argparse.Namespace) -> str | None:
    """The runtime type for the CRI-O nodes (pod unless given); None, said, when it was given with no CRI-O node."""
    if args.runtime_type is not None and "crio" not in (args.runtime or ("crio",)):
        print(f"{prog}: --runtime-type is CRI-O's (oci, or pod through fake-conmon); containerd has none: "
              "fake-containerd runs every pod under its runc shim", file=sys.stderr)
        return None
    return args.runtime_type or "pod"


def _cidr_arguments(p: argparse.ArgumentParser, cluster_cidr: str = CLUSTER_CIDR) -> None:
    """How the nodes' pod CIDRs are cut (``cristack.harness.nodeplan``), for up, load and fleet alike."""
    p.add_argument("--cluster-cidr", metavar="CIDR", default=cluster_cidr,
                   help=f"the pod network that nodes take their pod CIDRs from (default {cluster_cidr})")
    p.add_argument("--node-cidr-mask-size", metavar="BITS", type=int, default=NODE_CIDR_MASK,
                   help=f"prefix length of each node's pod CIDR (default {NODE_CIDR_MASK})")


def _env_context(prog: str):  # noqa: ANN202 - an EnvContext
    """TRACEPARENT/TRACESTATE from our environment; a malformed one is ignored with a warning (the spec's way)."""
    from cristack.otel.envcontext import from_environment

    parent = from_environment()
    if parent.warning:
        print(f"{prog}: warning: {parent.warning}", file=sys.stderr)
    elif parent.context is not None and not parent.sampled:
        print(f"{prog}: warning: TRACEPARENT's flags say not sampled, so the kubelet records no pod-start "
              "trace (parent-based sampling); use flags 01 to see them", file=sys.stderr)
    return parent


def demo(args: argparse.Namespace) -> int:
    from cristack.harness import scenarios
    from cristack.harness.demo import DemoOptions, run_demo
    from cristack.harness.demo_scenarios import run_scenarios

    runtime_type = _runtime_type("cristack demo", args)
    if runtime_type is None:
        return 2
    if args.scenario and len(args.runtime or ()) > 1:
        print("cristack demo: --scenario runs on one runtime at a time: --runtime crio or --runtime containerd",
              file=sys.stderr)
        return 2
    opts = DemoOptions(pods=[Path(p) for p in args.pod], runtimes=args.runtime or (), runtime_type=runtime_type,
                       otlp_endpoint=args.otlp_endpoint, json_out=args.json, html_out=args.html, keep=args.keep,
                       quiet=args.quiet, wide=args.wide, allow_export_failure=args.allow_export_failure,
                       parent=_env_context("cristack demo"), jaeger_ui=args.jaeger_ui, nodes=args.nodes,
                       spread=args.spread)
    if args.list:
        print_scenario_list(scenarios)
        return 0
    if args.scenario:
        known = scenarios.names()
        wanted = known if args.scenario == "all" else [args.scenario]
        if args.scenario != "all" and args.scenario not in known:
            print(f"cristack demo: no scenario {args.scenario!r}; `cristack demo --list` shows them", file=sys.stderr)
            return 2
        return run_scenarios(wanted, opts)
    return run_demo(opts)


def print_scenario_list(scenarios) -> None:  # noqa: ANN001 - the cristack.harness.scenarios module
    """One scenario a line, its title whole: wrapped under itself at $COLUMNS or the terminal's width (80 in a
    pipe)."""
    import textwrap

    from cristack.harness.render.terminal import output_width

    width = output_width(80)
    names = scenarios.names()
    indent = max(map(len, names)) + 2
    for name in names:
        title = scenarios.load(name).title
        print(textwrap.fill(f"{name:{indent - 1}s} {title}", width=max(width, indent + 30),
                            subsequent_indent=" " * indent, break_on_hyphens=False))


def up(args: argparse.Namespace) -> int:
    from cristack.harness.up import UpOptions, run_up

    scenario = None
    if args.scenario:
        from cristack.harness import scenarios
        from cristack.wire.errors import ConfigError

        try:
            scenario = scenarios.load(args.scenario)
        except ConfigError as err:
            print(f"cristack up: {err}", file=sys.stderr)
            return 2
    runtime_type = _runtime_type("cristack up", args)
    if runtime_type is None:
        return 2
    return run_up(UpOptions(
        manifests=args.manifests, runtimes=args.runtime or (), runtime_type=runtime_type,
        otlp_endpoint=args.otlp_endpoint,
        otlp_port=args.otlp_port, http_port=args.http_port, scenario=scenario, keep=args.keep, store=_store(args),
        parent=_env_context("cristack up"), jaeger_ui=args.jaeger_ui, nodes=args.nodes, spread=args.spread,
        node_name=args.node_name, node_index=args.node_index, cluster_cidr=args.cluster_cidr,
        node_cidr_mask=args.node_cidr_mask_size))


def sink(args: argparse.Namespace) -> int:
    from cristack.harness.sink.receiver import Sink

    s = Sink(_store(args), allowed_hosts=args.allowed_hosts)
    try:
        addrs = s.start(args.grpc, args.http)
    except (OSError, ValueError) as err:
        print(f"cristack sink: {err}", file=sys.stderr)
        return 1
    print(f"cristack sink: OTLP gRPC on {addrs.grpc}, OTLP HTTP /v1/traces and the query API on "
          f"http://{addrs.http} (/api/services, /api/traces?service=kubelet)", flush=True)
    print(f"cristack sink: live view on http://{addrs.http}/", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    s.stop()
    return 0


def replay(args: argparse.Namespace) -> int:
    from cristack.harness.replay import RecordingError, ReplayError
    from cristack.harness.replay import replay as run_replay

    if args.speed is not None and args.speed <= 0:
        print(f"cristack replay: --speed {args.speed:g}: a speed is above zero", file=sys.stderr)
        return 2
    try:
        result = run_replay(args.file, args.otlp_endpoint, speed=args.speed, shift_to_now=args.shift_to_now)
    except ReplayError as err:
        print(f"cristack replay: {err}", file=sys.stderr)
        return 2 if isinstance(err, RecordingError) else 1
    print(f"replayed {result.spans} spans of {len(result.trace_ids)} traces to {args.otlp_endpoint} "
          f"in {result.requests} requests; new trace ids:")
    for old, new in result.trace_ids.items():
        print(f"  {old} -> {new}")
    return 0


def check(args: argparse.Namespace) -> int:
    from cristack.harness.check import run_check

    runtime_type = _runtime_type("cristack check", args)
    if runtime_type is None:
        return 2
    if len(args.runtime or ()) > 1:
        print(f"cristack check: --runtime {','.join(args.runtime)}: one node, one runtime (crio or containerd)",
              file=sys.stderr)
        return 2
    return run_check(args.jaeger.rstrip("/"), args.otlp_endpoint, args.pod, runtime_type, args.timeout,
                     crio_tracing=not args.no_crio_tracing, parent=_env_context("cristack check"),
                     jaeger_ui=args.jaeger_ui, runtime=(args.runtime or ("crio",))[0])


def snapshot(args: argparse.Namespace) -> int:
    from cristack.harness.selectors import SelectorError
    from cristack.harness.snapshots import SnapshotError, dumps, load

    try:
        snap = load(args.source, args.trace, args.match)
    except (SnapshotError, SelectorError) as err:
        print(f"cristack snapshot: {err}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(dumps(snap))
        return 0
    try:
        args.output.write_text(dumps(snap))
    except OSError as err:
        print(f"cristack snapshot: {args.output}: {err.strerror}", file=sys.stderr)
        return 2
    print(f"cristack snapshot: {len(snap['spans'])} spans written to {args.output}")
    return 0


def diff(args: argparse.Namespace) -> int:
    from cristack.harness.selectors import SelectorError
    from cristack.harness.snapshots import SnapshotError, diff, load

    try:
        a, b = load(args.a, args.trace, args.match), load(args.b, args.trace, args.match)
    except (SnapshotError, SelectorError) as err:
        print(f"cristack diff: {err}", file=sys.stderr)
        return 2
    lines = diff(a, b, args.a, args.b)
    try:
        print("\n".join(lines) if lines else f"cristack diff: no structural difference ({len(a['spans'])} spans)")
    except BrokenPipeError:
        pass
    return 1 if lines else 0


def health(args: argparse.Namespace) -> int:
    """For container healthchecks: 0 when the endpoint serves (a socket that accepts, or an
    HTTP URL that answers 2xx)."""
    import urllib.request

    from cristack.wire.endpoints import serving

    target: str = args.endpoint
    if target.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(target, timeout=args.timeout) as resp:
                return 0 if 200 <= resp.status < 300 else 1
        except OSError as err:
            print(f"cristack health: {target}: {err}", file=sys.stderr)
            return 1
    try:
        ep = parse_endpoint(target)
    except ValueError as err:
        print(f"cristack health: {err}", file=sys.stderr)
        return 2
    if serving(ep, timeout=args.timeout):
        return 0
    print(f"cristack health: nothing serves at {ep}", file=sys.stderr)
    return 1


def trace_forwarder(args: argparse.Namespace) -> int:
    from cristack.otel import logs
    from fake_kata.forwarder import main as forwarder_main

    logs.setup("trace-forwarder", logs.parse_level(args.log_level))
    return forwarder_main(args.listen, args.otlp_endpoint)


def _add_load_parser(sub) -> None:  # noqa: ANN001 - argparse's private _SubParsersAction
    lp = sub.add_parser("load", help="create and tear down pods at a steady rate across N nodes (pipeline load)")
    lp.add_argument("--nodes", type=argtypes.positive(int), default=1, metavar="N",
                    help="nodes node-1..node-N (default 1)")
    lp.add_argument("--pods-per-second", type=argtypes.positive(float), required=True, metavar="R",
                    help="pods created per second over all nodes, round-robin")
    lp.add_argument("--duration", type=argtypes.positive(float), required=True, metavar="SECONDS",
                    help="how long to create pods")
    lp.add_argument("--otlp-endpoint", type=argtypes.endpoint, required=True, metavar="HOST:PORT",
                    help="where every node sends its traces (OTLP gRPC)")
    lp.add_argument("--pod-lifetime", type=argtypes.positive(float), default=10.0, metavar="SECONDS",
                    help="each pod's manifest is removed this long after it was written (default 10)")
    lp.add_argument("--interval", type=argtypes.positive(float), default=5.0, metavar="SECONDS",
                    help="seconds between progress lines (default 5)")
    _runtime_arguments(lp)
    _cidr_arguments(lp)
    lp.add_argument("--keep", action="store_true", help="keep the nodes' temp dir (state, logs); its path is printed")
    lp.set_defaults(func=load)


def _nodes_fit(prog: str, args: argparse.Namespace) -> bool:
    """Whether --nodes nodes fit the cluster CIDR as cut; says why not (load, fleet)."""
    from cristack.harness.nodeplan import ClusterError, plan_nodes

    try:
        plan_nodes(args.nodes, args.cluster_cidr, args.node_cidr_mask_size)
    except ClusterError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return False
    return True


def load(args: argparse.Namespace) -> int:
    from cristack.harness.load import LoadOptions, run_load
    from cristack.harness.nodeplan import ClusterError, check_mix

    if not _nodes_fit("cristack load", args):
        return 2
    runtime_type = _runtime_type("cristack load", args)
    if runtime_type is None:
        return 2
    runtimes = args.runtime or ("crio",)
    try:
        check_mix(runtimes, args.nodes)
    except ClusterError as err:
        print(f"cristack load: {err}", file=sys.stderr)
        return 2
    return run_load(LoadOptions(nodes=args.nodes, rate=args.pods_per_second, duration=args.duration,
                                otlp_endpoint=args.otlp_endpoint, lifetime=args.pod_lifetime, interval=args.interval,
                                runtimes=runtimes, runtime_type=runtime_type, cluster_cidr=args.cluster_cidr,
                                node_cidr_mask=args.node_cidr_mask_size, keep=args.keep))


_RUNTIME_NAMES = {"crio": "CRI-O", "containerd": "containerd"}


def _add_fleet_parser(sub) -> None:  # noqa: ANN001 - argparse's private _SubParsersAction
    from cristack.harness.fleet.catalogue import RUNTIMES
    from cristack.harness.fleet.nodes import FAULT_KINDS, FAULT_RUNTIMES, FLEET_CIDR

    fp = sub.add_parser("fleet", help="the traces of N nodes from one process, re-issued from live captures")
    fp.add_argument("--nodes", type=argtypes.positive(int), default=1000, metavar="N", help="nodes node-1..node-N "
                    "(default 1000)")
    fp.add_argument("--otlp-endpoint", type=argtypes.endpoint, required=True, metavar="HOST:PORT",
                    help="where every node's traces go (OTLP gRPC)")
    fp.add_argument("--duration", type=argtypes.positive(float), metavar="SECONDS",
                    help="how long (default: until stopped)")
    fp.add_argument("--pods-per-second", type=float, metavar="R",
                    help="pods started per second over all nodes (default: one per node every 50 s)")
    fp.add_argument("--pod-lifetime", type=argtypes.positive(float), default=30.0, metavar="SECONDS",
                    help="each pod's manifest is removed this long after it was written (default 30)")
    fp.add_argument("--faults", type=argtypes.shares("fault", FAULT_KINDS), default="crashloop=0.02,pull-backoff=0.02,"
                    "slow-storage=0.02", metavar="KIND=SHARE,...",
                    help=f"share of the pods started that fail: {', '.join(FAULT_KINDS)} (default 0.02 each)"
                         + "".join(f"; {kind} on {' and '.join(_RUNTIME_NAMES.get(r, r) for r in runtimes)} nodes "
                                   "only (its fault injection; a pod drawn for it elsewhere starts as a plain one)"
                                   for kind, runtimes in FAULT_RUNTIMES.items() if set(RUNTIMES) - set(runtimes)))
    fp.add_argument("--runtimes", type=argtypes.shares("runtime", RUNTIMES), default="crio=1", metavar="NAME=SHARE,...",
                    help=f"share of the nodes per runtime: {', '.join(RUNTIMES)} (default crio=1; e.g. "
                         "crio=0.5,containerd=0.5)")
    fp.add_argument("--seed", type=int, help="the same seed gives the same nodes, pods, kinds and relative times")
    fp.add_argument("--interval", type=argtypes.positive(float), default=5.0, metavar="SECONDS",
                    help="seconds between progress lines (default 5)")
    fp.add_argument("--max-queue", type=argtypes.count, metavar="SPANS",
                    help="spans waiting for export at most; more are dropped and counted (default 65536)")
    _cidr_arguments(fp, FLEET_CIDR)  # a /12: 4,096 nodes of /24
    fp.set_defaults(func=fleet)


def fleet(args: argparse.Namespace) -> int:
    from cristack.harness.fleet.nodes import FleetModel
    from cristack.harness.fleet.run import FleetOptions, run_fleet

    if not _nodes_fit("cristack fleet", args):
        return 2
    if sum(args.faults.values()) > 1:
        print("cristack fleet: --faults: the shares add up to more than 1", file=sys.stderr)
        return 2
    if not any(args.runtimes.values()):
        print("cristack fleet: --runtimes: no runtime has a share above 0", file=sys.stderr)
        return 2
    rate = args.pods_per_second if args.pods_per_second is not None else args.nodes / 50
    if rate < 0:
        print(f"cristack fleet: --pods-per-second {rate:g}: a rate is 0 or more", file=sys.stderr)
        return 2
    model = FleetModel(nodes=args.nodes, pod_rate=rate, lifetime=args.pod_lifetime, faults=args.faults,
                       runtimes={k: v for k, v in args.runtimes.items() if v}, seed=args.seed,
                       cluster_cidr=args.cluster_cidr, node_cidr_mask=args.node_cidr_mask_size)
    return run_fleet(FleetOptions(model, args.otlp_endpoint, args.duration, args.interval, args.max_queue))


def build_parser() -> argparse.ArgumentParser:
    """``cristack`` and its commands, one function each below."""
    parser = argparse.ArgumentParser(prog="cristack", description="A mock Kubernetes node for tracing demos.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_demo_parser, _add_up_parser, _add_sink_parsers, _add_trace_file_parsers, _add_check_parser,
                _add_load_parser, _add_fleet_parser):
        add(sub)
    return parser


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    """``cristack demo``: pods (or a workshop scenario) through the whole stack, once."""
    d = sub.add_parser("demo", help="run pods through the whole stack and show their traces")
    d.add_argument("--pod", action="append", default=[], metavar="FILE",
                   help="pod manifest to run (repeatable; default examples/pods/hello.yaml)")
    _runtime_arguments(d)
    d.add_argument("--otlp-endpoint", type=argtypes.endpoint, metavar="HOST:PORT",
                   help="send traces to this collector/Jaeger instead of the embedded sink")
    d.add_argument("--json", type=Path, metavar="FILE", help="write everything received as OTLP JSON")
    d.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML waterfall")
    d.add_argument("--keep", action="store_true", help="leave the stack running afterwards (Ctrl-C stops it)")
    d.add_argument("--quiet", "-q", action="store_true", help="only the containers' output and errors")
    d.add_argument("--allow-export-failure", action="store_true",
                   help="with --otlp-endpoint: exit 0 even when the endpoint accepted nothing")
    d.add_argument("--wide", action="store_true",
                   help="full span names (CRI-O's Go package paths) on lines as long as they need")
    d.add_argument("--scenario", metavar="NAME", help="run a workshop scenario (or 'all': one line each)")
    d.add_argument("--list", action="store_true", help="list the workshop scenarios")
    d.add_argument("--jaeger-ui", metavar="URL", help="link each pod-start trace to this Jaeger UI (e.g. http://127.0.0.1:16686)")
    _nodes_arguments(d)
    d.set_defaults(func=demo)


def _add_up_parser(sub: argparse._SubParsersAction) -> None:
    """``cristack up``: the stack until Ctrl-C, fed by a static pod directory."""
    u = sub.add_parser("up", help="run the stack until Ctrl-C; drop pod manifests into its directory")
    u.add_argument("--manifests", type=Path, metavar="DIR", help="static pod directory (default: a new temp dir)")
    _runtime_arguments(u)
    u.add_argument("--otlp-endpoint", type=argtypes.endpoint, metavar="HOST:PORT",
                   help="send traces here instead of the embedded sink")
    u.add_argument("--otlp-port", type=int, default=0, help="embedded sink's OTLP gRPC port (default: free port)")
    u.add_argument("--http-port", type=int, default=0, help="embedded sink's query API port (default: free port)")
    u.add_argument("--scenario", metavar="NAME", help="start with a workshop scenario's configs and manifests")
    u.add_argument("--keep", action="store_true",
                   help="keep the stack's temp dir (state, logs) after it stops; its path is printed")
    u.add_argument("--jaeger-ui", metavar="URL", help="link each pod-start trace to this Jaeger UI (e.g. http://127.0.0.1:16686)")
    _nodes_arguments(u)
    u.add_argument("--node-name", metavar="NAME", type=argtypes.node_name,
                   help="this one node's name: the kubelet's --hostname-override and host.name on every span "
                        "(default: the machine's hostname); in a StatefulSet, $(POD_NAME)")
    u.add_argument("--node-index", metavar="I", type=argtypes.index,
                   help="this one node's pod CIDR is block I of --cluster-cidr (default: the runtime's own network, "
                        "CRI-O's 10.85.0.0/16 or containerd's 10.88.0.0/16); in a StatefulSet, $(POD_INDEX)")
    _cidr_arguments(u)
    _bounds(u)
    u.set_defaults(func=up)


def _add_sink_parsers(sub: argparse._SubParsersAction) -> None:
    """``cristack sink``, ``health`` and ``trace-forwarder``: the pieces a compose file runs alone."""
    s = sub.add_parser("sink", help="the OTLP receiver alone, with a Jaeger-compatible query API")
    s.add_argument("--grpc", default="127.0.0.1:4317", metavar="HOST:PORT", help="OTLP gRPC (default 127.0.0.1:4317)")
    s.add_argument("--http", default="127.0.0.1:4318", metavar="HOST:PORT",
                   help="OTLP HTTP /v1/traces and the query API (default 127.0.0.1:4318)")
    s.add_argument("--jsonl", type=Path, metavar="FILE",
                   help="also append every request to FILE as OTLP JSON lines (one per request; a request of more "
                        "than 1000 spans as several)")
    s.add_argument("--allowed-hosts", type=argtypes.names, action="extend", default=[], metavar="NAME[,NAME...]",
                   help="Host names the HTTP listener answers to besides IP addresses, localhost and the --http "
                        "host (others get 403, against DNS rebinding); .example.com allows a domain and its "
                        "subdomains, '*' any name. For a sink reached by name, e.g. a Service in a cluster")
    _bounds(s)
    s.set_defaults(func=sink)
    h = sub.add_parser("health", help="exit 0 when an endpoint serves (for container healthchecks)")
    h.add_argument("endpoint", help="unix:///PATH, HOST:PORT or http://HOST:PORT/PATH")
    h.add_argument("--timeout", type=float, default=2.0)
    h.set_defaults(func=health)

    f = sub.add_parser("trace-forwarder", help="read Kata-style agent span frames and export them over OTLP")
    f.add_argument("--listen", required=True, metavar="ADDR", help="unix:///PATH or HOST:PORT (the VSOCK stand-in)")
    f.add_argument("--otlp-endpoint", required=True, metavar="HOST:PORT", help="the collector (OTLP gRPC)")
    f.add_argument("--log-level", default="info")
    f.set_defaults(func=trace_forwarder)


def _add_trace_file_parsers(sub: argparse._SubParsersAction) -> None:
    """``cristack snapshot``, ``diff`` and ``replay``: traces as files."""
    sn = sub.add_parser("snapshot", help="write a trace normalised for golden-file tests")
    sn.add_argument("source", help="OTLP/JSON lines, a Jaeger API answer, or a Jaeger query URL")
    sn.add_argument("--trace", metavar="ID", help="the trace to take (when the source holds several)")
    sn.add_argument("--match", metavar="SELECTOR", help='the trace with a span that matches, e.g. span[name="syncPod"]')
    sn.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (default: stdout)")
    sn.set_defaults(func=snapshot)
    df = sub.add_parser("diff", help="compare two traces or snapshots structurally (exit 1 when they differ)")
    df.add_argument("a", help="snapshot or trace file (or Jaeger URL)")
    df.add_argument("b", help="snapshot or trace file (or Jaeger URL)")
    df.add_argument("--trace", metavar="ID", help="the trace to take from sources that hold several")
    df.add_argument("--match", metavar="SELECTOR", help="the trace with a span that matches")
    df.set_defaults(func=diff)
    r = sub.add_parser("replay", help="send a recorded OTLP/JSON file to an OTLP endpoint as new traces")
    r.add_argument("file", type=Path, metavar="FILE",
                   help="OTLP/JSON: what --json writes, or JSON lines (sink --jsonl, a Collector file export)")
    r.add_argument("--otlp-endpoint", type=argtypes.endpoint, required=True, metavar="HOST:PORT",
                   help="OTLP gRPC endpoint")
    r.add_argument("--speed", type=float, metavar="N",
                   help="pace the spans by their recorded end times, N times as fast (default: all at once)")
    r.add_argument("--shift-to-now", action="store_true",
                   help="move every timestamp by one offset so that the recording starts now")
    r.set_defaults(func=replay)


def _add_check_parser(sub: argparse._SubParsersAction) -> None:
    """``cristack check``: one pod against the user's Jaeger, its edges checked."""
    c = sub.add_parser("check", help="run a pod against your Jaeger and check the trace's edges")
    c.add_argument("--jaeger", required=True, metavar="URL", help="Jaeger query URL, e.g. http://127.0.0.1:16686")
    c.add_argument("--otlp-endpoint", type=argtypes.endpoint, metavar="HOST:PORT",
                   help="where the stack sends spans (default: the Jaeger host, port 4317)")
    c.add_argument("--pod", type=Path, metavar="FILE", help="pod manifest (default examples/pods/hello.yaml)")
    _runtime_arguments(c, mix=False)
    c.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the trace (default 60)")
    c.add_argument("--no-crio-tracing", action="store_true",
                   help="turn tracing off in the node's runtime (fake-crio and fake-conmon, or fake-containerd and "
                        "its shims), to see what a broken pipeline looks like")
    c.add_argument("--jaeger-ui", metavar="URL", help="the Jaeger UI to link the trace to (default: --jaeger)")
    c.set_defaults(func=check)


_stopping = False


def _interrupt(signum: int, _frame: object) -> None:
    """The first SIGINT, SIGTERM or SIGHUP unwinds like Ctrl-C, so that the processes a command started are
    stopped; any later one is ignored, so that the cleanup already under way runs to its end."""
    global _stopping  # noqa: PLW0603 - one flag per process, set once by a signal
    if _stopping:
        return
    _stopping = True
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.func is not sink and args.func is not trace_forwarder:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
    try:
        sys.exit(args.func(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
