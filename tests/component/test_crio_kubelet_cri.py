"""What the real kubelet v1.36.3 found wrong in fake-crio (tests/data/real/kubelet/kubelet-cri-errors.txt),
checked as a CRI client sees it: ImageFsInfo names directories that exist with their real usage,
RuntimeConfig answers crio.conf's cgroup_manager, PodSandboxStatus and GetContainerEvents behave as CRI-O's
do with and without enable_pod_events, and the Stream* calls the kubelet tries first answer."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import grpc
import pytest

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.component.conftest import start_crio
from tests.conftest import container_config, pod_config


def _walk(path: Path) -> tuple[int, int]:
    """du-like figures the way CRI-O's GetDiskUsageStats counts them (lstat sizes, path included)."""
    used, inodes = os.lstat(path).st_size, 1
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            used += os.lstat(os.path.join(top, name)).st_size
            inodes += 1
    return used, inodes


def _conf(tmp_path: Path, runtime: str) -> Path:
    conf = tmp_path / "crio.conf"
    conf.write_text(f"[crio.runtime]\n{runtime}\n")
    return conf


@pytest.fixture
def evented(tmp_path: Path):
    """fake-crio with CRI-O's enable_pod_events."""
    handle = start_crio(tmp_path, config=_conf(tmp_path, "enable_pod_events = true"))
    yield handle
    handle.close()


def test_image_fs_info_names_directories_that_exist_with_their_real_usage(crio):
    img = crio.images()
    fs = img.ImageFsInfo(pb.ImageFsInfoRequest())
    image_fs, ctr_fs = fs.image_filesystems[0], fs.container_filesystems[0]
    mount = Path(image_fs.fs_id.mountpoint)
    assert mount.is_dir(), f"ImageFsInfo names {mount}, which the kubelet cannot stat"
    assert mount == crio.dir / "root" / "overlay-images"
    # CRI-O without a separate imagestore reports one usage for images and containers.
    assert ctr_fs == image_fs
    assert (image_fs.used_bytes.value, image_fs.inodes_used.value) == _walk(mount)
    before = image_fs.inodes_used.value
    img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    grown = img.ImageFsInfo(pb.ImageFsInfoRequest()).image_filesystems[0]
    assert grown.inodes_used.value > before
    assert (grown.used_bytes.value, grown.inodes_used.value) == _walk(mount)
    img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image="busybox")))
    assert img.ImageFsInfo(pb.ImageFsInfoRequest()).image_filesystems[0].inodes_used.value == before
    for store in ("overlay", "overlay-containers", "overlay-layers"):
        assert (crio.dir / "root" / store).is_dir()


def test_image_fs_unmounted_fault_brings_back_the_recorded_runtime(tmp_path: Path):
    faults = tmp_path / "faults.toml"
    faults.write_text("image_fs_unmounted = true\n")
    handle = start_crio(tmp_path, "--faults", str(faults))
    try:
        fs = handle.images().ImageFsInfo(pb.ImageFsInfoRequest())
        names = [f.fs_id.mountpoint for f in (*fs.image_filesystems, *fs.container_filesystems)]
        assert names == [str(tmp_path / "root" / "overlay-images"), str(tmp_path / "root" / "overlay-containers")]
        assert not any(Path(n).exists() for n in names)
    finally:
        handle.close()


def test_image_fs_info_answers_an_error_when_the_store_cannot_be_walked(crio):
    (crio.dir / "root" / "overlay-images" / "images.lock").unlink()
    (crio.dir / "root" / "overlay-images").rmdir()
    with pytest.raises(grpc.RpcError) as err:
        crio.images().ImageFsInfo(pb.ImageFsInfoRequest())
    assert err.value.code() == grpc.StatusCode.UNKNOWN
    assert "overlay-images" in err.value.details()


@pytest.mark.parametrize(("line", "driver"), [("", pb.SYSTEMD), ('cgroup_manager = "systemd"', pb.SYSTEMD),
                                              ('cgroup_manager = "cgroupfs"', pb.CGROUPFS)])
def test_runtime_config_answers_the_configured_cgroup_manager(tmp_path: Path, line: str, driver: int):
    handle = start_crio(tmp_path, config=_conf(tmp_path, line))
    try:
        assert handle.runtime().RuntimeConfig(pb.RuntimeConfigRequest()).linux.cgroup_driver == driver
    finally:
        handle.close()


def _run(crio, command: list[str]) -> tuple[str, str]:
    rt, img = crio.runtime(), crio.images()
    img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    pod = pod_config(labels={"io.kubernetes.pod.uid": "uid-1"})
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod)).pod_sandbox_id
    cfg = container_config(command=command, labels={"io.kubernetes.pod.uid": "uid-1",
                                                     "io.kubernetes.container.name": "main"})
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg,
                                                       sandbox_config=pod)).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    return sid, cid


def test_pod_sandbox_status_without_pod_events_leaves_timestamp_and_statuses_unset(crio):
    # With the EventedPLEG gate on, the real kubelet reads a non-zero timestamp as "the statuses are
    # here", trusted the empty list and re-created the containers on every sync (56 creates in 65 s).
    sid, _ = _run(crio, ["sleep", "30"])
    resp = crio.runtime().PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid))
    assert resp.timestamp == 0 and len(resp.containers_statuses) == 0


