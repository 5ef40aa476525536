"""Workshop scenarios: ``examples/scenarios/NAME/`` (scenario.toml, manifests, faults, README, finding.py),
each run through the whole stack against the embedded sink, with the finding a workshop
exercise is about checked on the spans that came back by ``find(runs)`` in the folder's finding.py
(helpers for it below: ``sync_rows``, ``ids``, ``children``). A new scenario is a new folder.

A scenario's ``scenario.toml``:

    title = "..."
    mode = "runonce" | "timed"        # run the pods to completion, or until `until` holds (at most duration_s)
    duration_s = 30
    until = "spans wait_for_exit_code 6"  # a condition (cristack.harness.scenario_conditions), after every action
    runtime_types = ["pod"]           # each runs once; oci-vs-pod lists both
    kubelet_sampling = 1000000        # samplingRatePerMillion
    crio_sampling = 1000000           # tracing_sampling_rate_per_million
    backoff_base = "10s"
    faults = "faults.toml"            # mock-only fault injection for fake-crio
    pull_bandwidth_mbps = 0           # mock-only: simulated registry bandwidth
    pods = 1                          # copies of each manifest (with distinct names)
    [[action]]                        # changes, in file order: replace-manifest, add-manifest, stop-sink, start-sink
    after = "sync app ImagePullBackOff"   # once this holds (a condition, or a list held one after the other),
    at_s = 4.0                        # and this many seconds passed (a loaded machine moves what a time shows)
    do = "replace-manifest"
    file = "app.yaml"
    with = "fixed/app.yaml"
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from cristack.config.durations import parse_duration
from cristack.config.tomlconf import read_toml
from cristack.harness.jaeger import free_ports
from cristack.harness.keptlogs import KeptLogs
from cristack.harness.procs import Proc
from cristack.harness.scenario_conditions import Condition, Progress, needs, watch
from cristack.harness.scenario_conditions import parse as parse_condition
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
    after: list[Condition] = field(default_factory=list)  # waited for one after the other


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
    until: Condition | None = None  # a timed run ends once every action ran and this holds

    @property
    def manifests(self) -> list[Path]:
        return sorted((self.dir / "manifests").glob("*.yaml"))


def scenarios_dir() -> Path:
    return example("scenarios")


def names(root: Path | None = None) -> list[str]:
    """The scenarios: every folder of ``root`` (default the shipped examples/scenarios/) with a scenario.toml."""
    return sorted(p.parent.name for p in (root or scenarios_dir()).glob("*/scenario.toml"))


def load(name: str, root: Path | None = None) -> Scenario:
    """Reads examples/scenarios/NAME/scenario.toml (or ROOT/NAME/); ConfigError names the file and key."""
    path = (root or scenarios_dir()) / name / "scenario.toml"
    if not path.is_file():
        raise ConfigError(str(path), "", f"no scenario {name!r} (known: {', '.join(names(root))})")
    doc = read_toml(path)
    known = {"title", "mode", "duration_s", "runtime_types", "kubelet_sampling", "crio_sampling", "backoff_base",
             "faults", "pull_bandwidth_mbps", "pods", "action", "kata", "until"}
    for key in doc:
        if key not in known:
            raise ConfigError(str(path), key, "unknown key")
    if doc.get("mode", "runonce") not in ("runonce", "timed"):
        raise ConfigError(str(path), "mode", "expected runonce or timed")
    actions = []
    for i, a in enumerate(doc.get("action", [])):
        if a.get("do") not in ACTIONS:
            raise ConfigError(str(path), f"action[{i}].do", f"expected one of {', '.join(ACTIONS)}")
        given = a.get("after", [])
        after = [_condition(path, f"action[{i}].after", c) for c in ([given] if isinstance(given, str) else given)]
        actions.append(Action(float(a.get("at_s", 0)), a["do"], a.get("file", ""), a.get("with", ""), after))
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
        kata=bool(doc.get("kata", False)), actions=actions,
        until=_condition(path, "until", doc["until"]) if "until" in doc else None)


def _condition(path: Path, key: str, text: object) -> Condition:
    try:
        return parse_condition(str(text))
    except ValueError as err:
        raise ConfigError(str(path), key, str(err)) from None


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
    opts = StackOptions(runtime_type=runtime_type, otlp_endpoint=otlp_endpoint, relist_period="0.2s",
                        backoff_base=scenario.backoff_base, backoff_max=backoff_max(scenario), gc_period="1s",
                        file_check_frequency="0.2s",
                        crio_sampling_per_million=scenario.crio_sampling,
                        kubelet_sampling_per_million=scenario.kubelet_sampling, crio_args=crio_args,
                        pull_latency_ms=30)
    needs([*([scenario.until] if scenario.until else []), *(c for a in scenario.actions for c in a.after)], opts)
    return opts


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
    forwarder = None
    try:
        if scenario.kata:
            forwarder = _start_kata(stack, base, f"127.0.0.1:{grpc_port}")
        kubelet = stack.start(runonce=scenario.mode == "runonce")

        def act(action: Action) -> None:
            nonlocal sink
            sink = _act(action, scenario, stack, sink, store, grpc_port, http_port)

        rc = _drive(scenario, Progress(store, stack, runtime_type), kubelet, act, say, tick=kept.sweep)
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


def _drive(scenario: Scenario, progress: Progress, kubelet: Proc, act: Callable[[Action], None],
           say: Callable[[str], None], tick: Callable[[], None] = lambda: None) -> int | None:
    """Takes the scenario's actions in order, each once its ``at_s`` has passed and its ``after`` conditions have
    held one after the other, until the run is over: the kubelet's --runonce exit (its code is returned), or,
    timed, ``until`` holding after the last action; at most ``duration_s`` (runonce: 120 s), after which the
    actions left run. ``tick`` runs on every turn of the loop (the kept logs' sweep)."""
    started = time.monotonic()
    end = started + (scenario.duration_s if scenario.mode == "timed" else 120)
    until = scenario.until if scenario.mode == "timed" else None
    steps: list[Action | None] = [*scenario.actions, *([None] if until is not None else [])]  # None: the end
    conds: list[Condition] = []  # what the next step still waits for, in order
    check: Callable[[], bool] | None = None  # conds[0], watched since it became the first
    if steps:
        conds = list(steps[0].after) if steps[0] is not None else [until]
    while time.monotonic() < end:
        while steps and (steps[0] is None or steps[0].at_s <= time.monotonic() - started):
            if conds:
                check = check or watch(conds[0], progress)
                if not check():
                    break
                conds.pop(0)
                check = None
                continue
            step = steps.pop(0)
            if step is None:
                return None
            because = f" ({', '.join(map(str, step.after))})" if step.after else ""
            say(f"  … at {time.monotonic() - started:.1f}s{because}: {step.do} {step.file}".rstrip())
            act(step)
            if steps:
                conds = list(steps[0].after) if steps[0] is not None else [until]
        tick()
        if scenario.mode == "runonce" and kubelet.popen.poll() is not None:
            return kubelet.popen.returncode
        time.sleep(0.05)
    if conds:
        say(f"  … not seen within {scenario.duration_s:g}s: {conds[0]}")
    for step in steps:
        if step is not None:
            act(step)
    return None


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
    message: str  # the reason's message (back-off 800ms restarting failed container=...)
    calls: list[str]  # the kubelet's CRI calls under syncPod, in order; a failed one ends in ✗


@dataclass
class Finding:
    ok: bool
    summary: str
    trace_ids: list[str] = field(default_factory=list)  # shown as trees (terminal and HTML)
    details: dict[str, Any] = field(default_factory=dict)
    timeline: list[SyncRow] = field(default_factory=list)  # every sync of the pod the exercise is about
    checked: bool = True  # False: the scenario's folder says nothing to look for, so nothing was


FINDING_FILE = "finding.py"


def find(scenario: Scenario, runs: list[Run]) -> Finding:
    """The scenario's finding on ``runs``, by ``find(runs)`` of the ``finding.py`` in its own folder. A folder
    without one ran but checked nothing, and says so: it is never reported as seen."""
    path = scenario.dir / FINDING_FILE
    if not path.is_file():
        return Finding(False, f"nothing checked: {scenario.dir.name}/ has no {FINDING_FILE} saying what to find",
                       checked=False)
    return load_finding(path)(runs)


def load_finding(path: Path) -> Callable[[list[Run]], Finding]:
    """``find`` of a scenario's ``finding.py``; ConfigError naming the file when it has none."""
    found = getattr(finding_module(path), "find", None)
    if not callable(found):
        raise ConfigError(str(path), "find", "a scenario's finding.py defines find(runs) -> Finding")
    return found


def finding_module(path: Path) -> ModuleType:
    """A scenario's ``finding.py``, imported from its folder."""
    module_name = f"cristack_scenario_{path.parent.name.replace('-', '_')}_finding"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(str(path), "", "not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # where dataclasses (and pickling) look a class's module up
    spec.loader.exec_module(module)
    return module


def sync_rows(r: Run, pod: str) -> list[SyncRow]:
    """Every ``syncPod`` trace of ``pod`` as a :class:`SyncRow`, in start order."""
    rows = []
    for t in r.sync_traces(pod):
        root = next(s for s in t if s.name == "syncPod" and not s.parent_span_id)
        exc = next((e for e in root.events if e.name == "exception"), None)
        calls = [c.name.rsplit("/", 1)[-1] + ("✗" if c.status == "ERROR" else "") for c in
                 sorted(children(t, root), key=lambda c: c.start) if c.service == "kubelet" and c.kind == "CLIENT"]
        rows.append(SyncRow(root.trace_id, root.start, pod, str(root.attributes.get("k8s.pod.uid", "")),
                            str(root.attributes.get("k8s.pod.update_type", "")),
                            str(exc.attributes.get("exception.type", "")) if exc else "",
                            str(exc.attributes.get("exception.message", "")) if exc else "", calls))
    return rows


def ids(traces: list[list[Span]]) -> list[str]:
    return [t[0].trace_id for t in traces]


def children(trace: list[Span], parent: Span) -> list[Span]:
    return [s for s in trace if s.parent_span_id == parent.span_id]


def run_scenario(name: str, say: Callable[[str], None] = lambda _: None) -> tuple[list[Run], Finding]:
    """Runs scenario ``name`` once per runtime type and checks its finding on the runs."""
    scenario = load(name)
    runs = [run(scenario, rt, say=say) for rt in scenario.runtime_types]
    return runs, find(scenario, runs)


if __name__ == "__main__":  # python -m cristack.harness.scenarios NAME
    for n in sys.argv[1:] or names():
        _, f = run_scenario(n, print)
        print(f"{n}: {'OK' if f.ok else 'MISSING'} {f.summary} {f.trace_ids}")
