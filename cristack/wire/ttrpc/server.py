"""A ttrpc server (server.go and services.go in github.com/containerd/ttrpc v1.2.9) on asyncio.

Services register a method table (name -> request type and handler). Each connection has one reader;
each request runs as its own task, with the caller's metadata and its deadline (``timeout_nano``),
and its Response goes back on the request's stream id whenever it is ready. The reader answers
protocol faults on the faulty stream and carries on, as upstream does, with upstream's statuses:

- stream id even: INVALID_ARGUMENT "StreamID must be odd for client initiated streams";
- stream id not above the last one: INVALID_ARGUMENT "StreamID cannot be re-used and must increment";
- a data frame (we serve no streams): INVALID_ARGUMENT "StreamID is no longer active";
- a Request that does not decode: INVALID_ARGUMENT "unmarshal request error: ...";
- unknown service / method: UNIMPLEMENTED "service NAME" / "method NAME";
- a message over 4 MiB: RESOURCE_EXHAUSTED "message length N exceed maximum message size of 4194304"
  (its body skipped without being held);
- an argument that does not decode: INTERNAL "ttrpc: error unmarshalling payload: ...".

Bounds upstream lacks, because the input is hostile: at most ``max_active`` calls run per connection
(the reader waits for one to finish before it reads more: slow, never dropped), at most
``max_connections`` connections, at most 256 metadata pairs per call. A result over 4 MiB fails only
its own call with RESOURCE_EXHAUSTED (upstream drops the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError, Message

from cristack.wire.endpoints import SocketClaim, claim_unix_socket, secure_socket, socket_umask
from cristack.wire.pb.ttrpc import request_pb2
from cristack.wire.ttrpc.channel import (
    MESSAGE_LENGTH_MAX,
    MessageType,
    OversizedFrame,
    encode,
    oversized,
    read_frame,
)
from cristack.wire.ttrpc.client import full_method
from cristack.wire.ttrpc.metadata import MD
from cristack.wire.ttrpc.status import TtrpcError, status_for

log = logging.getLogger(__name__)

MAX_ACTIVE_PER_CONNECTION = 128
MAX_CONNECTIONS = 128
MAX_STATUS_MESSAGE = 16 * 1024  # an error may quote its input: never echo it unbounded


@dataclass
class CallContext:
    """One call as its handler sees it: who is called, the caller's metadata and deadline."""

    service: str
    method: str
    metadata: MD
    deadline: float | None = None  # the event loop's clock; None: the caller set no timeout
    values: dict[str, object] = field(default_factory=dict)  # what interceptors pass down to the handler

    @property
    def full_method(self) -> str:
        return full_method(self.service, self.method)

    def time_remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


Handler = Callable[[CallContext, Message], Awaitable[Message]]
# (call, invoke) -> result; ``invoke`` decodes the argument and runs the handler.
ServerInterceptor = Callable[[CallContext, Callable[[], Awaitable[Message]]], Awaitable[Message]]


@dataclass(frozen=True)
class Method:
    request_type: type[Message]
    handler: Handler


class _Conn:
    def __init__(self, writer: asyncio.StreamWriter, max_active: int) -> None:
        self.writer = writer
        self.lock = asyncio.Lock()
        self.slots = asyncio.Semaphore(max_active)
        self.calls: set[asyncio.Task[None]] = set()
        self.idle = asyncio.Event()
        self.idle.set()


