"""fake-conmon's own API answers proper statuses to bad requests and keeps serving."""

from __future__ import annotations

import grpc
import pytest

from cristack.pb.conmon.v1 import conmon_pb2 as cpb
from cristack.pb.conmon.v1 import conmon_pb2_grpc as cgrpc
from tests.conftest import start_conmon


@pytest.fixture
def conmon(tmp_path):
    handle = start_conmon(tmp_path)
    with grpc.insecure_channel(f"unix://{handle.socket}") as ch:
        yield cgrpc.ConmonStub(ch), tmp_path
    handle.proc.stop()


def code(call, req) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call(req)
    assert err.value.details()
    return err.value.code()


def test_statuses(conmon):
    stub, tmp = conmon
    v = stub.Version(cpb.VersionRequest())
    assert v.version and len(v.instance_id) == 32
    IA, NF, AE, FP = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                      grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION)
    assert code(stub.CreateContainer, cpb.CreateContainerRequest()) == IA
    assert code(stub.CreateContainer, cpb.CreateContainerRequest(id="a")) == IA
    assert code(stub.CreateContainer, cpb.CreateContainerRequest(id="a", command_args=["true"],
                                                                 exit_paths=["relative"])) == IA
    assert code(stub.StartContainer, cpb.StartContainerRequest(id="nope")) == NF
    assert code(stub.StopContainer, cpb.StopContainerRequest(id="nope")) == NF
    assert code(stub.ExecSyncContainer, cpb.ExecSyncContainerRequest(id="nope", command=["true"])) == NF
    assert code(stub.CreateNamespaces, cpb.CreateNamespacesRequest()) == IA
    exit_file = tmp / "exit-a"
    stub.CreateContainer(cpb.CreateContainerRequest(id="a", command_args=["sleep", "30"], exit_paths=[str(exit_file)]))
    assert code(stub.CreateContainer, cpb.CreateContainerRequest(id="a", command_args=["true"])) == AE
    stub.StartContainer(cpb.StartContainerRequest(id="a"))
    assert code(stub.StartContainer, cpb.StartContainerRequest(id="a")) == FP
    out = stub.ExecSyncContainer(cpb.ExecSyncContainerRequest(id="a", command=["echo", "x"]))
    assert (out.stdout, out.exit_code, out.timed_out) == (b"x\n", 0, False)
    out = stub.ExecSyncContainer(cpb.ExecSyncContainerRequest(id="a", command=["sleep", "9"], timeout_sec=1))
    assert out.timed_out
    stopped = stub.StopContainer(cpb.StopContainerRequest(id="a", timeout_sec=2))
    assert stopped.exit_code == 143
    assert exit_file.read_text() == "143"
    ns = stub.CreateNamespaces(cpb.CreateNamespacesRequest(pod_id="p", namespaces=[cpb.CreateNamespacesRequest.NET]))
    assert ns.namespaces[0].path.endswith("netns/p")
