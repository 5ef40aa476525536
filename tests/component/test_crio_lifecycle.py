"""fake-crio on a real unix socket (in this process), driven through the generated stubs."""

from __future__ import annotations

import stat

import grpc
import pytest

from cristack.containers.crilog import read_log
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.conftest import container_config, pod_config
from tests.support.criops import code_of, run_container, wait_exited


def test_socket_is_private(crio):
    assert stat.S_IMODE(crio.socket.stat().st_mode) == 0o660


def test_version_status_and_runtime_config(crio):
    rt = crio.runtime()
    v = rt.Version(pb.VersionRequest())
    assert (v.runtime_name, v.runtime_api_version) == ("cri-o", "v1")
    st = rt.Status(pb.StatusRequest(verbose=True))
    assert {c.type: c.status for c in st.status.conditions} == {"RuntimeReady": True, "NetworkReady": True}
    assert "config" in st.info
    assert rt.RuntimeConfig(pb.RuntimeConfigRequest()).linux.cgroup_driver == pb.SYSTEMD


def test_full_lifecycle_with_output_in_cri_log(crio):
    rt, sid, cid = run_container(crio, ["sh", "-c", "echo hi; nosuchcmd || true; exit 3"])
    status = wait_exited(rt, cid)
    assert status.exit_code == 3
    assert status.reason == "Error"
    assert status.started_at > 0 and status.finished_at >= status.started_at
    assert status.log_path == str(crio.logs_root / "default_web_uid-1" / "main" / "0.log")
    lines = read_log(status.log_path)
    assert ("stdout", "hi") in lines
    assert ("stderr", "sh: nosuchcmd: not found") in lines

    listed = rt.ListContainers(pb.ListContainersRequest()).containers
    assert [c.id for c in listed] == [cid]
    assert listed[0].state == pb.CONTAINER_EXITED

    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    assert rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.state == pb.SANDBOX_NOTREADY
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert rt.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
    assert rt.ListContainers(pb.ListContainersRequest()).containers == []


def test_exit_codes_zero_and_command_not_found(crio):
    rt, _, ok = run_container(crio, ["echo", "hello"], name="ok")
    assert wait_exited(rt, ok).exit_code == 0
    assert wait_exited(rt, ok).reason == "Completed"
    pod2 = pod_config(name="other", uid="uid-2")
    rt, _, missing = run_container(crio, ["/usr/bin/no-such-binary"], pod=pod2, name="missing")
    status = wait_exited(rt, missing)
    assert status.exit_code == 127
    assert any("executable file not found" in text for _, text in read_log(status.log_path))


def test_stop_running_container_and_exec(crio):
    rt, _, cid = run_container(crio, ["sleep", "60"])
    out = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo $GREETING; exit 4"], timeout=5))
    assert (out.stdout, out.exit_code) == (b"hi\n", 4)
    assert code_of(rt.ExecSync, pb.ExecSyncRequest(container_id=cid, cmd=["sleep", "5"], timeout=1)) == \
        grpc.StatusCode.DEADLINE_EXCEEDED
    stats = rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats
    assert stats.attributes.id == cid and stats.memory.working_set_bytes.value > 0
    rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=5))
    status = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert status.state == pb.CONTAINER_EXITED
    assert status.exit_code == 143  # SIGTERM
    # Stopping again is not an error.
    rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=5))


def test_filters(crio):
    rt, img = crio.runtime(), crio.images()
    img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    a = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("a", "ua", labels={"tier": "web"}))).pod_sandbox_id
    b = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("b", "ub", labels={"tier": "db"}))).pod_sandbox_id
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=b))

    def pods(**kw):
        return [p.id for p in rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(**kw))).items]

    assert pods(id=a[:12]) == [a]
    assert pods(state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY)) == [a]
    assert pods(state=pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY)) == [b]
    assert pods(label_selector={"tier": "db"}) == [b]
    assert pods(label_selector={"tier": "none"}) == []

    ca = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=a, config=container_config(
        "x", command=["sleep", "30"], labels={"role": "x"}), sandbox_config=pod_config("a", "ua"))).container_id

    def ctrs(**kw):
        req = pb.ListContainersRequest(filter=pb.ContainerFilter(**kw))
        return [c.id for c in rt.ListContainers(req).containers]

    assert ctrs(pod_sandbox_id=a) == [ca]
    assert ctrs(pod_sandbox_id=b) == []
    assert ctrs(state=pb.ContainerStateValue(state=pb.CONTAINER_CREATED)) == [ca]
    assert ctrs(state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING)) == []
    assert ctrs(label_selector={"role": "x"}) == [ca]
    assert ctrs(id=ca[:13]) == [ca]
    stats = rt.ListContainerStats(pb.ListContainerStatsRequest(filter=pb.ContainerStatsFilter(pod_sandbox_id=a)))
    assert [s.attributes.id for s in stats.stats] == [ca]