class Server:
    def __init__(self, *, interceptor: ServerInterceptor | None = None,
                 max_active: int = MAX_ACTIVE_PER_CONNECTION, max_connections: int = MAX_CONNECTIONS) -> None:
        self._services: dict[str, dict[str, Method]] = {}
        self._interceptor = interceptor
        self._max_active = max_active
        self._max_connections = max_connections
        self._listeners: list[asyncio.AbstractServer] = []
        self._claims: list[SocketClaim] = []
        self._conns: dict[asyncio.Task[None], _Conn] = {}
        self._closing = False

    def register(self, service: str, methods: Mapping[str, Method]) -> None:
        if service in self._services:
            raise ValueError(f"duplicate service {service} registered")
        self._services[service] = dict(methods)

    async def listen(self, path: str | os.PathLike[str], *, private_parent: bool = True) -> None:
        """Binds a unix socket at ``path`` (mode 0660; a stale socket replaced, a live one or any other file never:
        SocketInUse) and serves it; ``close`` removes it only while it is still ours."""
        where = Path(path)
        claim = claim_unix_socket(where, private_parent=private_parent)
        try:
            with socket_umask():
                listener = await asyncio.start_unix_server(self._serve_conn, path=str(claim.listen_path),
                                                           limit=MESSAGE_LENGTH_MAX + 64)
            claim.link()
        except BaseException:
            claim.release()
            raise
        self._claims.append(claim)
        secure_socket(where)
        self._listeners.append(listener)

    async def serve_socket(self, sock: socket.socket) -> None:
        """Serves an already bound and listening unix socket (a shim's, handed over by its start command)."""
        listener = await asyncio.start_unix_server(self._serve_conn, sock=sock, limit=MESSAGE_LENGTH_MAX + 64)
        self._listeners.append(listener)

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stops accepting, lets running calls answer (within ``grace`` seconds), then closes every connection."""
        self._closing = True
        for listener in self._listeners:
            listener.close()
        idle = [asyncio.ensure_future(c.idle.wait()) for c in list(self._conns.values())]
        if idle:
            _, pending = await asyncio.wait(idle, timeout=grace)
            for waiter in pending:
                waiter.cancel()
        await self.close()

    async def close(self) -> None:
        """Closes listeners and connections at once; calls still running are cancelled."""
        self._closing = True
        for listener in self._listeners:
            listener.close()
        # Closing the transport ends each connection's reader with end-of-stream, so its task finishes by
        # itself (cancelling a task asyncio's stream server started makes asyncio log it as an error).
        for conn in list(self._conns.values()):
            for call in list(conn.calls):
                call.cancel()
            with contextlib.suppress(Exception):
                conn.writer.close()
        tasks = list(self._conns)
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5.0)
            for task in stuck:
                task.cancel()
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                await listener.wait_closed()
        self._listeners.clear()
        for claim in self._claims:
            claim.release()
        self._claims.clear()

    async def _serve_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        if self._closing or len(self._conns) >= self._max_connections:
            log.warning("ttrpc: refusing a connection (%s)", "shutting down" if self._closing else "too many")
            writer.close()
            return
        conn = _Conn(writer, self._max_active)
        self._conns[me] = conn
        last_id = 0
        try:
            while True:
                await conn.slots.acquire()
                started = False
                try:
                    try:
                        frame = await read_frame(reader)
                    except OversizedFrame as big:
                        await self._respond(conn, big.stream_id, big.status, b"")
                        continue
                    sid = frame.stream_id
                    if sid % 2 != 1:
                        await self._respond(conn, sid, TtrpcError(
                            grpc.StatusCode.INVALID_ARGUMENT, "StreamID must be odd for client initiated streams"), b"")
                        continue
                    if frame.type == MessageType.DATA:
                        await self._respond(conn, sid, TtrpcError(
                            grpc.StatusCode.INVALID_ARGUMENT, "StreamID is no longer active"), b"")
                        continue
                    if frame.type != MessageType.REQUEST:
                        continue  # upstream ignores other types, for future use
                    if sid <= last_id:
                        await self._respond(conn, sid, TtrpcError(
                            grpc.StatusCode.INVALID_ARGUMENT, "StreamID cannot be re-used and must increment"), b"")
                        continue
                    last_id = sid
                    req = request_pb2.Request()
                    try:
                        req.ParseFromString(frame.payload)
                    except DecodeError as err:
                        await self._respond(conn, sid, TtrpcError(
                            grpc.StatusCode.INVALID_ARGUMENT, f"unmarshal request error: {err}"), b"")
                        continue
                    service = self._services.get(req.service)
                    if service is None:
                        await self._respond(conn, sid, TtrpcError(
                            grpc.StatusCode.UNIMPLEMENTED, f"service {req.service}"), b"")
                        continue
                    method = service.get(req.method)
                    if method is None:
                        await self._respond(conn, sid, TtrpcError(
                            grpc.StatusCode.UNIMPLEMENTED, f"method {req.method}"), b"")
                        continue
                    call = asyncio.get_running_loop().create_task(self._call(conn, sid, req, method),
                                                                  name=f"ttrpc {req.service}/{req.method}")
                    conn.calls.add(call)
                    conn.idle.clear()
                    call.add_done_callback(lambda t, c=conn: self._call_done(c, t))
                    started = True
                finally:
                    if not started:
                        conn.slots.release()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass  # the client went away: stop reading, drop its calls
        finally:
            for call in list(conn.calls):
                call.cancel()
            self._conns.pop(me, None)
            conn.idle.set()
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    def _call_done(conn: _Conn, task: asyncio.Task[None]) -> None:
        conn.calls.discard(task)
        conn.slots.release()
        if not conn.calls:
            conn.idle.set()

    async def _call(self, conn: _Conn, sid: int, req: request_pb2.Request, method: Method) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + req.timeout_nano / 1e9 if req.timeout_nano > 0 else None
        ctx = CallContext(req.service, req.method, MD.from_request(req), deadline)

        async def invoke() -> Message:
            arg = method.request_type()
            try:
                arg.ParseFromString(req.payload)
            except DecodeError as err:
                raise TtrpcError(grpc.StatusCode.INTERNAL, f"ttrpc: error unmarshalling payload: {err}") from None
            try:
                if deadline is None:
                    result = await method.handler(ctx, arg)
                else:
                    result = await asyncio.wait_for(method.handler(ctx, arg), max(0.0, deadline - loop.time()))
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - every failure becomes the caller's status
                if not isinstance(err, TtrpcError) and not isinstance(getattr(err, "code", None), grpc.StatusCode):
                    log.debug("ttrpc %s failed: %s", ctx.full_method, err, exc_info=True)
                raise status_for(err) from None
            if result is None:
                raise TtrpcError(grpc.StatusCode.UNKNOWN, "ttrpc: marshal called with nil")
            return result

        try:
            result = await (self._interceptor(ctx, invoke) if self._interceptor is not None else invoke())
            payload = result.SerializeToString()
            status: TtrpcError | None = oversized(len(payload)) if len(payload) > MESSAGE_LENGTH_MAX else None
        except asyncio.CancelledError:
            return  # the connection went away (or the server closed): nobody to answer
        except Exception as err:  # noqa: BLE001
            status, payload = status_for(err), b""
        if status is not None:
            payload = b""
        await self._respond(conn, sid, status, payload)

    @staticmethod
    async def _respond(conn: _Conn, sid: int, status: TtrpcError | None, payload: bytes) -> None:
        resp = request_pb2.Response(payload=payload)
        if status is None:
            resp.status.SetInParent()  # upstream always sends a status, OK included
        else:
            resp.status.CopyFrom(status.to_status())
            if len(resp.status.message) > MAX_STATUS_MESSAGE:
                resp.status.message = resp.status.message[:MAX_STATUS_MESSAGE] + "..."
        frame = encode(sid, MessageType.RESPONSE, 0, resp.SerializeToString())
        async with conn.lock:
            try:
                conn.writer.write(frame)
                await conn.writer.drain()
            except (ConnectionError, OSError):
                pass  # the reader sees the same and ends the connection

