"""The ttrpc wire (cristack.wire.ttrpc) against ttrpc v1.2.9's framing and statuses, on real unix sockets.

What a containerd engineer would check: frames are 10-byte headers with odd client stream ids, calls on
one connection run concurrently and each gets its own answer, metadata and the deadline reach the
handler, and every fault gets the status (code and text) ttrpc answers, with the connection still
usable afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, wrappers_pb2

from cristack.wire.errors import NotFound
from cristack.wire.pb.ttrpc import request_pb2
from cristack.wire.ttrpc import MD, CallContext, Client, Closed, Method, Server, TtrpcError
from cristack.wire.ttrpc.channel import HEADER, MESSAGE_LENGTH_MAX, MessageType, encode

SVC = "cristack.test.v1.Echo"


def _server(**kw: object) -> tuple[Server, list[CallContext]]:
    """An Echo service; ``seen`` gets each Echo call's context; ``server.slow_started`` is set by Slow."""
    seen: list[CallContext] = []
    server = Server(**kw)  # type: ignore[arg-type]
    started = asyncio.Event()
    server.slow_started = started  # type: ignore[attr-defined]

    async def echo(ctx: CallContext, req: wrappers_pb2.StringValue) -> wrappers_pb2.StringValue:
        seen.append(ctx)
        return wrappers_pb2.StringValue(value=req.value)

    async def missing(ctx: CallContext, req: empty_pb2.Empty) -> empty_pb2.Empty:
        raise NotFound("container not created")

    async def slow(ctx: CallContext, req: wrappers_pb2.StringValue) -> wrappers_pb2.StringValue:
        started.set()
        await asyncio.sleep(float(req.value))
        return req

    server.register(SVC, {"Echo": Method(wrappers_pb2.StringValue, echo),
                          "Missing": Method(empty_pb2.Empty, missing),
                          "Slow": Method(wrappers_pb2.StringValue, slow)})
    return server, seen


@contextlib.asynccontextmanager
async def _serving(sock: Path, server: Server | None = None) -> AsyncIterator[tuple[Server, list[CallContext]]]:
    """``server`` (default: ``_server()``'s Echo service) listening on ``sock``, closed at the end."""
    seen: list[CallContext] = []
    if server is None:
        server, seen = _server()
    await server.listen(sock)
    try:
        yield server, seen
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def _connected(address: str | Path, **kw: Any) -> AsyncIterator[Client]:
    """A client connected to ``address``, closed at the end."""
    client = await Client.connect(address, **kw)
    try:
        yield client
    finally:
        await client.close()


async def _raw_call(sock: Path, frames: list[bytes], answers: int) -> list[tuple[int, int, int, request_pb2.Response]]:
    """Writes frames as a hostile or odd peer would, reads ``answers`` responses."""
    reader, writer = await asyncio.open_unix_connection(str(sock))
    try:
        for f in frames:
            writer.write(f)
        await writer.drain()
        out = []
        for _ in range(answers):
            length, sid, mtype, flags = HEADER.unpack(await reader.readexactly(10))
            resp = request_pb2.Response()
            resp.ParseFromString(await reader.readexactly(length))
            out.append((sid, mtype, flags, resp))
        return out
    finally:
        writer.close()


def _request(sid: int, service: str = SVC, method: str = "Echo", payload: bytes = b"") -> bytes:
    body = request_pb2.Request(service=service, method=method, payload=payload).SerializeToString()
    return encode(sid, MessageType.REQUEST, 0, body)


