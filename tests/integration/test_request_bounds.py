"""A request's maps are bounded before it is decoded: a RunPodSandbox with 300,000 labels took 10 s to answer
and made every later ListPodSandbox take 6 s (protobuf's decoder builds big maps superlinearly); now it is
INVALID_ARGUMENT at once, and so are oversized label selectors, on unary and streaming calls alike."""

from __future__ import annotations

import time

import grpc
import pytest

from cristack.wire.bounds import MAX_MAP_ENTRIES
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.conftest import container_config, pod_config

TOO_MANY = {f"k{i}": "v" for i in range(2 * MAX_MAP_ENTRIES)}


def refused(call, request) -> str:
    with pytest.raises(grpc.RpcError) as err:
        result = call(request, timeout=60)
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    return err.value.details()


def test_oversized_maps_are_refused_before_decoding_and_lists_stay_fast(crio) -> None:
    rt = crio.runtime()
    cfg = pod_config("many", "many-uid")
    cfg.labels.update(TOO_MANY)
    started = time.monotonic()
    why = refused(rt.RunPodSandbox, pb.RunPodSandboxRequest(config=cfg))
    assert f"config.labels has more than {MAX_MAP_ENTRIES:,} entries" in why
    selector = pb.PodSandboxFilter(label_selector=TOO_MANY)
    assert "filter.label_selector" in refused(rt.ListPodSandbox, pb.ListPodSandboxRequest(filter=selector))
    assert "filter.label_selector" in refused(rt.StreamPodSandboxes, pb.StreamPodSandboxesRequest(filter=selector))
    crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config())).pod_sandbox_id
    ctr = container_config(command=["true"])
    ctr.annotations.update({f"a{i}": "v" for i in range(MAX_MAP_ENTRIES + 1)})
    assert "config.annotations" in refused(rt.CreateContainer, pb.CreateContainerRequest(
        pod_sandbox_id=sid, config=ctr, sandbox_config=pod_config()))
    refusals = time.monotonic() - started
    # At the bound it is accepted, and the sandbox listed with it.
    at_bound = pod_config("bound", "bound-uid")
    at_bound.labels.update({f"k{i}": "v" for i in range(MAX_MAP_ENTRIES - len(at_bound.labels))})
    rt.RunPodSandbox(pb.RunPodSandboxRequest(config=at_bound))
    listed = rt.ListPodSandbox(pb.ListPodSandboxRequest())
    assert {s.metadata.name for s in listed.items} == {"web", "bound"}
    assert len(next(s for s in listed.items if s.metadata.name == "bound").labels) == MAX_MAP_ENTRIES
    assert refusals < 60, "four refusals answered within the call timeout"


def test_bytes_that_are_not_a_request_on_a_streaming_call_are_invalid_argument(crio) -> None:
    channel = crio.channel()
    call = channel.unary_stream("/runtime.v1.RuntimeService/StreamPodSandboxes",
                                request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as err:
        list(call(b"\xff\xff\xff\xff", timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()


def test_an_error_that_echoes_a_huge_field_keeps_its_own_code(crio, tmp_path) -> None:
    """A status message travels in a trailer the client caps at 16 KiB: an error echoing a 1 MB id used to
    reach the caller as RESOURCE_EXHAUSTED "Stream removed" instead of NOT_FOUND or INVALID_ARGUMENT."""
    from cristack.wire.pb.conmon.v1 import conmon_pb2 as cpb
    from cristack.wire.pb.conmon.v1 import conmon_pb2_grpc as cgrpc
    from tests.conftest import start_conmon

    big = "x" * 1_000_000
    rt = crio.runtime()
    cases = [(rt.ContainerStatus, pb.ContainerStatusRequest(container_id=big), grpc.StatusCode.NOT_FOUND),
             (crio.images().PullImage, pb.PullImageRequest(image=pb.ImageSpec(image=big)), None),
             (rt.RunPodSandbox, pb.RunPodSandboxRequest(config=pod_config(), runtime_handler=big), None)]
    conmon = start_conmon(tmp_path / "conmon")
    try:
        channel = grpc.insecure_channel(f"unix://{conmon.socket}")
        cases.append((cgrpc.ConmonStub(channel).CreateContainer, cpb.CreateContainerRequest(
            id="a" * 64, command_args=["true"], log_drivers=[cpb.LogDriver(path=big)]),
            grpc.StatusCode.INVALID_ARGUMENT))
        for call, request, code in cases:
            with pytest.raises(grpc.RpcError) as err:
                call(request, timeout=30)
            got = err.value
            assert got.code() != grpc.StatusCode.RESOURCE_EXHAUSTED, got.details()
            assert code is None or got.code() == code, (got.code(), got.details())
            assert 0 < len(got.details()) < 1100 and "characters)" in got.details(), got.details()
        channel.close()
    finally:
        conmon.proc.stop()
