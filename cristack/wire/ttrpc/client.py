"""A ttrpc client (client.go in github.com/containerd/ttrpc v1.2.9) on asyncio.

One connection carries any number of concurrent unary calls, each on its own stream: ids are odd
and rise by two from 1, reserved (with the call's waiter) before anything is awaited, so calls
started together never share an id. A single reader task hands each Response to its stream's
waiter; a Response for a stream nobody waits on is logged and dropped, as upstream does.

Call order matches upstream's ``Call``: the request is built (payload, metadata, ``timeout_nano``
from the timeout), the interceptor chain runs around the invoker that sends it and waits for the
raw Response, and only then is the Response's status turned into an error. So an interceptor (the
otelttrpc CLIENT span) sees a transport failure as an error but a NOT_FOUND answer as success,
exactly as containerd's spans record it (``rpc.ttrpc.status_code`` 0 on the client, 5 on the shim).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from cristack.wire.pb.ttrpc import request_pb2
from cristack.wire.ttrpc.channel import (
    MESSAGE_LENGTH_MAX,
    MessageType,
    OversizedFrame,
    encode,
    read_frame,
)
from cristack.wire.ttrpc.metadata import MD
from cristack.wire.ttrpc.status import Closed, DeadlineExceeded, TtrpcError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
Invoker = Callable[[request_pb2.Request], Awaitable[request_pb2.Response]]
# (request, full method "/service/method", invoker) -> response; may change the request's metadata.
ClientInterceptor = Callable[[request_pb2.Request, str, Invoker], Awaitable[request_pb2.Response]]
STREAM_ID_MAX = 0xFFFFFFFF


def full_method(service: str, method: str) -> str:
    return f"/{service}/{method}"


class Client:
    """Unary calls over one ttrpc connection. Build it with ``connect`` (a unix socket path or
    ``unix://`` address) or from an open stream pair; close it with ``close``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 interceptor: ClientInterceptor | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self._reader = reader
        self._writer = writer
        self._interceptor = interceptor
        self._on_close = on_close
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[request_pb2.Response]] = {}
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._recv_task = asyncio.get_running_loop().create_task(self._receive_loop(), name="ttrpc-client-recv")

    @classmethod
    async def connect(cls, address: str | os.PathLike[str], *, timeout: float = 10.0,
                      interceptor: ClientInterceptor | None = None,
                      on_close: Callable[[], None] | None = None) -> Client:
        path = socket_path(address)
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(path, limit=MESSAGE_LENGTH_MAX + 64), timeout)
        return cls(reader, writer, interceptor=interceptor, on_close=on_close)

    @property
    def closed(self) -> bool:
        return self._closed

    async def call(self, service: str, method: str, request: Message, response_type: type[M], *,
                   metadata: MD | Mapping[str, str | Sequence[str]] | None = None,
                   timeout: float | None = None) -> M:
        """Calls ``service``/``method``; returns the decoded result or raises ``TtrpcError``.
        ``timeout`` (seconds) travels as ``timeout_nano`` and bounds the wait here too."""
        req = request_pb2.Request(service=service, method=method, payload=request.SerializeToString())
        md = metadata if isinstance(metadata, MD) else MD(metadata or {})
        req.metadata.extend(md.to_pairs())
        if timeout is not None:
            req.timeout_nano = max(1, int(timeout * 1e9))

        async def invoke(r: request_pb2.Request) -> request_pb2.Response:
            return await self._dispatch(r, timeout)

        name = full_method(service, method)
        if self._interceptor is not None:
            resp = await self._interceptor(req, name, invoke)
        else:
            resp = await invoke(req)
        result = response_type()
        try:
            result.ParseFromString(resp.payload)
        except DecodeError as err:
            raise TtrpcError(grpc.StatusCode.UNKNOWN, f"ttrpc: cannot decode {response_type.__name__}: {err}") from None
        if resp.HasField("status") and resp.status.code != 0:
            raise TtrpcError.from_status(resp.status)
        return result

    async def _dispatch(self, req: request_pb2.Request, timeout: float | None) -> request_pb2.Response:
        if self._closed:
            raise Closed()
        data = req.SerializeToString()
        if len(data) > MESSAGE_LENGTH_MAX:
            encode(0, MessageType.REQUEST, 0, data)  # raises ttrpc's oversized-message status
        # Reserve the stream id and its waiter before the first await.
        sid = self._next_id
        if sid > STREAM_ID_MAX:
            raise Closed()
        self._next_id += 2
        waiter: asyncio.Future[request_pb2.Response] = asyncio.get_running_loop().create_future()
        self._pending[sid] = waiter
        try:
            async with self._send_lock:
                if self._closed:
                    raise Closed()
                self._writer.write(encode(sid, MessageType.REQUEST, 0, data))
                try:
                    await self._writer.drain()
                except (ConnectionError, OSError):
                    raise Closed() from None
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except asyncio.TimeoutError:
                raise DeadlineExceeded() from None
        finally:
            self._pending.pop(sid, None)
            if not waiter.done():
                waiter.cancel()

    async def _receive_loop(self) -> None:
        try:
            while True:
                try:
                    frame = await read_frame(self._reader)
                except OversizedFrame as big:
                    self._fail(big.stream_id, big.status)
                    continue
                waiter = self._pending.get(frame.stream_id)
                if waiter is None or waiter.done():
                    log.error("ttrpc: received message on inactive stream %d", frame.stream_id)
                    continue
                if frame.type != MessageType.RESPONSE:
                    self._fail(frame.stream_id, TtrpcError(
                        grpc.StatusCode.UNKNOWN,
                        f'unexpected "{_type_name(frame.type)}" message received: protocol error'))
                    continue
                resp = request_pb2.Response()
                try:
                    resp.ParseFromString(frame.payload)
                except DecodeError as err:
                    self._fail(frame.stream_id, TtrpcError(grpc.StatusCode.UNKNOWN, f"ttrpc: bad response: {err}"))
                    continue
                waiter.set_result(resp)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._shut()

    def _fail(self, sid: int, err: TtrpcError) -> None:
        waiter = self._pending.get(sid)
        if waiter is not None and not waiter.done():
            waiter.set_exception(err)

    def _shut(self) -> None:
        if self._closed and not self._pending:
            return
        self._closed = True
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(Closed())
        self._pending.clear()
        with contextlib.suppress(Exception):
            self._writer.close()
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback()

    async def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self._writer.close()
        self._recv_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._recv_task
        self._shut()


def _type_name(mtype: int) -> str:
    return {MessageType.REQUEST: "request", MessageType.RESPONSE: "response", MessageType.DATA: "data"}.get(
        mtype, "unknown")


def socket_path(address: str | os.PathLike[str]) -> str:
    """A unix socket path from ``unix:///path``, ``ttrpc+unix:///path`` or a bare path. containerd's
    abstract-socket form (no scheme, no leading slash) is not ours to reach."""
    text = os.fspath(address)
    for prefix in ("ttrpc+unix://", "unix://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    if not text.startswith("/"):
        raise ValueError(f"{address!r}: expected unix:///absolute/path")
    return text

