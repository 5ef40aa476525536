"""The one table of what a pod-start trace must contain, per runtime: parent → child edges between
(service, span name) pairs. Our sink tests, our Jaeger e2e tests, the pytest plugin and
``cristack check`` all read it; adding an expectation is one line.

Which table is chosen by a *shape*: CRI-O's runtime types ``pod`` (through fake-conmon / conmon-rs) and
``oci``, or ``containerd`` (fake-containerd and its shim; ``shape(runtime, runtime_type)`` says which). In CRI-O's
table, ``when`` restricts an edge to one runtime type. A shim's service is ``containerd-shim-<sandbox id>``, one
per pod: edges name it ``containerd-shim`` (``role``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cristack.harness.sink.store import Span

CRIO_FN = "github.com/cri-o/cri-o/server.(*Server)."
CRIO_OCI = "github.com/cri-o/cri-o/internal/oci.(*Runtime)."
RS = "runtime.v1.RuntimeService/"
IS = "runtime.v1.ImageService/"


@dataclass(frozen=True)
class Edge:
    parent_service: str
    parent: str
    child_service: str
    child: str
    when: str = ""  # "" always; "pod" only with runtime_type = "pod"

    def __str__(self) -> str:
        return f"{self.parent_service}: {self.parent} → {self.child_service}: {self.child}"


def _cri(method: str, step: str) -> list[Edge]:
    """kubelet CLIENT → crio SERVER → crio interceptor span → CRI-O's function span."""
    return [
        Edge("kubelet", "syncPod", "kubelet", method),
        Edge("kubelet", method, "crio", method),
        Edge("crio", method, "crio", "/" + method),
        Edge("crio", "/" + method, "crio", CRIO_FN + step),
    ]


POD_START: tuple[Edge, ...] = (
    *_cri(RS + "RunPodSandbox", "runPodSandbox"),
    *_cri(RS + "PodSandboxStatus", "PodSandboxStatus"),
    *_cri(IS + "ImageStatus", "ImageStatus"),
    # CRI-O 1.36's CreateContainer opens no span of its own: its steps hang off the interceptor's.
    *_cri(RS + "CreateContainer", "createSandboxContainer"),
    Edge("crio", "/" + RS + "CreateContainer", "crio", CRIO_FN + "createContainerPlatform"),
    Edge("crio", CRIO_FN + "createContainerPlatform", "crio", CRIO_OCI + "CreateContainer"),
    *_cri(RS + "StartContainer", "StartContainer"),
    Edge("crio", CRIO_FN + "StartContainer", "crio", CRIO_OCI + "StartContainer"),
    Edge("crio", CRIO_FN + "runPodSandbox", "crio", CRIO_FN + "createContainerPlatform"),
    Edge("crio", CRIO_OCI + "CreateContainer", "crio", "conmonrs-client: Version", "pod"),
    Edge("crio", CRIO_OCI + "CreateContainer", "crio", "conmonrs-client: CreateContainer", "pod"),
    Edge("crio", "conmonrs-client: CreateContainer", "conmonrs", "create_container", "pod"),
    # conmon-rs v0.8.0 (only when the handler's monitor_env sets LOG_DRIVER). A container's
    # output is read by stdout/stderr spans, or by one read_loop with a terminal (tty): which
    # appear depends on the pod, so they are checked where the pod is known.
    Edge("conmonrs", "create_container", "conmonrs", "promise", "pod"),
    Edge("conmonrs", "promise", "conmonrs", "watch", "pod"),
    Edge("conmonrs", "promise", "conmonrs", "watch_grandchild", "pod"),
    Edge("conmonrs", "watch", "conmonrs", "cgroup_handling", "pod"),
    Edge("conmonrs", "cgroup_handling", "conmonrs", "oom_handling_cgroup_v1", "pod"),
    Edge("conmonrs", "watch", "conmonrs", "wait_for_exit_code", "pod"),
    Edge("conmonrs", "watch", "conmonrs", "write_exit_path", "pod"),
)


CTD_RS = "containerd.task.v3.Task/"
SHIM = "containerd-shim"  # every containerd-shim-<sandbox id>