def test_error_codes(crio):
    rt, img = crio.runtime(), crio.images()
    NF, AE, IA, FP = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
                      grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
    assert code_of(rt.PodSandboxStatus, pb.PodSandboxStatusRequest(pod_sandbox_id="nope")) == NF
    assert code_of(rt.ContainerStatus, pb.ContainerStatusRequest(container_id="nope")) == NF
    assert code_of(rt.StartContainer, pb.StartContainerRequest(container_id="nope")) == NF
    assert code_of(rt.ContainerStatus, pb.ContainerStatusRequest()) == IA
    assert code_of(rt.RunPodSandbox, pb.RunPodSandboxRequest(config=pb.PodSandboxConfig())) == IA
    assert code_of(rt.RunPodSandbox, pb.RunPodSandboxRequest(config=pod_config(), runtime_handler="kata")) == IA
    # CRI-O passes the registry's error on as a plain error: gRPC UNKNOWN (server/image_pull.go).
    UNK = grpc.StatusCode.UNKNOWN
    assert code_of(img.PullImage, pb.PullImageRequest(image=pb.ImageSpec(image="no-such-image:1.0"))) == UNK
    assert code_of(img.PullImage, pb.PullImageRequest(image=pb.ImageSpec(image="Bad Ref"))) == UNK

    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config())).pod_sandbox_id
    assert code_of(rt.RunPodSandbox, pb.RunPodSandboxRequest(config=pod_config())) == AE
    # The image is not pulled yet.
    assert code_of(rt.CreateContainer, pb.CreateContainerRequest(
        pod_sandbox_id=sid, config=container_config(), sandbox_config=pod_config())) == NF
    img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    cid = rt.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=sid, config=container_config(command=["sleep", "30"]))).container_id
    assert code_of(rt.CreateContainer, pb.CreateContainerRequest(
        pod_sandbox_id=sid, config=container_config(command=["sleep", "30"]))) == AE
    # CRI-O's codes (server/container_execsync.go, container_start.go): "container is not created
    # or running" is NOT_FOUND; starting twice and an empty command are plain errors (UNKNOWN).
    assert code_of(rt.ExecSync, pb.ExecSyncRequest(container_id=cid, cmd=["true"])) == NF  # not running
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    assert code_of(rt.StartContainer, pb.StartContainerRequest(container_id=cid)) == UNK
    assert code_of(rt.ExecSync, pb.ExecSyncRequest(container_id=cid)) == UNK
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    assert code_of(rt.CreateContainer, pb.CreateContainerRequest(
        pod_sandbox_id=sid, config=container_config("late"))) == FP
    assert code_of(img.RemoveImage, pb.RemoveImageRequest(image=pb.ImageSpec(image="busybox"))) == FP
    # Unimplemented RPCs say so, by name.
    with pytest.raises(grpc.RpcError) as err:
        rt.Exec(pb.ExecRequest(container_id=cid, cmd=["sh"]))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED and "Exec" in err.value.details()
    # Idempotent removals of things that are gone.
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id="gone"))
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id="gone"))
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id="gone"))
    # The server still serves after all that.
    assert rt.Version(pb.VersionRequest()).runtime_name == "cri-o"


def test_log_paths_are_confined(crio):
    rt = crio.runtime()
    bad = pod_config()
    bad.log_directory = "../../escape"
    assert code_of(rt.RunPodSandbox, pb.RunPodSandboxRequest(config=bad)) == grpc.StatusCode.INVALID_ARGUMENT
    bad.log_directory = "/etc"
    assert code_of(rt.RunPodSandbox, pb.RunPodSandboxRequest(config=bad)) == grpc.StatusCode.INVALID_ARGUMENT
    crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config())).pod_sandbox_id
    cfg = container_config()
    cfg.log_path = "../../../outside.log"
    assert code_of(rt.CreateContainer, pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert not (crio.dir / "outside.log").exists()


def test_images(crio):
    img = crio.images()
    assert img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="busybox"))).HasField("image") is False
    ref = img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox"))).image_ref
    by_digest = img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="busybox"))).image.repo_digests[0]
    assert img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=by_digest))).image_ref == ref
    img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="registry.k8s.io/pause:3.10")))
    listed = {i.id: list(i.repo_tags) for i in img.ListImages(pb.ListImagesRequest()).images}
    assert listed[ref] == ["docker.io/library/busybox:latest"]
    assert len(listed) == 2
    status = img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=ref[:12]), verbose=True))
    assert status.image.id == ref and "Cmd" in status.info["info"]
    fs = img.ImageFsInfo(pb.ImageFsInfoRequest())
    assert fs.image_filesystems[0].inodes_used.value > 2  # the store's directory and lock, plus the images
    img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image="busybox")))
    img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image="busybox")))  # idempotent
    assert [list(i.repo_tags) for i in img.ListImages(pb.ListImagesRequest()).images] == \
        [["registry.k8s.io/pause:3.10"]]


def test_update_container_resources(crio):
    rt, _, cid = run_container(crio, ["sleep", "30"])
    rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(cpu_shares=512, memory_limit_in_bytes=1 << 26)))
    res = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.resources.linux
    assert (res.cpu_shares, res.memory_limit_in_bytes) == (512, 1 << 26)


def test_calls_are_recorded_in_order(crio):
    run_container(crio, ["true"])
    calls = crio.calls_file.read_text().split()
    assert calls == ["PullImage", "RunPodSandbox", "CreateContainer", "StartContainer"]
