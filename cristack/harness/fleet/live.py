"""Live nodes for the captures and for the fidelity tests: the three real components of one node, exporting to an
in-process receiver that keeps every span as it arrived (protobuf, flags and all), and the episodes of
``episodes`` run on them with the times and the ids a capture needs to turn the spans into templates."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from cristack.harness.fleet.episodes import Episode
from cristack.harness.nodeplan import node_cidr
from cristack.harness.sink.intake import Request
from cristack.harness.sink.receiver import Sink
from cristack.harness.sink.store import SpanStore
from cristack.harness.stack import Stack, StackOptions
from cristack.otel.tracediff import any_value
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc


@dataclass
class RawSpan:
    """One span as received, with its resource's and scope's attributes decoded."""

    resource: dict[str, object]
    scope: tuple[str, str]
    span: Span

    @property
    def host(self) -> str:
        return str(self.resource.get("host.name", ""))


class RawStore(SpanStore):
    """A SpanStore (for the sink's query API) that also keeps every span's protobuf."""

    def __init__(self) -> None:
        super().__init__(max_spans=10**7, max_bytes=2**40, max_traces=10**7)
        self.raw: list[RawSpan] = []
        self._raw_lock = threading.Lock()

    def take(self, request: Request) -> int:
        """The receivers hand over checked requests (``intake.Request``): each span's protobuf is kept beside
        what the SpanStore keeps."""
        self._keep(request.message())
        return super().take(request)

    def _keep(self, request: ExportTraceServiceRequest) -> None:
        out = []
        for rs in request.resource_spans:
            res = {kv.key: any_value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                scope = (ss.scope.name, ss.scope.version)
                out += [RawSpan(res, scope, s) for s in ss.spans]
        with self._raw_lock:
            self.raw += out

    def spans_of(self, host: str) -> list[RawSpan]:
        with self._raw_lock:
            return [r for r in self.raw if r.host == host]


@contextlib.contextmanager
def receiver() -> Iterator[tuple[RawStore, str]]:
    """An in-process OTLP receiver on a free loopback port: (its store, its endpoint)."""
    store = RawStore()
    sink = Sink(store)
    addrs = sink.start()
    try:
        yield store, addrs.otlp_endpoint
    finally:
        sink.stop()


@dataclass
class EpisodeRun:
    """What a capture needs to know about one episode run on a live node."""

    kind: str
    pod: str
    namespace: str
    t0: int  # ns since the epoch: manifest written
    t1: int  # manifest removed
    end: int  # the capture's end
    uid: str = ""
    sandbox_ids: list[str] = field(default_factory=list)
    container_ids: list[str] = field(default_factory=list)
    pod_ip: str = ""


@dataclass(frozen=True)
class NodeInfo:
    """What a capture keeps of a live node."""

    name: str
    base: Path
    started_ns: int


def _crio(endpoint: str, name: str, cidr: str, runtime_args: tuple[str, ...]) -> StackOptions:
    return StackOptions(otlp_endpoint=endpoint, node_name=name, pod_cidr=cidr, crio_args=list(runtime_args))


def _containerd(endpoint: str, name: str, cidr: str, runtime_args: tuple[str, ...]) -> StackOptions:
    return StackOptions(runtime="containerd", otlp_endpoint=endpoint, node_name=name, pod_cidr=cidr,
                        containerd_args=list(runtime_args))


# How a live node of each runtime starts: the runtimes a catalogue can be captured for (``cristack up``'s
# settings for each, as ``cristack up --runtime NAME`` starts it).
LIVE_RUNTIMES: dict[str, Callable[[str, str, str, tuple[str, ...]], StackOptions]] = {
    "crio": _crio, "containerd": _containerd}


class LiveNode:
    """One node of the real components of ``runtime`` (``cristack up``'s settings), named ``name``, with pod CIDR
    block ``index``, exporting to ``endpoint``; its base directory is named the way ``cristack up`` names its own.
    ``runtime_args`` go to its runtime (CRI-O's fault injection, for the slow-storage episode)."""

    def __init__(self, name: str, index: int, endpoint: str, runtime_args: tuple[str, ...] = (),
                 runtime: str = "crio") -> None:
        self.name = name
        self.base = Path(tempfile.mkdtemp(prefix="cristack-up-"))
        self.stack = Stack(self.base, LIVE_RUNTIMES[runtime](endpoint, name, node_cidr(index), runtime_args))
        self.started_ns = 0

    @property
    def info(self) -> NodeInfo:
        return NodeInfo(self.name, self.base, self.started_ns)

    def start(self) -> None:
        """Starts the node; ``started_ns`` is when its runtime serves (the kubelet's first calls fail until then)."""
        self.stack.start()
        self.started_ns = time.time_ns()

    def stop(self) -> None:
        """Stops the node and removes its directory (its path stays known: captures mark it in the spans)."""
        try:
            self.stack.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def image_ids(self) -> list[str]:
        with grpc.insecure_channel(self.stack.cri_endpoint) as ch:
            images = pbgrpc.ImageServiceStub(ch).ListImages(pb.ListImagesRequest(), timeout=10).images
        return [i.id.removeprefix("sha256:") for i in images]

    def _ids(self, run: EpisodeRun) -> None:
        """The pod's uid, sandboxes, containers and IP as the runtime has them (before the manifest goes)."""
        with grpc.insecure_channel(self.stack.cri_endpoint) as ch:
            rt = pbgrpc.RuntimeServiceStub(ch)
            pods = [p for p in rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=10).items
                    if p.metadata.name == run.pod and p.metadata.namespace == run.namespace]
            for p in pods:
                run.uid = p.metadata.uid
                run.sandbox_ids.append(p.id)
                status = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=p.id), timeout=10).status
                run.pod_ip = run.pod_ip or status.network.ip
            ids = set(run.sandbox_ids)
            run.container_ids = [c.id for c in rt.ListContainers(pb.ListContainersRequest(), timeout=10).containers
                                 if c.pod_sandbox_id in ids]

    def episode(self, ep: Episode, pod: str, namespace: str | None = None) -> EpisodeRun:
        """Runs ``ep`` with the pod named ``pod``: writes its manifest, waits, removes it, waits."""
        ns = namespace or ep.namespace
        path = self.stack.manifests / f"{pod}.yaml"
        tmp = self.stack.manifests / f".{pod}.yaml.tmp"
        tmp.write_text(ep.manifest_for(pod, ns))
        t0 = time.time_ns()
        tmp.replace(path)
        run = EpisodeRun(ep.kind, pod, ns, t0, 0, 0)
        time.sleep(ep.start_s + ep.running_s)
        self._ids(run)
        run.t1 = time.time_ns()
        path.unlink()
        time.sleep(ep.stop_s)
        run.end = time.time_ns()
        return run
