"""What runs on a live node to capture each trace kind (and again in the fidelity tests, to compare against).

A node kind (``IDLE``) is a node with no pods: its periodic roots (the PLEG's relists, the runtime status and
version probes, image-filesystem and stats queries, the garbage collectors). A pod kind (``Episode``) is one
pod's life on a node: its manifest written at t0, ``start_s`` of starting (and, for a fault, failing and
retrying), ``running_s`` of running, the manifest removed at t1, then ``stop_s`` of tearing down. The episodes
are the live nodes' own work, with the live nodes' own settings (``cristack up``'s defaults: back-off 10 s,
relist 1 s, GC every minute), except what the fault itself needs (a missing image, CRI-O's fault injection). An
episode names the runtimes it runs on (slow-storage is CRI-O's fault injection: CRI-O only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cristack.harness.fleet.nodes import FAULT_RUNTIMES
from cristack.harness.stack import example

# How the captured pods are named: distinctive, so that replacing them by markers cannot touch anything else.
CAPTURE_POD = "fleetcap-{kind}-pod"


@dataclass(frozen=True)
class Episode:
    """One pod kind: its manifest (``{name}`` is the pod's name) and how long each phase of its life lasts."""

    kind: str
    manifest: str
    start_s: float  # t0 (manifest written) -> the running window
    running_s: float  # the running window: its non-node roots are the pod's own periodic ones
    stop_s: float  # t1 (manifest removed) -> end of the capture
    runtime_args: tuple[str, ...] = ()  # the runtime's flags (CRI-O's fault injection, slow-storage only)
    after: str | None = None  # runs on the node right after this episode (an image pulled by it stays)
    title: str = ""
    runtimes: tuple[str, ...] = ("crio", "containerd")  # the runtimes it can run on

    def on(self, runtime: str) -> bool:
        return runtime in self.runtimes

    def manifest_for(self, name: str, namespace: str | None = None) -> str:
        return self.manifest.format(name=name, namespace=namespace or self.namespace)

    @property
    def namespace(self) -> str:
        return "workshop" if self.kind in ("crashloop", "pull-backoff") else "default"


def _long_running(image: str = "busybox", pull: str = "IfNotPresent") -> str:
    # The shape of `cristack load`'s pods: one container that runs until it is stopped.
    return ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n"
            "    app: fleet\nspec:\n  restartPolicy: Always\n  terminationGracePeriodSeconds: 5\n  containers:\n"
            f"    - name: app\n      image: {image}\n      imagePullPolicy: {pull}\n"
            "      command: [\"sleep\", \"infinity\"]\n")


def _scenario_manifest(scenario: str, file: str) -> str:
    """A workshop scenario's pod with its name and namespace made placeholders (the fault is in the pod's spec)."""
    text = example("scenarios", scenario, "manifests", file).read_text().replace("{", "{{").replace("}", "}}")
    lines = []
    for line in text.splitlines():
        if line.startswith("  name: "):
            line = "  name: {name}"
        elif line.startswith("  namespace: "):
            line = "  namespace: {namespace}"
        lines.append(line)
    return "\n".join(lines) + "\n"


EPISODES: dict[str, Episode] = {e.kind: e for e in (
    Episode("pod-pull", _long_running(), start_s=4.0, running_s=22.0, stop_s=8.0, after="pod",
            title="a long-running pod whose image the node pulls first"),
    Episode("pod", _long_running(), start_s=4.0, running_s=22.0, stop_s=8.0,
            title="a long-running pod whose image the node has"),
    Episode("crashloop", _scenario_manifest("crashloop", "crasher.yaml"), start_s=33.0, running_s=0.0, stop_s=8.0,
            title="a container that exits 1: restarts after the kubelet's back-off (10 s, 20 s, ...)"),
    Episode("pull-backoff", _scenario_manifest("image-pull-backoff", "app.yaml"), start_s=33.0, running_s=0.0,
            stop_s=8.0, title="a missing image: ErrImagePull, then ImagePullBackOff"),
    Episode("slow-storage", _long_running(), start_s=5.0, running_s=0.0, stop_s=8.0,
            runtime_args=("--faults", str(example("scenarios", "slow-storage", "faults.toml"))),
            title="CRI-O's container storage slow (its fault injection, the slow-storage scenario)",
            runtimes=FAULT_RUNTIMES["slow-storage"]),
)}


def episodes_on(runtime: str, episodes: dict[str, Episode] | None = None) -> dict[str, Episode]:
    """The episodes a node of ``runtime`` runs (a capture's, a catalogue's kinds)."""
    return {k: e for k, e in (episodes or EPISODES).items() if e.on(runtime)}


@dataclass(frozen=True)
class NodeCapture:
    """The idle node: how long to let it settle after start, and the window whose roots are its periodic ones
    (five minutes and a bit, so that the image garbage collector, every five minutes, is in it)."""

    settle_s: float = 3.0
    window_s: float = 305.0
    node_roots: frozenset[str] = field(default_factory=frozenset)


# The roots a node makes whatever pods it has (fake_kubelet's loops); any other root in a pod's window is the pod's.
# Neither runtime makes a periodic root of its own on a node without pods (containerd's stats collector asks
# nothing when it has no containers).
NODE_ROOTS = frozenset({
    "runtime.v1.RuntimeService/ListPodSandbox", "runtime.v1.RuntimeService/ListContainers",
    "runtime.v1.RuntimeService/Status", "runtime.v1.RuntimeService/Version", "runtime.v1.ImageService/ImageFsInfo",
    "runtime.v1.RuntimeService/ListContainerStats", "runtime.v1.ImageService/ListImages",
    "Containers/GarbageCollect", "Images/GarbageCollect",
})
IDLE = NodeCapture(node_roots=NODE_ROOTS)

# Roots a running pod makes without the kubelet, by (service, root span name), periodic like the kubelet's own for
# it: containerd's CRI stats collector (internal/cri/server/stats_collector.go) asks the shim for each live task's
# metrics once a second, a root Task/Stats CLIENT span (and the shim's SERVER span under it) per task and tick.
# containerd's other roots of its own (task.Wait, client.task.Delete after an exit, Task/State, the shims'
# Events/Forward) follow the pod's start and stop, so they belong to its episode where they happened. CRI-O has
# none: its roots in a running pod's window (a conmon-rs server of an earlier pod shut down by the kubelet's GC)
# are not this pod's.
POD_ROOTS = frozenset({("containerd", "containerd.task.v3.Task/Stats")})
