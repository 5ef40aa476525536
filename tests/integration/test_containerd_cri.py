"""fake-containerd's CRI plugin in the test process: the Daemon built with an injected tracer provider, its gRPC
services on a unix socket of the test's, shims as real processes through the real start protocol. Checks the
span tree of a pod's lifecycle (otelgrpc SERVER -> containerd's INTERNAL steps -> otelttrpc CLIENT to the
shim), log lines as span events, upstream's answers for unknown ids and images, the CNI path of a pod with
its own network namespace (and none for a host-network pod), and the entry point's config errors (exit 2)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from cristack.otel.loghandler import SpanEventHandler
from cristack.wire.pb.containerd.services.version.v1 import version_pb2_grpc
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from fake_containerd import config as ctd_config
from fake_containerd import main as ctd_main
from fake_containerd.daemon import Daemon
from tests.conftest import container_config, pod_config

pytestmark = pytest.mark.timeout(120)

RS = "runtime.v1.RuntimeService"
CONF = """version = 4
root = '{base}/root'
state = '{base}/st'
[debug]
level = 'debug'
[cristack]
pull_latency_ms = 1
pod_logs_root = '{base}/pods'
"""


class Cri:
    def __init__(self, channel: grpc.aio.Channel, daemon: Daemon, spans: InMemorySpanExporter) -> None:
        self.rt = pbgrpc.RuntimeServiceStub(channel)
        self.img = pbgrpc.ImageServiceStub(channel)
        self.version = version_pb2_grpc.VersionStub(channel)
        self.daemon = daemon
        self.spans = spans

    def named(self, name: str) -> list:
        return [s for s in self.spans.get_finished_spans() if s.name == name]


@contextlib.asynccontextmanager
async def serving(base: Path, extra: str = "") -> AsyncIterator[Cri]:
    """The daemon as run() puts it together, on ``base/st/containerd.sock``, span events from its log lines."""
    base.mkdir(parents=True, exist_ok=True)
    conf = base / "containerd.toml"
    conf.write_text(CONF.format(base=base) + extra)
    cfg = ctd_config.load(["--config", str(conf)])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    events = SpanEventHandler("containerd")
    logger = logging.getLogger("fake_containerd")
    logger.addHandler(events)
    old_level = logger.level
    logger.setLevel(cfg.log_level)
    daemon = Daemon.build(cfg, provider, env={"PATH": "/usr/bin:/bin"})
    server = grpc.aio.server(interceptors=daemon.interceptors())
    daemon.register(server)
    server.add_insecure_port(f"unix://{cfg.address.path}")
    await daemon.start()
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"unix://{cfg.address.path}") as channel:
            yield Cri(channel, daemon, exporter)
    finally:
        await server.stop(None)
        await daemon.stop()
        logger.removeHandler(events)
        logger.setLevel(old_level)
        provider.shutdown()


async def wait_exited(cri: Cri, cid: str, timeout: float = 15.0) -> pb.ContainerStatus:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        status = (await cri.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid))).status
        if status.state == pb.CONTAINER_EXITED:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"container {cid} did not exit within {timeout}s")


async def _lifecycle(cri: Cri, base: Path) -> None:
    await cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    pod = pod_config()
    pod.linux.security_context.namespace_options.network = pb.NODE  # a host-network pod: no CNI
    sid = (await cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod))).pod_sandbox_id
    cid = (await cri.rt.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=sid, config=container_config("hello", command=["sh", "-c", "echo hi; exit 3"]),
        sandbox_config=pod))).container_id
    await cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    status = await wait_exited(cri, cid)
    assert status.exit_code == 3
    # the list calls as server streams (the kubelet's CRIListStreaming), one batch each
    streamed = [m async for m in cri.rt.StreamContainers(pb.StreamContainersRequest())]
    assert [[c.id for c in m.containers] for m in streamed] == [[cid]]
    streamed = [m async for m in cri.rt.StreamPodSandboxes(pb.StreamPodSandboxesRequest())]
    assert [[p.id for p in m.pod_sandboxes] for m in streamed] == [[sid]]
    images = [i for m in [m async for m in cri.img.StreamImages(pb.StreamImagesRequest())] for i in m.images]
    assert len(images) == 2  # busybox and the pause image
    log_file = Path(status.log_path)
    assert log_file.is_relative_to(base / "pods") and " stdout F hi" in log_file.read_text()
    sandbox = (await cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid))).status
    assert sandbox.state == pb.SANDBOX_READY and not sandbox.network.ip  # host network: no pod IP
    await cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    await cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    await cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_a_pod_lifecycle_makes_containerds_span_tree(tmp_path: Path) -> None:
    async def go() -> Cri:
        async with serving(tmp_path) as cri:
            v = await cri.version.Version(empty_pb2.Empty())
            assert v.version == "v2.4.2"
            await _lifecycle(cri, tmp_path)
            return cri

    cri = asyncio.run(go())
    spans = cri.spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    (run,) = cri.named(f"{RS}/RunPodSandbox")
    assert run.kind == SpanKind.SERVER and run.instrumentation_scope.name.endswith("otelgrpc")
    assert run.attributes["rpc.system.name"] == "grpc"
    assert run.attributes["server.address"] == str(tmp_path / "st" / "containerd.sock")
    (sandbox_run,) = cri.named("cri.sandbox.run")
    assert by_id[sandbox_run.parent.span_id] is run
    assert not cri.named("cni.setup_pod_network"), "a host-network pod skips CNI, as upstream"
    # the Go client's steps under the CRI call, the shim reached over otelttrpc
    for name in ("client.NewContainer", "container.NewTask", "metadata.containers.Create"):
        assert cri.named(name), name
    creates = [s for s in cri.named("containerd.task.v3.Task/Create") if s.kind == SpanKind.CLIENT]
    assert len(creates) == 2  # the pause container and hello
    # log lines are events named by their message, with logrus's level
    names = {e.name for s in spans for e in s.events}
    assert any(n.startswith("RunPodSandbox for ") for n in names)
    events = [e for e in run.events if e.name.startswith("RunPodSandbox for ")]
    assert events and events[0].attributes["level"] == "info"
    # background roots: the exit of hello waited on, its task deleted
    roots = {s.name for s in spans if s.parent is None}
    assert {"task.Wait", "containerd.services.events.ttrpc.v1.Events/Forward"} <= roots
    assert all(s.resource.attributes.get("service.name") != "containerd-shim" for s in spans)


def test_unknown_ids_and_images_get_upstreams_answers(tmp_path: Path) -> None:
    mirror = '[cristack.registry_mirrors]\n"127.0.0.1:5000" = "docker.io/library"\n'

    async def go() -> None:
        async with serving(tmp_path, mirror) as cri:
            async def code(call, request) -> tuple[grpc.StatusCode, str]:  # noqa: ANN001
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call(request)
                return err.value.code(), err.value.details()

            got = await code(cri.rt.ContainerStatus, pb.ContainerStatusRequest(container_id="nope"))
            assert got == (grpc.StatusCode.NOT_FOUND,
                           'an error occurred when try to find container "nope": not found')
            got = await code(cri.rt.PodSandboxStatus, pb.PodSandboxStatusRequest(pod_sandbox_id="nope"))
            assert got == (grpc.StatusCode.NOT_FOUND, "an error occurred when try to find sandbox: not found")
            # a registry's 404 (the mock-only mirror makes the catalogue the registry at 127.0.0.1:5000), as
            # recorded (tests/data/real/containerd/spans-errors.jsonl)
            ref = "127.0.0.1:5000/nonexistent:latest"
            got = await code(cri.img.PullImage, pb.PullImageRequest(image=pb.ImageSpec(image=ref)))
            assert got[0] == grpc.StatusCode.NOT_FOUND and f'failed to pull and unpack image "{ref}"' in got[1]
            # StopContainer is idempotent (container_stop.go): a container that is gone is stopped
            await cri.rt.StopContainer(pb.StopContainerRequest(container_id="nope"))
            assert not (await cri.rt.ListContainers(pb.ListContainersRequest())).containers
            # the failed call's SERVER span carries the gRPC code
            (status_span,) = cri.named(f"{RS}/ContainerStatus")
            assert status_span.attributes["rpc.response.status_code"] == "NOT_FOUND"

    asyncio.run(go())


def _write_conflist(conf_dir: Path, subnet: str) -> None:
    conf_dir.mkdir(parents=True)
    (conf_dir / "10-test.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "testnet",
        "plugins": [{"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "ranges": [[
            {"subnet": subnet}]]}}]}))


def test_a_pod_with_its_own_network_takes_the_cni_path(tmp_path: Path) -> None:
    conf_dir = tmp_path / "net.d"
    _write_conflist(conf_dir, "10.99.0.0/24")
    extra = f"[plugins.'io.containerd.cri.v1.runtime'.cni]\nconf_dir = '{conf_dir}'\n"

    async def go() -> Cri:
        async with serving(tmp_path / "d", extra) as cri:
            ready = (await cri.rt.Status(pb.StatusRequest())).status.conditions
            assert {c.type: c.status for c in ready}["NetworkReady"] is True
            ips = []
            for n in range(2):
                sid = (await cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(
                    config=pod_config(f"p{n}", uid=f"u{n}")))).pod_sandbox_id
                st = (await cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid))).status
                ips.append(st.network.ip)
                await cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
            assert len(set(ips)) == 2
            assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.99.0.0/24") for ip in ips)
            return cri

    cri = asyncio.run(go())
    setups = cri.named("cni.setup_pod_network")
    assert len(setups) == 2
    assert {e.name for e in setups[0].events} >= {"cni.setup.start", "cni.setup.complete"}
    assert setups[0].attributes["sandbox.ip"].startswith("10.99.0.")
    first = cri.named("cri.sandbox.run")[0]
    assert setups[0].parent.span_id == first.context.span_id


def test_without_a_network_config_pods_of_their_own_network_fail_and_host_network_pods_run(tmp_path: Path) -> None:
    conf_dir = tmp_path / "empty"
    conf_dir.mkdir()
    extra = f"[plugins.'io.containerd.cri.v1.runtime'.cni]\nconf_dir = '{conf_dir}'\n"

    async def go() -> None:
        async with serving(tmp_path / "d", extra) as cri:
            conditions = (await cri.rt.Status(pb.StatusRequest())).status.conditions
            network = {c.type: c for c in conditions}["NetworkReady"]
            assert network.status is False and "cni plugin not initialized" in network.message
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config()))
            assert "cni config not initialized" in err.value.details()
            assert not (await cri.rt.ListPodSandbox(pb.ListPodSandboxRequest())).items
            host = pod_config("h", uid="h")
            host.linux.security_context.namespace_options.network = pb.NODE
            sid = (await cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=host))).pod_sandbox_id
            await cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))

    asyncio.run(go())


@pytest.mark.parametrize(("text", "needle"), [
    ("version = 4\n[debug]\nlevle = 'debug'\n", "debug.levle"),
    ("version = 4\n[plugins.'io.containerd.cri.v1.images']\nsnapshotter = 'overlay'\n", "did you mean"),
])
def test_the_entry_point_exits_2_naming_the_file_and_key(tmp_path: Path, capsys, text: str, needle: str) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(text)
    with pytest.raises(SystemExit) as exit_:
        ctd_main.main(["--config", str(conf)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert str(conf) in err and needle in err
