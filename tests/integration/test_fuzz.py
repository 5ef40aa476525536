"""Bad input, generated: every implemented CRI RPC and every conmon RPC gets arbitrary
requests (empty, missing metadata, huge and unicode strings, invalid ids, negative timeouts)
and raw bytes that are not protobuf. No answer may be INTERNAL, nor UNKNOWN except where CRI-O itself answers
UNKNOWN (a pull that fails, an exec of an empty command, a second start: CRI-O returns those errors unwrapped),
every error has a message, and the server answers the next valid call."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cristack.wire.pb.conmon.v1 import conmon_pb2 as cpb
from cristack.wire.pb.conmon.v1 import conmon_pb2_grpc as cgrpc
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from tests.conftest import start_pod_crio
from tests.fuzzing import messages

CRI = {
    "RuntimeService": ["Version", "Status", "RuntimeConfig", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox",
                       "PodSandboxStatus", "ListPodSandbox", "CreateContainer", "StartContainer", "StopContainer",
                       "RemoveContainer", "ListContainers", "ContainerStatus", "ContainerStats",
                       "ListContainerStats", "UpdateContainerResources", "ExecSync", "ReopenContainerLog"],
    "ImageService": ["ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"],
}
CONMON = ["Version", "CreateContainer", "StartContainer", "StopContainer", "ExecSyncContainer",
          "ReopenLogContainer", "CreateNamespaces"]
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
# Where CRI-O 1.36 answers UNKNOWN with the error's own text (server/image_pull.go, container_start.go,
# container_exec*.go return plain errors), so fake-crio does too.
UNKNOWN_AS_CRIO = {"PullImage", "StartContainer", "ExecSync"}
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    crio = start_pod_crio(base, "--pull-latency-ms", "0")
    # Something to aim at: a sandbox and a running container whose ids the fuzzer may hit.
    rt = crio.runtime()
    crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    from tests.conftest import container_config, pod_config

    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config())).pod_sandbox_id
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=container_config(
        command=["sleep", "600"]))).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    yield crio, crio.conmon, sid, cid
    crio.close()


def check(call, request, method: str = "") -> None:  # noqa: ANN001
    try:
        call(request, timeout=30)
    except grpc.RpcError as err:
        allowed = err.code() == grpc.StatusCode.UNKNOWN and method in UNKNOWN_AS_CRIO \
            and "internal error" not in (err.details() or "")
        assert allowed or err.code() not in FORBIDDEN, f"{err.code()}: {err.details()}"
        assert err.details(), "every error has a message"
        assert "Traceback" not in (err.details() or "")


def alive(crio) -> None:  # noqa: ANN001
    assert crio.runtime().Version(pb.VersionRequest(), timeout=10).runtime_name == "cri-o"
    assert crio.proc.popen.poll() is None


def request_class(module, method: str):  # noqa: ANN001, ANN201
    return getattr(module, method + "Request") if hasattr(module, method + "Request") else None


@pytest.mark.parametrize("service, method", [(s, m) for s, ms in CRI.items() for m in ms])
def test_cri_rpc_fuzzed(stack, service, method):
    crio, _, sid, cid = stack
    channel = crio.channel()
    stub = (pbgrpc.RuntimeServiceStub if service == "RuntimeService" else pbgrpc.ImageServiceStub)(channel)
    cls = request_class(pb, method)

    @SETTINGS
    @given(messages(cls), st.sampled_from(["", sid, cid, sid[:12], cid[:12], "x" * 64]))
    def run(request, some_id):
        for name in ("pod_sandbox_id", "container_id"):
            if name in cls.DESCRIPTOR.fields_by_name and not getattr(request, name):
                setattr(request, name, some_id)
        if method == "ExecSync":
            request.timeout = min(request.timeout, 2)  # keep exec runs short
            if request.cmd:
                del request.cmd[:]
                request.cmd.extend(["echo", "fuzz"])
        if method == "PullImage":
            request.image.image = request.image.image[:200]
        check(getattr(stub, method), request, method)

    run()
    raw = channel.unary_unary(f"/runtime.v1.{service}/{method}", request_serializer=None,
                              response_deserializer=None)
    for garbage in (b"\xff\xff\xff\xff", b"\x0a\x05ab", bytes(range(256))):
        with pytest.raises(grpc.RpcError) as err:
            raw(garbage, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    alive(crio)


@pytest.mark.parametrize("method", CONMON)
def test_conmon_rpc_fuzzed(stack, method):
    crio, conmon, _, cid = stack
    channel = grpc.insecure_channel(f"unix://{conmon.socket}")
    stub = cgrpc.ConmonStub(channel)
    cls = getattr(cpb, method + "Request")

    @SETTINGS
    @given(messages(cls))
    def run(request):
        if "command_args" in cls.DESCRIPTOR.fields_by_name:
            del request.command_args[:]
            request.command_args.extend(["true"])
            del request.exit_paths[:]
            del request.log_drivers[:]
        if "command" in cls.DESCRIPTOR.fields_by_name and request.command:
            del request.command[:]
            request.command.extend(["true"])
        if "timeout_sec" in cls.DESCRIPTOR.fields_by_name:
            request.timeout_sec = min(abs(request.timeout_sec), 2)
        if "signal" in cls.DESCRIPTOR.fields_by_name:
            request.signal = 15
        check(getattr(stub, method), request)

    run()
    raw = channel.unary_unary(f"/conmon.v1.Conmon/{method}", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\xff\xff\xff\xff", timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stub.Version(cpb.VersionRequest(), timeout=10).instance_id
    channel.close()
    alive(crio)
