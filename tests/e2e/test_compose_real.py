"""`docker compose up` for real: the repository's compose.yaml and Dockerfile on a real Docker engine, one
up/down cycle per profile, each checked as a user would: every service running (healthy where it has a
healthcheck) with no restarts, the pod traces of all three services in Jaeger's query API meeting the same
expectations as the Jaeger e2e suite (kubelet, containerd and its shims for the containerd profile's node), crictl
inside the runtime's container, a manifest dropped into examples/manifests/ running, clean component logs, and
`docker compose down -v` stopping every container on SIGTERM within the compose file's stop_grace_period (the
engine SIGKILLs after it: none may need that) and leaving no container, network or volume behind.

Run by scripts/compose-e2e.sh (.ci/run runs it), which prepares the engine, the compose plugin and stand-ins for
images that cannot be pulled here; directly, this module skips unless CRISTACK_COMPOSE_E2E=1. A profile is one
entry in PROFILES: its compose options, the services it names to `up`, the services that run and its checks."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from cristack.harness import expectations, scenarios
from cristack.harness.assertions import Expected, pod_start, pod_uid
from cristack.harness.backends import JaegerBackend
from cristack.harness.sink.store import Span
from cristack.harness.tracequery import JaegerQuery
from tests.support.dockercompose import Compose, docker, engine_objects
from tests.support.kubelet import wait_for

REPO = Path(__file__).resolve().parents[2]
JAEGER_URL = "http://127.0.0.1:16686"
QUERY = JaegerQuery(JAEGER_URL)
JAEGER = JaegerBackend.kubelet_syncs(JAEGER_URL)
COMPONENTS = ("conmon", "crio", "kubelet")
CONTAINERD_NODE = ("containerd", "containerd-kubelet")  # the containerd profile's node, beside the CRI-O one
KUBELETS = ("kubelet", "containerd-kubelet")

if os.environ.get("CRISTACK_COMPOSE_E2E") != "1":
    pytest.skip("the real-engine compose test runs through scripts/compose-e2e.sh (root or a Docker engine; "
                ".ci/run runs it)", allow_module_level=True)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def is_create_of(pod: str) -> Callable[[list[Span]], bool]:
    return lambda t: any(s.name == "syncPod" and s.attributes.get("k8s.pod.name") == pod
                         and s.attributes.get("k8s.pod.update_type") == "create" for s in t)


@dataclass
class Dropped:
    """A pod manifest dropped into examples/manifests/ (the kubelet's bind-mounted static pod directory),
    removed again however the test ends."""

    path: Path
    uid: str

    @classmethod
    def of(cls, manifest: Path, name: str) -> Dropped:
        doc = yaml.safe_load(manifest.read_text())
        uid = str(uuid.uuid4())
        doc["metadata"] = {**doc["metadata"], "name": name, "uid": uid}
        path = REPO / "examples" / "manifests" / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(0o644)  # the kubelet runs as the image's user
        return cls(path, uid)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class Run:
    """One profile's stack while it is up: compose, the traces' trace ids it found, manifests it dropped."""

    compose: Compose
    found: dict[str, str] = field(default_factory=dict)  # what -> trace id
    dropped: list[Dropped] = field(default_factory=list)

    def drop(self, manifest: Path, name: str) -> Dropped:
        d = Dropped.of(manifest, name)
        self.dropped.append(d)
        return d


# -- checks (each profile lists the ones it runs) --------------------------------------------------------------


# conmon-rs's spans that watch a container end when it exits: the start trace of a pod still running lacks them.
WATCHING = {"watch", "watch_grandchild", "cgroup_handling", "oom_handling_cgroup_v1", "wait_for_exit_code",
            "write_exit_path"}
WHILE_RUNNING = [e for e in expectations.POD_START if e.child not in WATCHING]


def web_pod_trace(run: Run) -> None:
    """The shipped static pod's start (nginx, still running): one trace with kubelet, crio and conmonrs spans and
    every expected edge but those that end with the container."""
    while_running = Expected(edges=tuple(WHILE_RUNNING), name="pod start, container still running")
    trace = JAEGER.wait_for_trace(while_running, match=is_create_of("web"), timeout=60)
    assert {"kubelet", "crio", "conmonrs"} <= {s.service for s in trace}
    assert all(ok for _, ok in expectations.check(trace, "pod", WHILE_RUNNING)), \
        expectations.diff(trace, "pod", WHILE_RUNNING)
    run.found["web"] = trace[0].trace_id


def is_shim(service: str) -> bool:
    return expectations.role(service) == expectations.SHIM


def containerd_web_pod_trace(run: Run) -> None:
    """The same static pod's start on the containerd node: one trace with kubelet, containerd and shim spans
    (``containerd-shim-<sandbox id>``, exported by the shim fake-containerd started in its own container), every
    edge of containerd's pod start (nothing of it waits for the container to end)."""
    trace = JAEGER.wait_for_trace(pod_start(runtime="containerd"), match=is_create_of("web"), timeout=60)
    services = {s.service for s in trace}
    assert {"kubelet", "containerd"} <= services and any(is_shim(s) for s in services), services
    assert "crio" not in services
    assert all(ok for _, ok in expectations.check(trace, "containerd")), expectations.diff(trace, "containerd")
    run.found["containerd-web"] = trace[0].trace_id


def crictl_in_the_crio_container(run: Run) -> None:
    """The README's crictl commands, inside the crio container."""
    pods = run.compose.exec("crio", "crictl", "pods")
    assert any(" web " in line and " Ready " in line for line in pods.splitlines()), pods
    ps = run.compose.exec("crio", "crictl", "ps")
    assert any(" nginx " in line and " Running " in line for line in ps.splitlines()), ps
    nginx = run.compose.exec("crio", "crictl", "ps", "-q", "--name", "nginx").strip()
    assert nginx and "\r" not in nginx, repr(nginx)
    logs = wait_for("nginx's log through crictl logs", lambda: run.compose.exec("crio", "crictl", "logs", nginx),
                    timeout=30, interval=0.5)
    assert logs.strip()


def crictl_in_the_containerd_container(run: Run) -> None:
    """crictl inside the containerd container talks to containerd's socket (its own /etc/crictl.yaml)."""
    version = run.compose.exec("containerd", "crictl", "version")
    assert "RuntimeName:  containerd" in version, version
    pods = run.compose.exec("containerd", "crictl", "pods")
    assert any(" web " in line and " Ready " in line for line in pods.splitlines()), pods
    ps = run.compose.exec("containerd", "crictl", "ps")
    assert any(" nginx " in line and " Running " in line for line in ps.splitlines()), ps


def dropped_manifest_runs(run: Run, runtime: str = "crio") -> None:
    """A Pod YAML copied into examples/manifests/ runs (its trace reaches Jaeger complete); removed, it goes."""
    d = run.drop(REPO / "examples" / "pods" / "hello.yaml", f"e2e-{uuid.uuid4().hex[:8]}")
    shape = expectations.shape(runtime)
    trace = JAEGER.wait_for_trace(pod_start(runtime=runtime), match=pod_uid(d.uid), timeout=60)
    assert all(ok for _, ok in expectations.check(trace, shape)), expectations.diff(trace, shape)
    run.found[f"dropped-{runtime}"] = trace[0].trace_id
    name = d.path.stem
    assert name in run.compose.exec(runtime, "crictl", "pods", "--name", name)
    d.remove()
    wait_for(f"pod {name} torn down once its manifest is gone",
             lambda: " Ready " not in run.compose.exec(runtime, "crictl", "pods", "--name", name), timeout=60,
             interval=0.5)


def dropped_manifest_runs_on_containerd(run: Run) -> None:
    """The same on the containerd node (the manifest directory is both kubelets')."""
    dropped_manifest_runs(run, "containerd")


def through_the_collector(run: Run) -> None:
    """With deploy/collector.env the spans reach Jaeger through the collector: its debug exporter logged them."""
    trace_id = run.found["web"]
    wait_for("the web pod's trace in the collector's debug output", lambda: trace_id in run.compose.logs("collector"),
             timeout=30, interval=0.5)


class _JaegerRun(scenarios.Run):
    """A scenario run whose traces come from Jaeger's API, so that the kata scenario's own finding judges them."""

    def __init__(self, traces: list[list[Span]]) -> None:
        super().__init__(scenarios.load("kata"), "pod", None, {}, 0)  # type: ignore[arg-type]
        self._traces = traces

    def traces(self) -> list[list[Span]]:
        return self._traces


def kata_pod_traces(run: Run) -> None:
    """A pod with runtimeClassName kata: the shim's and the agent's traces reach Jaeger through the forwarder, as
    the kata workshop scenario finds them."""
    run.drop(scenarios.load("kata").manifests[0], "vm-pod")

    def finding():
        seen: dict[str, list[Span]] = {}
        for service, operation in (("kubelet", "syncPod"), ("kata", ""), ("kata-agent", "")):
            for t in QUERY.traces(service, operation, limit=200):
                seen.setdefault(t[0].trace_id, t)
        found = scenarios.find(scenarios.load("kata"), [_JaegerRun(list(seen.values()))])
        return found if found.ok else None

    found = wait_for("the kata pod's traces (shim and agent) in Jaeger", finding, timeout=60, interval=0.5)
    run.found["kata"] = found.trace_ids[0]


@dataclass(frozen=True)
class Profile:
    name: str
    args: tuple[str, ...]  # what a user adds to `docker compose`
    services: frozenset[str]
    checks: tuple[Callable[[Run], None], ...]
    targets: tuple[str, ...] = ()  # services named to `up` (with their dependencies): none, every one enabled


BASE = frozenset({"jaeger", *COMPONENTS})
PROFILES = (
    Profile("default", (), BASE, (web_pod_trace, crictl_in_the_crio_container, dropped_manifest_runs)),
    Profile("collector", ("--env-file", "deploy/collector.env"), BASE | {"collector"},
            (web_pod_trace, through_the_collector)),
    Profile("kata", ("--profile", "kata"), BASE | {"trace-forwarder"}, (web_pod_trace, kata_pod_traces)),
    Profile("containerd", ("--profile", "containerd"), BASE | set(CONTAINERD_NODE),
            (web_pod_trace, containerd_web_pod_trace, crictl_in_the_containerd_container,
             dropped_manifest_runs_on_containerd)),
    # The README's containerd node alone: `docker compose --profile containerd up containerd-kubelet`.
    Profile("containerd-alone", ("--profile", "containerd"), frozenset({"jaeger", *CONTAINERD_NODE}),
            (containerd_web_pod_trace, crictl_in_the_containerd_container), targets=("containerd-kubelet",)),
)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_compose_up_for_real(profile: Profile) -> None:
    compose = Compose(REPO, profile.args)
    before = engine_objects()
    run = Run(compose)
    failure = None
    try:
        started = time.monotonic()
        compose("up", "-d", "--wait", "--wait-timeout", "180", *profile.targets, timeout=400)
        print(f"\n[{profile.name}] up -d --wait: {time.monotonic() - started:.1f}s", flush=True)
        containers = compose.containers()
        assert {compose.service_of(c) for c in containers} == profile.services
        for c in containers:
            health = (c["State"].get("Health") or {}).get("Status", "none")
            assert c["State"]["Status"] == "running" and health in ("healthy", "none"), (c["Name"], c["State"])
            assert c["RestartCount"] == 0, (c["Name"], compose.logs(compose.service_of(c))[-3000:])
        for check in profile.checks:
            check(run)
        logs = {svc: compose.logs(svc) for svc in (*COMPONENTS, *CONTAINERD_NODE) if svc in profile.services}
        for svc, text in logs.items():
            assert "Traceback" not in text and " ERROR " not in text, f"{svc}:\n{text[-3000:]}"
            assert "cannot export spans" not in text, f"{svc}:\n{text[-3000:]}"
        for kubelet in set(KUBELETS) & set(logs):
            assert "failed to get device" not in logs[kubelet], logs[kubelet][-3000:]
    except BaseException as err:
        failure = err
        print(f"\n[{profile.name}] failed; the stack's logs (tail):\n{compose.logs()[-8000:]}", flush=True)
        raise
    finally:
        for d in run.dropped:
            d.remove()
        down = compose.down("-v")
        after = engine_objects()
        print(f"[{profile.name}] down -v: {down.seconds:.2f}s; " + ", ".join(
            f"{s.service} {s.seconds:.2f}s (signals {'+'.join(s.signals)}, exit {s.exit_code})"
            for s in down.stopped.values()),
            flush=True)
    if failure is None:
        assert {s.service for s in down.stopped.values()} == profile.services
        killed = {name: s for name, s in down.stopped.items() if s.killed}
        assert not killed, f"stopped only by SIGKILL after stop_grace_period: {killed}"
        assert all(s.exit_code in ("0", "143") for s in down.stopped.values()), down.stopped
        assert after == before, f"left behind: { {k: after[k] - before[k] for k in after} }"
        assert not docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={compose.project}").strip()
