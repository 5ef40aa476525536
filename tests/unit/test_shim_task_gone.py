"""A task call that a Delete overtakes answers NotFound, as containerd's tasks service does for a task it no longer
has; only a shim that went away by itself is Unavailable.

CI saw critest's "Image Identifier Consistency" fail on fake-containerd: its container exited at once, the exit
handler deleted the task (and closed that task's connection) while RemoveContainer's stop was killing it, and
the kill answered "shim ... is gone" (Unavailable) where StopContainer takes NotFound as already stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from google.protobuf import empty_pb2

from cristack.wire.errors import NotFound, Unavailable
from cristack.wire.pb.containerd.runtime.bootstrap.v1 import bootstrap_pb2
from cristack.wire.pb.containerd.runtime.task.v3 import shim_pb2 as api
from cristack.wire.ttrpc import CallContext, Client, Method, Server
from fake_containerd.runtime.shim import TASK_SERVICE, ShimTask


async def _kill_in_flight(sock: Path, end: str) -> BaseException | None:
    server = Server()
    entered = asyncio.Event()

    async def kill(ctx: CallContext, req: api.KillRequest) -> empty_pb2.Empty:
        entered.set()
        await asyncio.Event().wait()  # never answers: the call is in flight when the connection ends
        return empty_pb2.Empty()

    server.register(TASK_SERVICE, {"Kill": Method(api.KillRequest, kill)})
    await server.listen(sock)
    try:
        task = ShimTask("c1", sock.parent, await Client.connect(str(sock)), bootstrap_pb2.BootstrapResult())
        call = asyncio.ensure_future(task.kill(9))
        await entered.wait()
        if end == "deleted":
            await task.close()  # what ShimManager.forget does after Delete and Shutdown
        else:
            await server.close()  # the shim itself went away
        try:
            await asyncio.wait_for(call, 30)
        except BaseException as err:  # noqa: BLE001 - the answer is what is checked
            return err
        return None
    finally:
        await server.close()


@pytest.mark.parametrize("end, expected", [("deleted", NotFound), ("shim gone", Unavailable)])
def test_a_call_overtaken_by_the_end_of_its_task(tmp_path: Path, end: str, expected: type) -> None:
    err = asyncio.run(_kill_in_flight(tmp_path / "shim.sock", end))
    assert isinstance(err, expected), repr(err)
    if expected is NotFound:
        assert str(err) == "task c1 not found"
