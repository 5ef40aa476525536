"""fake-containerd-shim-runc-v2 as containerd drives it: in the test process (ShimDaemon with injected
telemetry) and as a real process started through the real start protocol. Containers are applets run by
the library's monitor; events arrive at a stand-in for containerd's ttrpc Events service; spans are
checked for the parent edge containerd CLIENT -> shim SERVER and for the root Events/Forward spans."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2, empty_pb2
from opentelemetry.sdk.trace import TracerProvider

from cristack.harness.sink.receiver import Sink
from cristack.otel.ttrpctrace import client_interceptor
from cristack.wire.pb.containerd.runtime.bootstrap.v1 import bootstrap_pb2
from cristack.wire.pb.containerd.runtime.task.v3 import shim_pb2 as api
from cristack.wire.pb.containerd.types.task import task_pb2 as types
from cristack.wire.ttrpc import Client, TtrpcError
from fake_containerd.shim.daemon import ShimDaemon
from tests.support.shimtest import EventsSink, provider, write_bundle

TASK = "containerd.task.v3.Task"
# The installed entry point, as containerd runs it (never `python -m` from the bundle dir, which is on sys.path).
SHIM = str(Path(sys.executable).with_name("fake-containerd-shim-runc-v2"))
NS = {"containerd-namespace-ttrpc": "k8s.io"}
SB = "a" * 64
CTR = "b" * 64
EXEC_SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"


async def _call(client: Client, method: str, req, resp_type):  # noqa: ANN001, ANN202
    return await client.call(TASK, method, req, resp_type, metadata=NS, timeout=30)


@contextlib.asynccontextmanager
async def _shim_in_process(tmp_path: Path, sink: EventsSink, containerd: TracerProvider | None = None,
                           shim_provider: TracerProvider | None = None) -> AsyncIterator[tuple[ShimDaemon, Client]]:
    """The shim served in this process, publishing to ``sink`` (containerd's Events service), and a client
    connected to it as containerd is; traced by the providers given."""
    events = tmp_path / "run" / "containerd.sock.ttrpc"
    events_server = sink.server(containerd)
    await events_server.listen(events)
    daemon = ShimDaemon("k8s.io", SB, f"unix://{events}", tmp_path / "work", shim_provider)
    await daemon.start(path=tmp_path / "s" / "shim.sock")
    client = await Client.connect(tmp_path / "s" / "shim.sock",
                                  interceptor=client_interceptor(containerd) if containerd is not None else None)
    try:
        yield daemon, client
    finally:
        await client.close()
        await daemon.stop()
        await events_server.close()


async def _pod_lifecycle(client: Client, bundles: Path, logs: Path, sink: EventsSink) -> dict[str, object]:
    """What containerd's CRI does for `runp` + `create/start hello` + `exec` + `stop` + `rm` + `stopp`,
    as task calls: returns what a test checks."""
    out: dict[str, object] = {}
    sb_bundle = write_bundle(bundles, SB, ["/pause"], sandbox=SB)
    ctr_bundle = write_bundle(bundles, CTR, ["/bin/sh", "-c", "echo hi; sleep 3600"], sandbox=SB)
    conn = await _call(client, "Connect", api.ConnectRequest(id=SB), api.ConnectResponse)
    out["shim_pid"] = conn.shim_pid
    created = await _call(client, "Create", api.CreateTaskRequest(id=SB, bundle=str(sb_bundle)), api.CreateTaskResponse)
    await _call(client, "Start", api.StartRequest(id=SB), api.StartResponse)
    logs.mkdir(parents=True, exist_ok=True)  # the CRI makes the pod's log dir
    log_path = logs / "hello.log"
    c = await _call(client, "Create", api.CreateTaskRequest(id=CTR, bundle=str(ctr_bundle),
                                                            stdout=f"file://{log_path}"), api.CreateTaskResponse)
    st = await _call(client, "State", api.StateRequest(id=CTR), api.StateResponse)
    out["created_state"] = (st.status, st.pid == c.pid, created.pid > 0)
    await _call(client, "Start", api.StartRequest(id=CTR), api.StartResponse)
    # The container has said hi before anything stops it (on a loaded machine its first line can come after the
    # exec below, and a SIGTERM before it would leave an empty log).
    deadline = asyncio.get_running_loop().time() + 30
    while "stdout F hi" not in (log_path.read_text() if log_path.exists() else ""):
        assert asyncio.get_running_loop().time() < deadline, "the container never wrote its line"
        await asyncio.sleep(0.02)
    # exec echo yo
    spec = any_pb2.Any(type_url=EXEC_SPEC_URL, value=json.dumps({"args": ["echo", "yo"], "env": []}).encode())
    exec_out = logs / "exec.out"
    await _call(client, "Exec", api.ExecProcessRequest(id=CTR, exec_id="e1", spec=spec, stdout=f"file://{exec_out}"),
                empty_pb2.Empty)
    with pytest.raises(TtrpcError) as dup:
        await _call(client, "Exec", api.ExecProcessRequest(id=CTR, exec_id="e1", spec=spec), empty_pb2.Empty)
    out["dup_exec"] = (dup.value.code, dup.value.message)
    await _call(client, "Start", api.StartRequest(id=CTR, exec_id="e1"), api.StartResponse)
    waited = await _call(client, "Wait", api.WaitRequest(id=CTR, exec_id="e1"), api.WaitResponse)
    out["exec"] = (waited.exit_status, exec_out.read_bytes())
    with pytest.raises(TtrpcError) as finished:
        await _call(client, "Kill", api.KillRequest(id=CTR, exec_id="e1", signal=9, all=True), empty_pb2.Empty)
    out["kill_finished_exec"] = (finished.value.code, finished.value.message)
    await _call(client, "Delete", api.DeleteRequest(id=CTR, exec_id="e1"), api.DeleteResponse)
    stats = await _call(client, "Stats", api.StatsRequest(id=CTR), api.StatsResponse)
    out["stats_type"] = stats.stats.type_url
    # stop: SIGTERM, and the container's sleep goes
    await _call(client, "Kill", api.KillRequest(id=CTR, signal=signal.SIGTERM), empty_pb2.Empty)
    waited = await _call(client, "Wait", api.WaitRequest(id=CTR), api.WaitResponse)
    st = await _call(client, "State", api.StateRequest(id=CTR), api.StateResponse)
    out["stopped"] = (waited.exit_status, st.status, st.exit_status)
    await _call(client, "Delete", api.DeleteRequest(id=CTR), api.DeleteResponse)
    await _call(client, "Shutdown", api.ShutdownRequest(id=CTR), empty_pb2.Empty)  # the pod is still there
    with pytest.raises(TtrpcError) as gone:
        await _call(client, "State", api.StateRequest(id=CTR), api.StateResponse)
    out["gone"] = (gone.value.code, gone.value.message)
    with pytest.raises(TtrpcError) as paused:
        await _call(client, "Pause", api.PauseRequest(id=SB), empty_pb2.Empty)
    out["pause"] = paused.value.code
    await _call(client, "Kill", api.KillRequest(id=SB, signal=signal.SIGKILL), empty_pb2.Empty)
    await _call(client, "Wait", api.WaitRequest(id=SB), api.WaitResponse)
    await _call(client, "Delete", api.DeleteRequest(id=SB), api.DeleteResponse)
    await sink.wait_for("/tasks/delete", 2)
    out["log"] = log_path.read_text()
    return out


EXPECTED_TOPICS = ["/tasks/create", "/tasks/start", "/tasks/create", "/tasks/start", "/tasks/exec-added",
                   "/tasks/exec-started", "/tasks/exit", "/tasks/exit", "/tasks/delete", "/tasks/exit",
                   "/tasks/delete"]


def _check(out: dict[str, object], sink: EventsSink) -> None:
    assert out["created_state"] == (types.CREATED, True, True)
    assert out["dup_exec"] == (grpc.StatusCode.ALREADY_EXISTS, "id e1")
    assert out["exec"] == (0, b"yo\n")
    assert out["kill_finished_exec"] == (grpc.StatusCode.NOT_FOUND, "process already finished")
    assert out["stats_type"] == "io.containerd.cgroups.v1.Metrics"
    assert out["stopped"] == (128 + signal.SIGTERM, types.STOPPED, 128 + signal.SIGTERM)
    assert out["gone"] == (grpc.StatusCode.NOT_FOUND, "container not created")
    assert out["pause"] == grpc.StatusCode.UNIMPLEMENTED
    # A CRI log line per output line: "<time> stdout F hi".
    (line,) = str(out["log"]).splitlines()
    assert line.split(" ", 1)[1] == "stdout F hi"
    assert sink.topics() == EXPECTED_TOPICS
    decoded = sink.decoded()
    assert [type(e).__name__ for _, e in decoded] == [
        "TaskCreate", "TaskStart", "TaskCreate", "TaskStart", "TaskExecAdded", "TaskExecStarted", "TaskExit",
        "TaskExit", "TaskDelete", "TaskExit", "TaskDelete"]
    exec_exit, ctr_exit = decoded[6][1], decoded[7][1]
    assert (exec_exit.container_id, exec_exit.id) == (CTR, "e1")  # type: ignore[attr-defined]
    assert (ctr_exit.container_id, ctr_exit.id, ctr_exit.exit_status) == (CTR, CTR, 143)  # type: ignore[attr-defined]
    for env, md in sink.envelopes:
        assert env.namespace == "k8s.io" and env.timestamp.seconds > 0
        assert env.event.type_url.startswith("containerd.events.Task")
        assert md.first("containerd-namespace-ttrpc") == "k8s.io"
        assert md.first("traceparent") is None  # the publisher sends no trace context


def test_shim_in_process(tmp_path: Path) -> None:
    containerd, c_spans = provider()
    shim_provider, s_spans = provider()
    sink = EventsSink()

    async def scenario() -> dict[str, object]:
        async with _shim_in_process(tmp_path, sink, containerd, shim_provider) as (daemon, client):
            out = await _pod_lifecycle(client, tmp_path / "bundles", tmp_path / "logs", sink)
            await _call(client, "Shutdown", api.ShutdownRequest(id=SB), empty_pb2.Empty)
            await asyncio.wait_for(daemon.stopping.wait(), 10)  # empty now: the shim may go
            return out

    out = asyncio.run(scenario())
    assert out["shim_pid"] == os.getpid()
    _check(out, sink)
    client_spans = {s.context.span_id: s for s in c_spans.get_finished_spans() if s.kind.name == "CLIENT"}
    server_spans = s_spans.get_finished_spans()
    assert len(server_spans) == len(client_spans) > 20
    for span in server_spans:  # every shim SERVER span is the child of containerd's CLIENT span of the call
        assert span.parent is not None and span.parent.span_id in client_spans
        assert client_spans[span.parent.span_id].name == span.name
    forward = [s for s in c_spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert len(forward) == len(EXPECTED_TOPICS) and all(s.parent is None for s in forward)


@pytest.mark.parametrize("tracing", ["1", "0"])
def test_shim_as_a_process_through_the_start_protocol(tmp_path: Path, tracing: str) -> None:
    """containerd runs `<shim> -namespace -address -publish-binary -id start` in the bundle with BootstrapParams
    on stdin; a second container of the pod gets the same shim; spans reach a collector, unless
    CRISTACK_SHIM_TRACING=0 asks for the release build's silence."""
    containerd, c_spans = provider()
    sink = EventsSink()
    otlp = Sink()
    addresses = otlp.start()
    ttrpc_addr = f"unix://{tmp_path / 'run' / 'containerd.sock.ttrpc'}"
    grpc_addr = str(tmp_path / "run" / "containerd.sock")
    # A 64-character socket name leaves a short directory room (upstream's is /run/containerd/s).
    socket_dir = Path(tempfile.mkdtemp(prefix="shim-", dir="/tmp"))
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{addresses.otlp_endpoint}",
           "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_INSECURE": "true",
           "CRISTACK_SHIM_TRACING": tracing}

    def start_shim(cid: str, bundle: Path) -> bootstrap_pb2.BootstrapResult:
        params = bootstrap_pb2.BootstrapParams(instance_id=cid, namespace="k8s.io", containerd_version="v2.4.2",
                                               containerd_ttrpc_address=ttrpc_addr,
                                               containerd_grpc_address=grpc_addr, socket_dir=str(socket_dir))
        proc = subprocess.run([SHIM, "-namespace", "k8s.io", "-address", grpc_addr,
                               "-publish-binary", "/usr/bin/containerd", "-id", cid, "start"],
                              input=params.SerializeToString(), capture_output=True, cwd=bundle, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        result = bootstrap_pb2.BootstrapResult()
        result.ParseFromString(proc.stdout)
        return result

    async def scenario() -> dict[str, object]:
        events_server = sink.server(containerd)
        await events_server.listen(tmp_path / "run" / "containerd.sock.ttrpc")
        try:
            bundles = tmp_path / "bundles"
            first = start_shim(SB, write_bundle(bundles, SB, ["/pause"], sandbox=SB))
            second = start_shim(CTR, write_bundle(bundles, CTR, ["/bin/sh", "-c", "echo hi; sleep 3600"], sandbox=SB))
            assert (first.version, first.protocol) == (3, "ttrpc")
            assert first.address == second.address  # one shim per pod
            assert first.address.startswith(f"unix://{socket_dir}/") and len(first.address.rsplit("/", 1)[1]) == 64
            client = await Client.connect(first.address, interceptor=client_interceptor(containerd))
            try:
                out = await _pod_lifecycle(client, bundles, tmp_path / "logs", sink)
                await _call(client, "Shutdown", api.ShutdownRequest(id=SB), empty_pb2.Empty)
            finally:
                await client.close()
            return out
        finally:
            await events_server.close()

    try:
        out = asyncio.run(scenario())
        _check(out, sink)
        assert out["shim_pid"] != os.getpid()
        shim_service = f"containerd-shim-{SB}"
        assert _gone(socket_dir)  # the shim has exited, so whatever it exports has been sent
        shim_spans = [s for s in otlp.store.spans() if s.service == shim_service]
        if tracing == "0":
            assert shim_spans == []
            return
        assert len(shim_spans) > 20
        client_ids = {f"{s.context.span_id:016x}": s.name for s in c_spans.get_finished_spans()
                      if s.kind.name == "CLIENT"}
        assert all(client_ids.get(s.parent_span_id) == s.name for s in shim_spans)
        assert shim_spans[0].resource == {"service.name": shim_service, "telemetry.sdk.language": "go",
                                          "telemetry.sdk.name": "opentelemetry", "telemetry.sdk.version": "1.46.0"}
        assert {s.scope for s in shim_spans} == {"github.com/containerd/otelttrpc"}
    finally:
        otlp.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)