def test_call_carries_payload_metadata_and_deadline(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _serving(tmp_path / "s.sock") as (_, seen), _connected(f"unix://{tmp_path / 's.sock'}") as client:
            md = MD({"Containerd-Namespace-Ttrpc": "k8s.io", "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
            out = await client.call(SVC, "Echo", wrappers_pb2.StringValue(value="hi"), wrappers_pb2.StringValue,
                                    metadata=md, timeout=30)
            assert out.value == "hi"
            ctx = seen[0]
            assert ctx.full_method == f"/{SVC}/Echo"
            # MD.Set lower-cases keys, as ttrpc's does; the server looks them up case-blind.
            assert dict(ctx.metadata.items()) == {"containerd-namespace-ttrpc": "k8s.io",
                                                  "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
            remaining = ctx.time_remaining()
            assert remaining is not None and 0 < remaining <= 30
            await client.call(SVC, "Echo", wrappers_pb2.StringValue(value="x"), wrappers_pb2.StringValue)
            assert seen[1].deadline is None and len(seen[1].metadata) == 0

    asyncio.run(scenario())


def test_concurrent_calls_on_one_connection_use_rising_odd_ids(tmp_path: Path) -> None:
    """Answers that come back in reverse order still reach their own callers."""
    async def scenario() -> None:
        ids: list[int] = []

        async def record(req: request_pb2.Request, name: str, invoke):  # noqa: ANN001
            resp = await invoke(req)
            return resp

        async with _serving(tmp_path / "s.sock"), _connected(tmp_path / "s.sock", interceptor=record) as client:
            orig = client._writer.write

            def spy(data: bytes) -> None:
                ids.append(struct.unpack(">I", data[4:8])[0])
                orig(data)

            client._writer.write = spy  # type: ignore[method-assign]
            delays = [0.3, 0.2, 0.1, 0.0]
            calls = [client.call(SVC, "Slow", wrappers_pb2.StringValue(value=str(d)), wrappers_pb2.StringValue)
                     for d in delays]
            answers = await asyncio.gather(*calls)
            assert [a.value for a in answers] == [str(d) for d in delays]
            assert sorted(ids) == [1, 3, 5, 7]

    asyncio.run(scenario())


def test_statuses_as_ttrpc_answers_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _serving(tmp_path / "s.sock"), _connected(tmp_path / "s.sock") as client:
            with pytest.raises(TtrpcError) as err:
                await client.call(SVC, "Missing", empty_pb2.Empty(), empty_pb2.Empty)
            assert (err.value.code, err.value.message) == (grpc.StatusCode.NOT_FOUND, "container not created")
            assert str(err.value) == "rpc error: code = NotFound desc = container not created"
            with pytest.raises(TtrpcError) as err:
                await client.call("no.Such", "Echo", empty_pb2.Empty(), empty_pb2.Empty)
            assert (err.value.code, err.value.message) == (grpc.StatusCode.UNIMPLEMENTED, "service no.Such")
            with pytest.raises(TtrpcError) as err:
                await client.call(SVC, "Nope", empty_pb2.Empty(), empty_pb2.Empty)
            assert (err.value.code, err.value.message) == (grpc.StatusCode.UNIMPLEMENTED, "method Nope")
            # A payload that is not the method's argument type.
            bad = wrappers_pb2.BytesValue(value=b"\xff\xfe")  # field 1, but not UTF-8: no StringValue
            with pytest.raises(TtrpcError) as err:
                await client.call(SVC, "Echo", bad, wrappers_pb2.StringValue)
            assert err.value.code == grpc.StatusCode.INTERNAL
            assert err.value.message.startswith("ttrpc: error unmarshalling payload: ")
            # The connection is still good.
            ok = await client.call(SVC, "Echo", wrappers_pb2.StringValue(value="still"), wrappers_pb2.StringValue)
            assert ok.value == "still"

    asyncio.run(scenario())


def test_server_deadline_from_timeout_nano(tmp_path: Path) -> None:
    """The caller's timeout_nano bounds the handler: DEADLINE_EXCEEDED "context deadline exceeded"."""
    async def scenario() -> None:
        async def short_deadline(req: request_pb2.Request, name: str, invoke):  # noqa: ANN001
            req.timeout_nano = 50_000_000  # 50 ms on the wire; the client itself waits without a limit
            return await invoke(req)

        async with _serving(tmp_path / "s.sock"), _connected(tmp_path / "s.sock", interceptor=short_deadline) as client:
            with pytest.raises(TtrpcError) as err:
                await client.call(SVC, "Slow", wrappers_pb2.StringValue(value="60"), wrappers_pb2.StringValue)
            assert (err.value.code, err.value.message) == (grpc.StatusCode.DEADLINE_EXCEEDED,
                                                           "context deadline exceeded")

    asyncio.run(scenario())


def test_protocol_faults_answer_on_their_stream(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _serving(tmp_path / "s.sock"):
            payload = wrappers_pb2.StringValue(value="ok").SerializeToString()
            answers = await _raw_call(tmp_path / "s.sock", [
                _request(2),  # even id
                _request(5, payload=payload),
                _request(3),  # below the last id
                encode(7, MessageType.DATA, 0, b""),  # a stream we do not have
                encode(9, MessageType.REQUEST, 0, b"\xff\xff"),  # not a Request
            ], 5)
            by_id = {sid: (mtype, flags, resp.status.code, resp.status.message) for sid, mtype, flags, resp in answers}
            assert by_id[2] == (2, 0, 3, "StreamID must be odd for client initiated streams")
            assert by_id[5][:3] == (2, 0, 0)
            assert by_id[3] == (2, 0, 3, "StreamID cannot be re-used and must increment")
            assert by_id[7] == (2, 0, 3, "StreamID is no longer active")
            assert by_id[9][2] == 3 and by_id[9][3].startswith("unmarshal request error: ")
            ok = [resp for sid, _, _, resp in answers if sid == 5][0]
            assert ok.HasField("status")  # an OK status is sent, as upstream does
            assert wrappers_pb2.StringValue.FromString(ok.payload).value == "ok"

    asyncio.run(scenario())


def test_oversized_message_is_refused_and_the_connection_lives_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _serving(tmp_path / "s.sock"), _connected(tmp_path / "s.sock") as client:
            length = MESSAGE_LENGTH_MAX + 1
            big = HEADER.pack(length, 1, MessageType.REQUEST, 0) + b"\0" * length
            answers = await _raw_call(tmp_path / "s.sock", [big, _request(3)], 2)
            assert [(sid, resp.status.code, resp.status.message) for sid, _, _, resp in answers] == [
                (1, 8, f"message length {length} exceed maximum message size of 4194304"), (3, 0, "")]
            # Sending one: refused before anything is written; the same client goes on working.
            with pytest.raises(TtrpcError) as err:
                await client.call(SVC, "Echo", wrappers_pb2.StringValue(value="x" * MESSAGE_LENGTH_MAX),
                                  wrappers_pb2.StringValue)
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "exceed maximum message size of 4194304" in err.value.message
            ok = await client.call(SVC, "Echo", wrappers_pb2.StringValue(value="y"), wrappers_pb2.StringValue)
            assert ok.value == "y"

    asyncio.run(scenario())


def test_a_huge_length_prefix_is_never_allocated(tmp_path: Path) -> None:
    """A peer claiming a 4 GiB message and then hanging up costs the server a closed connection, not memory."""
    async def scenario() -> None:
        async with _serving(tmp_path / "s.sock"):
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / "s.sock"))
            writer.write(HEADER.pack(0xFFFFFFFF, 1, MessageType.REQUEST, 0) + b"\0" * 1024)
            await writer.drain()
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 30) == b""  # closed, nothing answered
            writer.close()
            # Still serving others.
            answers = await _raw_call(tmp_path / "s.sock", [_request(1)], 1)
            assert answers[0][3].status.code == 0

    asyncio.run(scenario())


def test_closed_connection_fails_pending_calls_with_ttrpc_closed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _serving(tmp_path / "s.sock") as (server, _), _connected(tmp_path / "s.sock") as client:
            pending = asyncio.ensure_future(
                client.call(SVC, "Slow", wrappers_pb2.StringValue(value="60"), wrappers_pb2.StringValue))
            await server.slow_started.wait()  # type: ignore[attr-defined]
            await server.close()
            with pytest.raises(Closed) as err:
                await pending
            assert (err.value.code, str(err.value)) == (grpc.StatusCode.UNKNOWN, "ttrpc: closed")
            with pytest.raises(Closed):
                await client.call(SVC, "Echo", wrappers_pb2.StringValue(value="late"), wrappers_pb2.StringValue)

    asyncio.run(scenario())


def test_calls_per_connection_are_bounded(tmp_path: Path) -> None:
    """With room for one call, the second starts only once the first has answered (the reader waits)."""
    async def scenario() -> None:
        order: list[str] = []
        first_started, second_started = asyncio.Event(), asyncio.Event()
        server = Server(max_active=1)

        async def first(ctx: CallContext, req: empty_pb2.Empty) -> wrappers_pb2.BoolValue:
            order.append("first")
            first_started.set()
            try:
                await asyncio.wait_for(second_started.wait(), 0.3)
                saw = True
            except asyncio.TimeoutError:
                saw = False
            order.append("first done")
            return wrappers_pb2.BoolValue(value=saw)

        async def second(ctx: CallContext, req: empty_pb2.Empty) -> empty_pb2.Empty:
            order.append("second")
            second_started.set()
            return empty_pb2.Empty()

        server.register(SVC, {"First": Method(empty_pb2.Empty, first), "Second": Method(empty_pb2.Empty, second)})
        async with _serving(tmp_path / "s.sock", server), _connected(tmp_path / "s.sock") as client:
            one = asyncio.ensure_future(client.call(SVC, "First", empty_pb2.Empty(), wrappers_pb2.BoolValue))
            await first_started.wait()
            await client.call(SVC, "Second", empty_pb2.Empty(), empty_pb2.Empty)
            assert (await one).value is False
            assert order == ["first", "first done", "second"]

    asyncio.run(scenario())
