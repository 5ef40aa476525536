"""cristack.wire.bounds: map entries counted on the wire, nested messages included, without decoding."""

from __future__ import annotations

from cristack.wire.bounds import MAX_MAP_ENTRIES, MAX_TOTAL_MAP_ENTRIES, has_maps, oversized_map
from cristack.wire.pb.runtime.v1 import api_pb2 as pb


def entries(n: int, prefix: str = "k") -> dict[str, str]:
    return {f"{prefix}{i}": "v" for i in range(n)}


def test_maps_at_any_depth_are_counted_against_the_bound() -> None:
    d = pb.CreateContainerRequest.DESCRIPTOR
    ok = pb.CreateContainerRequest(config=pb.ContainerConfig(labels=entries(MAX_MAP_ENTRIES)))
    assert oversized_map(ok.SerializeToString(), d) is None
    deep = pb.CreateContainerRequest(sandbox_config=pb.PodSandboxConfig(
        linux=pb.LinuxPodSandboxConfig(sysctls=entries(MAX_MAP_ENTRIES + 1))))
    assert oversized_map(deep.SerializeToString(), d).startswith("sandbox_config.linux.sysctls has more than")
    # Four maps just under the bound each are over the request's total.
    spread = pb.CreateContainerRequest(
        config=pb.ContainerConfig(labels=entries(MAX_MAP_ENTRIES), annotations=entries(MAX_MAP_ENTRIES)),
        sandbox_config=pb.PodSandboxConfig(labels=entries(MAX_MAP_ENTRIES), annotations=entries(MAX_MAP_ENTRIES),
                                           linux=pb.LinuxPodSandboxConfig(sysctls=entries(1))))
    assert f"more than {MAX_TOTAL_MAP_ENTRIES:,} entries together" in oversized_map(spread.SerializeToString(), d)


def test_what_is_not_the_wire_format_is_left_to_the_decoder_and_types_without_maps_are_not_walked() -> None:
    assert oversized_map(b"\xff\xff\xff", pb.CreateContainerRequest.DESCRIPTOR) is None
    assert oversized_map(b"\x0a\xff", pb.CreateContainerRequest.DESCRIPTOR) is None
    assert not has_maps(pb.VersionRequest.DESCRIPTOR) and not has_maps(pb.ContainerStatusRequest.DESCRIPTOR)
    assert has_maps(pb.ListPodSandboxRequest.DESCRIPTOR) and has_maps(pb.StreamContainersRequest.DESCRIPTOR)
    big_value = pb.CreateContainerRequest(config=pb.ContainerConfig(annotations={"big": "x" * (15 << 20)}))
    assert oversized_map(big_value.SerializeToString(), pb.CreateContainerRequest.DESCRIPTOR) is None