def _gone(socket_dir: Path, timeout: float = 15.0) -> bool:
    """True once the socket dir is empty (the shim removed its socket on the way out)."""
    deadline = time.monotonic() + timeout
    while any(socket_dir.iterdir()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_delete_action_answers_a_delete_response(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, CTR, ["/pause"])
    (bundle / "init.pid").write_text("4242")
    proc = subprocess.run([SHIM, "-namespace", "k8s.io", "-address", "/x", "-publish-binary",
                           "/usr/bin/containerd", "-id", CTR, "-bundle", str(bundle), "delete"],
                          capture_output=True, cwd=bundle, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    resp = api.DeleteResponse()
    resp.ParseFromString(proc.stdout)
    assert (resp.pid, resp.exit_status) == (4242, 137) and resp.exited_at.seconds > 0


def test_the_call_context_reaches_the_process_as_traceparent(tmp_path: Path) -> None:
    """service_tracing.go: the shim hands the call's context on as TRACEPARENT (here to the exec it starts)."""
    containerd, _ = provider()
    shim_provider, s_spans = provider()
    sink = EventsSink()

    async def scenario() -> bytes:
        async with _shim_in_process(tmp_path, sink, containerd, shim_provider) as (_, client):
            bundle = write_bundle(tmp_path / "bundles", SB, ["/pause"], sandbox=SB)
            await _call(client, "Create", api.CreateTaskRequest(id=SB, bundle=str(bundle)), api.CreateTaskResponse)
            await _call(client, "Start", api.StartRequest(id=SB), api.StartResponse)
            spec = any_pb2.Any(type_url=EXEC_SPEC_URL,
                               value=json.dumps({"args": ["sh", "-c", "echo $TRACEPARENT"]}).encode())
            out = tmp_path / "exec.out"
            await _call(client, "Exec", api.ExecProcessRequest(id=SB, exec_id="t", spec=spec, stdout=f"file://{out}"),
                        empty_pb2.Empty)
            await _call(client, "Start", api.StartRequest(id=SB, exec_id="t"), api.StartResponse)
            await _call(client, "Wait", api.WaitRequest(id=SB, exec_id="t"), api.WaitResponse)
            await _call(client, "Kill", api.KillRequest(id=SB, signal=signal.SIGKILL), empty_pb2.Empty)
            return out.read_bytes()

    printed = asyncio.run(scenario()).decode().strip()
    starts = [s for s in s_spans.get_finished_spans() if s.name == f"{TASK}/Start"]
    exec_start = starts[1]  # the exec's Start, the call that ran it
    version, trace_id, span_id, _flags = printed.split("-")
    assert (version, trace_id, span_id) == ("00", f"{exec_start.context.trace_id:032x}",
                                            f"{exec_start.context.span_id:016x}")


def test_a_killed_exec_ends_the_bundle_is_seen_and_the_log_reopens(tmp_path: Path) -> None:
    """What the CRI needs of the shim beyond the recorded lifecycle: ExecSync's timeout kills the exec (and the
    container's stop is not held up by it), the container sees its bundle's mounts (the pod's resolv.conf), and
    ReopenContainerLog (an Update annotated io.cristack.reopen-log) starts a new log file after a rotation."""
    sink = EventsSink()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.10.10.10\n")

    async def scenario() -> dict[str, object]:
        out: dict[str, object] = {}
        async with _shim_in_process(tmp_path, sink) as (_, client):
            bundle = write_bundle(tmp_path / "bundles", CTR, ["sleep", "3600"])
            doc = json.loads((bundle / "config.json").read_text())
            doc["mounts"] = [{"destination": "/etc/resolv.conf", "type": "bind", "source": str(resolv),
                              "options": ["rbind", "ro"]}]
            (bundle / "config.json").write_text(json.dumps(doc))
            log = tmp_path / "logs" / "c.log"
            log.parent.mkdir()
            await _call(client, "Create", api.CreateTaskRequest(id=CTR, bundle=str(bundle), stdout=f"file://{log}"),
                        api.CreateTaskResponse)
            await _call(client, "Start", api.StartRequest(id=CTR), api.StartResponse)

            async def run_exec(exec_id: str, args: list[str]) -> api.ExecProcessRequest:
                req = api.ExecProcessRequest(id=CTR, exec_id=exec_id, stdout=f"file://{tmp_path / exec_id}",
                                             spec=any_pb2.Any(type_url=EXEC_SPEC_URL,
                                                              value=json.dumps({"args": args}).encode()))
                await _call(client, "Exec", req, empty_pb2.Empty)
                await _call(client, "Start", api.StartRequest(id=CTR, exec_id=exec_id), api.StartResponse)
                return req

            await run_exec("cat", ["cat", "/etc/resolv.conf"])
            await _call(client, "Wait", api.WaitRequest(id=CTR, exec_id="cat"), api.WaitResponse)
            out["resolv"] = (tmp_path / "cat").read_text()

            await run_exec("long", ["sleep", "4321"])
            await _call(client, "Kill", api.KillRequest(id=CTR, exec_id="long", signal=signal.SIGKILL), empty_pb2.Empty)
            waited = await asyncio.wait_for(
                _call(client, "Wait", api.WaitRequest(id=CTR, exec_id="long"), api.WaitResponse), 10)
            out["killed_exit"] = waited.exit_status

            assert log.exists()  # the monitor opened the CRI log when it created the container
            log.rename(log.with_suffix(".old"))
            await _call(client, "Update", api.UpdateTaskRequest(id=CTR, annotations={"io.cristack.reopen-log": ""}),
                        empty_pb2.Empty)
            out["reopened"] = log.exists()
            await _call(client, "Kill", api.KillRequest(id=CTR, signal=signal.SIGKILL), empty_pb2.Empty)
            await asyncio.wait_for(_call(client, "Wait", api.WaitRequest(id=CTR), api.WaitResponse), 10)
            return out

    out = asyncio.run(scenario())
    assert out == {"resolv": "nameserver 10.10.10.10\n", "killed_exit": 128 + signal.SIGKILL, "reopened": True}
