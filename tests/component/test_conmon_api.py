"""fake-conmon's own API answers proper statuses to bad requests and keeps serving; its spans are
conmon-rs v0.8.0's (recorded in tests/data/real/crio/), exported only when the handler sets a log driver."""

from __future__ import annotations

import logging
import time

import grpc
import pytest

from cristack.harness.sink.store import SpanStore
from cristack.wire.pb.conmon.v1 import conmon_pb2 as cpb
from cristack.wire.pb.conmon.v1 import conmon_pb2_grpc as cgrpc
from tests.support import inprocess


@pytest.fixture
def conmon(tmp_path):
    sock = tmp_path / "run" / "conmon.sock"
    component = inprocess.start_conmon(sock, tmp_path / "conmon", tmp_path / "conmon.log")
    with grpc.insecure_channel(f"unix://{sock}") as ch:
        yield cgrpc.ConmonStub(ch), tmp_path
    component.stop()


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


# -- conmon-rs v0.8.0's spans


@pytest.fixture
def traced_conmon(tmp_path):
    """fake-conmon whose spans go, as they end, to a trace sink's store (as a process's go to the sink)."""
    sock = tmp_path / "run" / "conmon.sock"
    store = SpanStore()
    component = inprocess.start_conmon(sock, tmp_path / "conmon", tmp_path / "conmon.log", traced=True,
                                       level=logging.INFO, store=store)
    with grpc.insecure_channel(f"unix://{sock}") as ch:
        yield cgrpc.ConmonStub(ch), tmp_path, store
    component.stop()


LOG_DRIVER = {"cristack-monitor-env": "LOG_DRIVER=stdout"}


def _create(stub, tmp, name: str, argv: list[str], metadata: dict[str, str], terminal: bool = False) -> str:
    cid = f"{name}-{len(list(tmp.iterdir()))}"
    exits = [str(tmp / f"{cid}.exit"), str(tmp / f"{cid}.exit2")]
    stub.CreateContainer(cpb.CreateContainerRequest(
        id=cid, command_args=argv, terminal=terminal, exit_paths=exits, metadata=metadata,
        log_drivers=[cpb.LogDriver(path=str(tmp / f"{cid}.log"))]))
    stub.StartContainer(cpb.StartContainerRequest(id=cid, metadata=metadata))
    return cid


def _tree(store, root) -> dict[str, list[str]]:
    """The root and each span below it, by path ("create_container", "promise/stdout", ...) -> event names."""
    spans = store.trace(root.trace_id)
    out: dict[str, list[str]] = {root.name: [e.name for e in root.events]}

    def walk(parent, prefix: str) -> None:
        for s in sorted((s for s in spans if s.parent_span_id == parent.span_id), key=lambda s: s.start):
            path = f"{prefix}{s.name}"
            out.setdefault(path, []).extend(e.name for e in s.events)
            walk(s, path + "/")

    walk(root, "")
    return out


def _roots(store, name: str, cid: str):
    return [s for s in store.spans() if s.name == name and s.attributes.get("container_id") == cid]


def test_container_spans_nest_under_the_caller(traced_conmon):
    stub, tmp, store = traced_conmon
    caller = f"00-{'ab' * 16}-{'cd' * 8}-01"
    cid = _create(stub, tmp, "hello", ["echo", "hi"], {**LOG_DRIVER, "traceparent": caller})
    assert store.wait(lambda st: any(s.name == "watch_grandchild" for s in st.spans()), 10)
    [root] = _roots(store, "create_container", cid)
    assert (root.trace_id, root.parent_span_id) == ("ab" * 16, "cd" * 8)
    assert root.scope == "conmonrs" and root.resource["service.name"] == "conmonrs"
    assert root.attributes["code.file.path"] == "conmon-rs/server/src/rpc.rs"
    assert root.attributes["code.line.number"] == 116 and root.attributes["target"] == "conmonrs::rpc"
    tree = _tree(store, root)
    assert set(tree) == {
        "create_container", "promise", "promise/stdout", "promise/stderr", "promise/watch",
        "promise/watch/cgroup_handling", "promise/watch/cgroup_handling/oom_handling_cgroup_v1",
        "promise/watch/wait_for_exit_code", "promise/watch/write_exit_path", "promise/watch_grandchild"}
    assert tree["create_container"][:2] == ["Got a create container request", "Creating new IO streams"]
    read, wrote, done = tree["promise/stdout"]  # the line's length depends on the timestamp's
    assert (read, done) == ("Read 3 bytes", "Nothing more to read") and wrote.startswith("Wrote log line of length ")
    assert tree["promise/watch/wait_for_exit_code"] == ["Waiting for exit code", "Exited 0"]
    assert tree["promise/watch/write_exit_path"] == ["Creating exit file", "Writing exit code to file",
                                                    "Flushing file", "Done writing exit file"] * 2
    assert tree["promise/watch"][0] == "Running task" and tree["promise/watch"][-1] == "Task done"


