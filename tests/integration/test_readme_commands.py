"""The README's commands run as written. Every command of every shell block in README.md is in PLAN below with how
it is checked: run (and what its output must show), run until it serves and then stopped with Ctrl-C, checked
without Docker (the compose file it would use), or not run here with the reason in the test's id. A command the
README gains without a line in PLAN fails `test_every_readme_command_has_a_plan`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import IN_CI, free_port
from tests.integration.test_workshop_guide import venv_is_makes
from tests.support.docblocks import Block, Expect, shell_blocks
from tests.support.runblocks import REPO, check_without_docker, failures, run_cached, shared_workdir

README = REPO / "README.md"
COMMANDS = [c for b in shell_blocks(README) for c in b.commands]

pytestmark = pytest.mark.timeout(900)


@dataclass
class Plan:
    how: str  # run | serve | docker | not-run
    expect: list[str] = field(default_factory=list)  # run: in the output; serve: in its output once it serves
    why: str = ""  # not-run: the reason
    needs: list[str] = field(default_factory=list)  # serve-first commands (started, left running, then stopped)
    rewrite: dict[str, str] = field(default_factory=dict)  # fixed ports and shared paths, for parallel runs


TMP = "/tmp/cristack/"  # the README's example paths: a private directory per run instead
CONMON = ".venv/bin/fake-conmon --listen unix:///tmp/cristack/conmon.sock --runtime-dir /tmp/cristack/conmon &"
CRIO_CONF = (".venv/bin/fake-crio --config examples/crio/crio.conf --config-dir examples/crio/crio.conf.d"
             "      --listen unix:///tmp/cristack/crio.sock --root /tmp/cristack/root"
             "      --runroot /tmp/cristack/runroot --pod-logs-root /tmp/cristack/pods")
# The sink's default ports, 4317 and 4318, may be taken on a shared machine: free ones, named on its command line.
SINK_PORTS = {"4317": "{grpc}", "4318": "{http}",
              ".venv/bin/cristack sink": ".venv/bin/cristack sink --grpc 127.0.0.1:{grpc} --http 127.0.0.1:{http}"}
K8S = ("needs a cluster; tests/e2e/test_kubernetes_manifests.py renders and validates it, "
       "test_kubernetes_equivalence.py runs the demo overlay's pods locally")
PLAN: dict[str, Plan] = {
    "make demo": Plan("run", ["[hello/hello] hi", "syncPod", "done in"]),
    "make test": Plan("not-run", why="it is the whole suite, this test among it"),
    ".venv/bin/cristack demo --list": Plan("run", ["crashloop", "where did the VM's spans go?"]),
    ".venv/bin/cristack demo --scenario image-pull-backoff": Plan("run", ["no such host", "finding: "]),
    ".venv/bin/cristack demo --scenario all": Plan("run", ["OK      hello"]),
    ".venv/bin/cristack up --scenario crashloop": Plan("serve", ["Ctrl-C stops everything"]),
    ".venv/bin/cristack demo --pod my-pod.yaml --pod other.yaml --runtime-type oci":
        Plan("run", ["[mine/hello] hi", "[other/hello] hi", "runtime type oci"]),
    ".venv/bin/cristack demo --json out.json --html out.html": Plan("run", ["wrote out.json", "wrote out.html"]),
    ".venv/bin/cristack demo --otlp-endpoint 127.0.0.1:4317":
        Plan("run", ["traces sent to 127.0.0.1:4317", "start: "], needs=[".venv/bin/cristack sink"],
             rewrite=SINK_PORTS),
    ".venv/bin/cristack demo --wide": Plan("run", ["github.com/cri-o/cri-o/server.(*Server).runPodSandbox"]),
    "TRACEPARENT=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 .venv/bin/cristack demo --jaeger-ui "
    "http://127.0.0.1:16686": Plan("run", ["default/hello start: 4bf92f3577b34da6a3ce929d0e0e4736  "
                                           "http://127.0.0.1:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"]),
    ".venv/bin/cristack replay out.json --otlp-endpoint 127.0.0.1:4317 --shift-to-now [--speed 10]":
        Plan("not-run", why="its [--speed] is optional syntax and it needs a collector on :4317; "
                            "tests/e2e/test_replay.py replays a demo recording to a real Jaeger"),
    ".venv/bin/cristack up --manifests ./pods": Plan("serve", ["Ctrl-C stops everything"]),
    ".venv/bin/cristack demo --runtime containerd":
        Plan("run", ["fake-kubelet → fake-containerd → shim (runtime containerd)", "[hello/hello] hi",
                     "containerd.task.v3.Task/Create", "containerd-shim-"]),
    ".venv/bin/cristack up --runtime containerd --manifests ./pods":
        Plan("serve", ["running fake-kubelet → fake-containerd → shim", "Ctrl-C stops everything"]),
    ".venv/bin/cristack demo --scenario hello --runtime containerd":
        Plan("run", ["finding: one syncPod trace of", "across kubelet, containerd and the pod's shim"]),
    ".venv/bin/cristack up --nodes 3 --manifests ./pods": Plan("serve", ["node-3: pod CIDR 10.244.3.0/24"]),
    ".venv/bin/cristack demo --nodes 2 --spread --pod a.yaml --pod b.yaml":
        Plan("run", ["running a.yaml on node-1", "running b.yaml on node-2", "default/b on node-2 start: "]),
    ".venv/bin/cristack sink": Plan("serve", ["cristack sink: OTLP gRPC on 127.0.0.1:4317"], rewrite=SINK_PORTS),
    "docker compose up --build": Plan("docker"),
    "docker compose --env-file deploy/collector.env up --build": Plan("docker"),
    "docker compose --profile containerd up --build": Plan("docker"),
    "docker compose --profile containerd up --build containerd-kubelet": Plan("docker"),
    "docker compose --profile containerd down -v": Plan("docker"),
    "docker compose exec containerd crictl pods": Plan("docker"),
    "docker compose exec crio crictl ps": Plan("docker"),
    "docker compose exec crio crictl pods": Plan("docker"),
    "docker compose exec crio crictl logs $(docker compose exec crio crictl ps -q --name nginx)": Plan("docker"),
    "scripts/compose-e2e.sh": Plan("not-run", why="needs root or a Docker engine and minutes: .ci/run runs it after "
                                                   "make test (tests/e2e/test_compose_real.py)"),
    "make tools": Plan("not-run", why="it builds or links crictl, critest, Jaeger, kustomize and kubeconform: "
                                      "make test runs it"),
    "docker build -t cristack:dev .": Plan("not-run", why="needs a Docker engine; compose builds the same Dockerfile"),
    "kubectl apply -k deploy/kubernetes/overlays/fleet": Plan("not-run", why=K8S),
    "kubectl apply -k deploy/kubernetes/overlays/live-nodes": Plan("not-run", why=K8S),
    "kubectl apply -k deploy/kubernetes/overlays/demo": Plan("not-run", why=K8S),
    "kubectl apply -k deploy/kubernetes/overlays/containerd": Plan("not-run", why=K8S),
    ".venv/bin/pytest tests/e2e": Plan("not-run", why="the e2e suite is part of make test"),
    "CRISTACK_JAEGER_QUERY_URL=http://127.0.0.1:16686 CRISTACK_OTLP_ENDPOINT=127.0.0.1:4317      .venv/bin/pytest "
    'tests/e2e -k "not started_after and not stopped_while"':
        Plan("not-run", why="needs compose's Jaeger (Docker); the same suite runs against its own Jaeger in make test"),
    ".venv/bin/fake-crio --help": Plan("run", ["--config-dir", "--enable-tracing"]),
    ".venv/bin/fake-crio --listen unix:///tmp/cristack/crio.sock      --root /tmp/cristack/root --runroot "
    "/tmp/cristack/runroot --pod-logs-root /tmp/cristack/pods": Plan("serve", ["fake-crio serving on unix://"]),
    CONMON: Plan("serve", ["fake-conmon serving on unix://"]),
    CRIO_CONF: Plan("serve", ["fake-crio serving on unix://"], needs=[CONMON]),
    ".venv/bin/fake-kubelet --config examples/kubelet/kubelet-config.yaml":
        Plan("serve", ["fake-kubelet: container runtime cri-o"], needs=[CONMON, CRIO_CONF]),
    ".venv/bin/fake-kubelet --config examples/kubelet/kubelet-config.yaml      --pod-manifest-path "
    "examples/manifests --runonce":  # exits (within the 60 s a command gets) once the long-running nginx pod runs
        Plan("run", ["added from examples/manifests/nginx.yaml", "--runonce: pod default/web running"],
             needs=[CONMON, CRIO_CONF]),
}
CRICTL_SESSION = "a crictl session against fake-crio: tests/e2e/test_crictl.py runs the same crictl commands"


def plan_of(command: str) -> Plan:
    if command in PLAN:
        return PLAN[command]
    if command.startswith(("export ", "alias crictl=", "crictl ", "POD=$(crictl", "CTR=$(crictl")):
        return Plan("not-run", why=CRICTL_SESSION)
    raise KeyError(command)


def test_every_readme_command_has_a_plan() -> None:
    missing = [c for c in COMMANDS if c not in PLAN and not c.startswith(
        ("export ", "alias crictl=", "crictl ", "POD=$(crictl", "CTR=$(crictl"))]
    assert not missing, "README commands without a line in PLAN:\n" + "\n".join(missing)
    assert not set(PLAN) - set(COMMANDS), f"PLAN lines the README no longer has: {set(PLAN) - set(COMMANDS)}"


def _id(command: str) -> str:
    p = plan_of(command)
    tag = {"docker": "needs-docker(compose validated)", "not-run": f"not-run({p.why})"}.get(p.how, p.how)
    return f"{tag}:{command[:70]}"


def _files(workdir: Path) -> None:
    """The files the README's examples name as the user's own: four pods, a manifests directory."""
    hello = yaml.safe_load((REPO / "examples" / "pods" / "hello.yaml").read_text())
    for name in ("my-pod", "other", "a", "b"):
        doc = {**hello, "metadata": {**hello["metadata"], "name": "mine" if name == "my-pod" else name}}
        (workdir / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (workdir / "pods").mkdir(exist_ok=True)


def test_commands_not_run_here_say_what_covers_them() -> None:
    """`make test`, `make tools`, the e2e lines and the crictl session are not run by this test (they are the
    suite itself, or another test runs them); each says which, so none is passed over in silence."""
    not_run = [c for c in dict.fromkeys(COMMANDS) if plan_of(c).how == "not-run"]
    assert not_run and all(plan_of(c).why for c in not_run)


@pytest.mark.parametrize("command", [c for c in dict.fromkeys(COMMANDS) if plan_of(c).how != "not-run"], ids=_id)
def test_readme_command(command: str) -> None:
    p = plan_of(command)
    if p.how == "docker":
        assert not check_without_docker(command), check_without_docker(command)
        return
    if command.startswith("make ") and not venv_is_makes():
        msg = "the venv running the tests is not an up-to-date `make venv` one: `make demo` would rebuild it"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    workdir = shared_workdir()
    _files(workdir)
    private = workdir / f"tmp-{free_port()}"
    # The example configs name /tmp/cristack too: private copies of them, with the same private directory.
    rewrite: dict[str, str] = {}
    for example in ("examples/crio/crio.conf.d", "examples/crio/crio.conf", "examples/kubelet/kubelet-config.yaml"):
        src, dst = REPO / example, private / "examples" / example.split("/", 1)[1]
        for f in (sorted(src.iterdir()) if src.is_dir() else [src]):
            out = dst / f.name if src.is_dir() else dst
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(f.read_text().replace(TMP, f"{private}/").replace("../manifests",
                                                                             str(REPO / "examples" / "manifests")))
        rewrite[example] = str(dst)
    rewrite[TMP] = f"{private}/"
    if p.rewrite:
        grpc, http = free_port(), free_port()
        rewrite |= {k: v.format(grpc=grpc, http=http) for k, v in p.rewrite.items()}
    commands = [*p.needs, command]
    if p.how == "serve":
        # Run until it serves: the last command of a background block is a wait for its ready line.
        commands = [*p.needs, command, "true"]
    block = Block(0, "README", commands, [Expect(_rewrite(t, rewrite)) for t in p.expect],
                  background=len(commands) > 1)
    if block.background:
        block = _serving(block, rewrite, workdir)
    result = run_cached(block, rewrite=rewrite)
    if private.exists():
        shutil.rmtree(private, ignore_errors=True)
    if p.how == "run":
        assert result.codes[-1] == 0, result.output[-4000:]
    bad = failures(block, result.output, workdir)
    assert not bad, "\n".join(bad) + "\n---\n" + result.output[-4000:]


def _rewrite(text: str, rewrite: dict[str, str]) -> str:
    for old, new in rewrite.items():
        text = text.replace(old, new)
    return text


def _serving(block: Block, rewrite: dict[str, str], workdir: Path) -> Block:
    """Background commands log to files in ``workdir``; the foreground one waits until each says it serves."""
    logs = [f"bg-{free_port()}.log" for _ in block.commands[:-1]]
    ready = {e.text for e in block.expects}
    started = []
    for cmd, log in zip(block.commands[:-1], logs, strict=True):
        started.append(f"{cmd.rstrip(' &')} > {log} 2>&1")
    last = block.commands[-1]
    if last == "true":  # a serve check: wait for the ready lines in the logs
        waits = " && ".join(f"grep -qF -- {_quote(t)} {' '.join(logs)}" for t in ready)
        last = f"{waits} && cat {' '.join(logs)}"
    else:  # a command against servers started first: wait for each to serve, then run it
        last = " && ".join([*(f"until grep -qE 'serving on|OTLP gRPC on' {log}; do sleep 0.2; done" for log in logs),
                            last])
    return Block(0, block.heading, [*started, f"timeout 60 bash -c {_quote(last)}"], block.expects, background=True)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