def _ctd_cri(method: str) -> list[Edge]:
    """kubelet CLIENT → containerd's otelgrpc SERVER span (containerd opens no interceptor span of its own)."""
    return [Edge("kubelet", "syncPod", "kubelet", method), Edge("kubelet", method, "containerd", method)]


def _shim_call(parent: str, method: str) -> list[Edge]:
    """containerd's otelttrpc CLIENT span to the shim under ``parent``, and the shim's SERVER span under it."""
    return [Edge("containerd", parent, "containerd", CTD_RS + method),
            Edge("containerd", CTD_RS + method, SHIM, CTD_RS + method)]


# containerd v2.4.2 (internal/cri/server, client/, core/runtime/v2) with the shim_tracing build of the shim, as
# recorded in tests/data/real/containerd/ (spans-lifecycle-shimtracing.jsonl).
CONTAINERD_POD_START: tuple[Edge, ...] = (
    *_ctd_cri(RS + "RunPodSandbox"),
    Edge("containerd", RS + "RunPodSandbox", "containerd", "cri.sandbox.run"),
    Edge("containerd", "cri.sandbox.run", "containerd", "client.NewContainer"),
    Edge("containerd", "client.NewContainer", "containerd", "metadata.containers.Create"),
    Edge("containerd", "cri.sandbox.run", "containerd", "container.NewTask"),
    *_shim_call("container.NewTask", "Create"),
    Edge("containerd", "cri.sandbox.run", "containerd", "client.task.Start"),
    *_shim_call("client.task.Start", "Start"),
    *_ctd_cri(RS + "PodSandboxStatus"),
    *_ctd_cri(IS + "ImageStatus"),
    *_ctd_cri(RS + "CreateContainer"),
    Edge("containerd", RS + "CreateContainer", "containerd", "client.NewContainer"),
    *_ctd_cri(RS + "StartContainer"),
    Edge("containerd", RS + "StartContainer", "containerd", "container.NewTask"),
    Edge("containerd", RS + "StartContainer", "containerd", "client.task.Start"),
)

SHAPES = ("pod", "oci", "containerd")


def shape(runtime: str = "crio", runtime_type: str = "pod") -> str:
    """Which pod-start table a node's pods match: CRI-O's runtime type, or ``containerd``."""
    return "containerd" if runtime == "containerd" else runtime_type


def role(service: str) -> str:
    """A service as the tables name it: a shim's ``containerd-shim-<sandbox id>`` is ``containerd-shim``."""
    return SHIM if service.startswith(SHIM + "-") else service


def expected(runtime_type: str = "pod", edges: Iterable[Edge] | None = None) -> list[Edge]:
    """The edges a pod start of this shape has (``runtime_type``: pod, oci or containerd)."""
    if edges is None:
        edges = CONTAINERD_POD_START if runtime_type == "containerd" else POD_START
    return [e for e in edges if not e.when or e.when == runtime_type]


def expected_services(runtime_type: str = "pod") -> set[str]:
    return {s for e in expected(runtime_type) for s in (e.parent_service, e.child_service)}


def found_edges(spans: Iterable[Span]) -> set[Edge]:
    """Every (parent service/name → child service/name) edge present in ``spans``, services by ``role``."""
    spans = list(spans)
    by_id = {s.span_id: s for s in spans}
    out = set()
    for s in spans:
        parent = by_id.get(s.parent_span_id)
        if parent is not None:
            out.add(Edge(role(parent.service), parent.name, role(s.service), s.name))
    return out


def check(spans: Iterable[Span], runtime_type: str = "pod",
          edges: Iterable[Edge] | None = None) -> list[tuple[Edge, bool]]:
    """Each expected edge with whether the trace has it."""
    have = found_edges(spans)
    return [(e, Edge(e.parent_service, e.parent, e.child_service, e.child) in have)
            for e in expected(runtime_type, edges)]


def diff(spans: Iterable[Span], runtime_type: str = "pod", edges: Iterable[Edge] | None = None) -> str:
    """A readable report: expected edges with ✓/✗, then the edges the trace did have."""
    spans = list(spans)
    rows = check(spans, runtime_type, edges)
    lines = ["expected edges:"] + [f"  {'✓' if ok else '✗'} {e}" for e, ok in rows]
    lines.append("found edges:")
    lines += [f"  {e}" for e in sorted(found_edges(spans), key=str)]
    return "\n".join(lines)