def test_get_container_events_without_pod_events_ends_at_once(crio):
    events = list(crio.runtime().GetContainerEvents(pb.GetEventsRequest(), timeout=10))
    assert events == []


class _Collector:
    """Reads a GetContainerEvents stream in a thread."""

    def __init__(self, rt) -> None:  # noqa: ANN001
        self.call = rt.GetContainerEvents(pb.GetEventsRequest())
        self.events: list[pb.ContainerEventResponse] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for event in self.call:
                self.events.append(event)
        except grpc.RpcError:
            pass

    def wait_for(self, predicate, timeout: float = 10.0) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.events):
                return
            time.sleep(0.05)
        raise AssertionError(f"events so far: {[(e.container_id[:8], e.container_event_type) for e in self.events]}")

    def kinds(self, cid: str) -> list[int]:
        return [e.container_event_type for e in self.events if e.container_id == cid]


def test_evented_pleg_streams_container_events_with_statuses(evented):
    rt = evented.runtime()
    events = _Collector(rt)
    sid, cid = _run(evented, ["sh", "-c", "echo hi; exit 3"])
    # The container exits by itself: the exit monitor's STOPPED event carries its exit code.
    events.wait_for(lambda ev: pb.CONTAINER_STOPPED_EVENT in [e.container_event_type for e in ev
                                                                if e.container_id == cid])
    assert events.kinds(sid) == [pb.CONTAINER_CREATED_EVENT, pb.CONTAINER_STARTED_EVENT]  # the infra container
    assert events.kinds(cid) == [pb.CONTAINER_CREATED_EVENT, pb.CONTAINER_STARTED_EVENT, pb.CONTAINER_STOPPED_EVENT]
    stopped = [e for e in events.events if e.container_id == cid][-1]
    assert stopped.pod_sandbox_status.id == sid and stopped.created_at > 0
    assert [(s.id, s.state, s.exit_code) for s in stopped.containers_statuses] == [(cid, pb.CONTAINER_EXITED, 3)]
    # PodSandboxStatus carries the same statuses, stamped.
    resp = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid))
    assert resp.timestamp > 0 and [s.id for s in resp.containers_statuses] == [cid]
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    events.wait_for(lambda ev: pb.CONTAINER_DELETED_EVENT in [e.container_event_type for e in ev])
    deleted = [e for e in events.events if e.container_event_type == pb.CONTAINER_DELETED_EVENT][0]
    assert deleted.container_id == cid and len(deleted.containers_statuses) == 0
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    events.wait_for(lambda ev: pb.CONTAINER_STOPPED_EVENT in [e.container_event_type for e in ev
                                                                if e.container_id == sid])
    sb_stopped = [e for e in events.events if e.container_id == sid][-1]
    assert sb_stopped.pod_sandbox_status.state == pb.SANDBOX_NOTREADY
    events.call.cancel()


def test_stream_containers_images_and_sandboxes_answer_what_the_lists_answer(crio):
    rt, img = crio.runtime(), crio.images()
    sid, cid = _run(crio, ["sleep", "30"])
    streamed = [c.id for r in rt.StreamContainers(pb.StreamContainersRequest()) for c in r.containers]
    assert streamed == [c.id for c in rt.ListContainers(pb.ListContainersRequest()).containers] == [cid]
    flt = pb.ContainerFilter(pod_sandbox_id="nosuchpod")
    assert [r for r in rt.StreamContainers(pb.StreamContainersRequest(filter=flt))] == []
    images = [i.id for r in img.StreamImages(pb.StreamImagesRequest()) for i in r.images]
    assert images == [i.id for i in img.ListImages(pb.ListImagesRequest()).images] and len(images) == 1
    pods = [p.id for r in rt.StreamPodSandboxes(pb.StreamPodSandboxesRequest()) for p in r.pod_sandboxes]
    assert pods == [sid]
    stats = [s.attributes.id for r in rt.StreamContainerStats(pb.StreamContainerStatsRequest())
             for s in r.container_stats]
    assert stats == [s.attributes.id for s in rt.ListContainerStats(pb.ListContainerStatsRequest()).stats] == [cid]


def test_streaming_calls_get_crio_s_server_span_only(tmp_path: Path):
    """CRI-O traces a server stream with otelgrpc's SERVER span alone: its StreamInterceptor opens no
    ``/runtime.v1...`` span (unlike its unary interceptor), and the steps the handler opens hang off it."""
    crio = start_crio(tmp_path, "--enable-tracing", "--tracing-endpoint", "127.0.0.1:4317",
                      "--tracing-sampling-rate-per-million", "1000000")
    try:
        rt = crio.runtime()
        list(rt.StreamContainers(pb.StreamContainersRequest(filter=pb.ContainerFilter())))
        list(rt.GetContainerEvents(pb.GetEventsRequest(), timeout=10))
        spans = crio.spans()
    finally:
        crio.close()
    by_id = {s.context.span_id: s for s in spans}
    for name in ("StreamContainers", "GetContainerEvents"):
        server = [s for s in spans if s.name == f"runtime.v1.RuntimeService/{name}"]
        assert [(s.kind.name, s.attributes["rpc.response.status_code"]) for s in server] == [("SERVER", "OK")]
        assert not [s for s in spans if s.name == f"/runtime.v1.RuntimeService/{name}"]
    step = [s for s in spans if s.name.endswith("filterContainerList")]
    assert step and by_id[step[0].parent.span_id].name == "runtime.v1.RuntimeService/StreamContainers"