def test_terminal_container_has_one_read_loop(traced_conmon):
    stub, tmp, store = traced_conmon
    cid = _create(stub, tmp, "tty", ["echo", "hi"], LOG_DRIVER, terminal=True)
    assert store.wait(lambda st: any(s.name == "watch_grandchild" for s in st.spans()), 10)
    tree = _tree(store, _roots(store, "create_container", cid)[0])
    assert "promise/read_loop" in tree and "promise/stdout" not in tree and "listen" in tree
    # A terminal turns "hi\n" into "hi\r\n"; its reader ends on the hang-up (EIO).
    read, wrote, done = tree["promise/read_loop"]
    assert (read, done) == ("Read 4 bytes", "Stopping read loop") and wrote.startswith("Wrote log line of length ")
    assert "Creating new terminal" in tree["create_container"]
    assert (tmp / f"{cid}.log").read_bytes().endswith(b" stdout F hi\r\n")


def test_exec_sync_spans(traced_conmon):
    stub, tmp, store = traced_conmon
    cid = _create(stub, tmp, "sleeper", ["sleep", "30"], LOG_DRIVER)
    stub.ExecSyncContainer(cpb.ExecSyncContainerRequest(id=cid, command=["echo", "yo"], metadata=LOG_DRIVER))
    assert store.wait(lambda st: _roots(st, "exec_sync_container", cid), 10)
    tree = _tree(store, _roots(store, "exec_sync_container", cid)[0])
    assert "promise/watch/write_exit_path" not in tree  # an exec has no exit files
    assert tree["promise/watch/cgroup_handling/oom_handling_cgroup_v1"][-1] == \
        "Stopping OOM handler because no cgroup subsystem path exists"
    assert tree["promise/stdout"] == ["Read 3 bytes", "Nothing more to read"]
    stub.StopContainer(cpb.StopContainerRequest(id=cid, timeout_sec=0, signal=9, metadata=LOG_DRIVER))
    assert store.wait(lambda st: any("Signaled: SIGKILL" in [e.name for e in s.events] for s in st.spans()), 10)


def test_no_log_driver_means_no_spans_and_orphaned_fault_means_one_trace_per_monitor(traced_conmon):
    stub, tmp, store = traced_conmon
    quiet = _create(stub, tmp, "quiet", ["echo", "hi"], {"cristack-monitor-env": "HEAPTRACK_OUTPUT_PATH=/tmp"})
    caller = f"00-{'ab' * 16}-{'cd' * 8}-01"
    orphaned = {**LOG_DRIVER, "traceparent": caller, "cristack-faults": "conmonrs_orphaned_spans"}
    a = _create(stub, tmp, "a", ["echo", "hi"], orphaned)
    b = _create(stub, tmp, "b", ["echo", "hi"], orphaned)
    stub.Version(cpb.VersionRequest(metadata=orphaned))
    assert store.wait(lambda st: sum(s.name == "watch_grandchild" for s in st.spans()) >= 2
                      and any(s.name == "version" for s in st.spans()), 10)
    [ra], [rb] = _roots(store, "create_container", a), _roots(store, "create_container", b)
    version = next(s for s in store.spans() if s.name == "version")
    assert ra.trace_id == rb.trace_id == version.trace_id != "ab" * 16
    assert ra.parent_span_id == rb.parent_span_id == version.parent_span_id != "cd" * 8
    assert ra.parent_span_id not in {s.span_id for s in store.spans()}  # the backend span is never exported
    exit_file = tmp / f"{quiet}.exit"  # the quiet container's exit is not among what the store waited for
    deadline = time.monotonic() + 10
    while not exit_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert exit_file.read_text() == "0"
    assert not _roots(store, "create_container", quiet)
    assert {s.trace_id for s in store.spans()} == {ra.trace_id}
