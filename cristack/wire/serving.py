"""Runs a grpc.aio server on an endpoint until SIGTERM/SIGINT, then stops it promptly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any

import grpc

from cristack.gcpolicy import tune_for_service
from cristack.lifeline import stop_on_signals
from cristack.wire.bounds import oversized_map
from cristack.wire.endpoints import (
    Endpoint,
    SocketClaim,
    claim_unix_socket,
    secure_socket,
    socket_umask,
    warn_if_exposed,
)
from cristack.wire.errors import ConfigError, exit_config_error

log = logging.getLogger(__name__)

# The kubelet's CRI client caps messages at 16 MiB; larger requests are refused with
# RESOURCE_EXHAUSTED by grpc itself instead of being buffered.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_CONCURRENT_STREAMS = 256
SERVER_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
    ("grpc.so_reuseport", 0),
)
STOP_GRACE_S = 0.5
DEFAULT_MAX_CONCURRENT_RPCS = 512


class _Undecodable:
    """Stands in for a request whose bytes are not the message the method takes (``bounds``: or whose maps are
    over the bound, which is checked before anything is decoded)."""

    def __init__(self, error: Exception, bounds: str = "") -> None:
        self.error = error
        self.bounds = bounds

    def message(self, method: str) -> str:
        if self.bounds:
            return f"{method}: {self.bounds}"
        return f"{method}: the request is not a valid protobuf message: {self.error}"


class _GenericHandlersOnly:
    """The server as ``register`` sees it. The generated ``add_*Servicer_to_server`` adds each service twice, as
    a generic handler and as registered methods; only the generic handler is kept. grpc.aio's server loop
    (grpcio 1.85, aio/server.pyx.pxi ``_server_main_loop``) keeps one pending request per registered method
    and passes them all to ``asyncio.wait`` for every call it accepts: with CRI's 40-odd methods, a twentieth
    of fake-crio's CPU in a relist (py-spy). The generic handler serves the same methods with the same
    handlers."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        """Dropped: the generic handler added just before serves these methods."""

    def __getattr__(self, name: str) -> object:
        return getattr(self._server, name)


class HandlerMemo:
    """The handler an interceptor wraps around a method's handler, made once per (handler, method): grpc runs
    interceptors on every call, and a relist makes thousands of calls; building the closures and the handler
    tuple again each time is work for nothing. ``wrap(handler, method)`` must not depend on the call: what is
    per call (the metadata, the peer) the wrapper reads from its ``context``. An interceptor further in that
    makes a new handler per call only turns the memo over (it is cleared when full)."""

    LIMIT = 1024

    def __init__(self, wrap: Callable[[grpc.RpcMethodHandler, str], grpc.RpcMethodHandler]) -> None:
        self._wrap = wrap
        self._memo: dict[tuple[grpc.RpcMethodHandler, str], grpc.RpcMethodHandler] = {}

    def __call__(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        key = (handler, method)
        wrapped = self._memo.get(key)
        if wrapped is None:
            if len(self._memo) >= self.LIMIT:
                self._memo.clear()
            wrapped = self._memo[key] = self._wrap(handler, method)
        return wrapped


class SafeRequests(grpc.aio.ServerInterceptor):
    """Answers bytes that do not decode as the method's request with INVALID_ARGUMENT (grpc
    itself would answer INTERNAL), and a request whose maps are over ``bounds.MAX_MAP_ENTRIES``
    likewise without decoding it, before any other interceptor or handler sees them."""

    def __init__(self) -> None:
        self._wrapped = HandlerMemo(self._checked)

    async def intercept_service(self, continuation, details):  # noqa: ANN001 - grpc's signature
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None or \
                handler.unary_unary is None and handler.unary_stream is None:
            return handler
        return self._wrapped(handler, details.method)

    @staticmethod
    def _checked(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        decode = handler.request_deserializer
        desc = getattr(getattr(decode, "__self__", None), "DESCRIPTOR", None)  # Message.FromString's class

        def safe_decode(data: bytes) -> object:
            problem = oversized_map(data, desc) if desc is not None else None
            if problem:
                return _Undecodable(ValueError(problem), problem)
            try:
                return decode(data)
            except Exception as err:  # noqa: BLE001 - any decode failure is the caller's
                return _Undecodable(err)

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def checked(request: object, context: grpc.aio.ServicerContext) -> object:
                if isinstance(request, _Undecodable):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message(method))
                return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(checked, request_deserializer=safe_decode,
                                                       response_serializer=handler.response_serializer)
        streamer = handler.unary_stream

        async def checked_stream(request: object, context: grpc.aio.ServicerContext) -> AsyncIterator[object]:
            if isinstance(request, _Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message(method))
            async for item in streamer(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(checked_stream, request_deserializer=safe_decode,
                                                    response_serializer=handler.response_serializer)


def claim_or_exit(prog: str, endpoint: Endpoint, *, private_parent: bool) -> SocketClaim | None:
    """A component's ``main``, before it loads any state: its unix socket claimed (``claim_unix_socket``), so a
    second instance on a live socket neither serves nor touches the first one's state (CRI-O checks in its
    config validation, ``RemoveUnusedSocket``, before anything else). A socket in use exits 2 as a config
    error; another error of the system exits 1 with one line."""
    if endpoint.path is None:
        return None
    try:
        return claim_unix_socket(endpoint.path, private_parent=private_parent)
    except ConfigError as err:
        exit_config_error(prog, err)
    except (OSError, ValueError) as err:
        print(f"{prog}: {err}", file=sys.stderr)
        sys.exit(1)


def run_main(prog: str, server: Coroutine[Any, Any, None], shutdown: Callable[[], None],
             claim: SocketClaim | None = None) -> None:
    """A server component's ``main`` after its setup: runs ``server`` to its end, then releases ``claim`` and
    runs ``shutdown`` (its telemetry's flush) whatever happened; an error of the system (a socket in use, a bad
    address) is one line naming ``prog`` and exit status 1, not a traceback."""
    try:
        asyncio.run(server)
    except (OSError, ValueError) as err:
        print(f"{prog}: {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        if claim is not None:
            claim.release()
        shutdown()


def prepare_process() -> None:
    """What a server that is its process's does once before it serves (process-wide, so never for a component
    run inside another process): the open-files limit raised, the garbage collector tuned."""
    raise_fd_limit()
    tune_for_service()


def raise_fd_limit() -> int:
    """Raises the soft open-files limit to the hard one, as CRI-O and conmon-rs run with a high limit: each
    live container holds a few descriptors in its monitor, and the common soft limit of 1024 would run out
    near 330 containers. Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as err:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, err)
    return soft


async def serve(
    component: str,
    endpoint: Endpoint,
    register: Callable[[grpc.aio.Server], None],
    *,
    private_parent: bool = False,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    on_started: Callable[[], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    max_concurrent_rpcs: int | None = None,
    stop: asyncio.Event | None = None,
    claim: SocketClaim | None = None,
) -> None:
    """Binds ``endpoint``, serves until ``stop`` is set, then runs ``on_stop``.

    ``private_parent`` makes the socket's directory 0700 (used for our default locations). Without ``stop``
    the server is its process's (a component's ``main``): SIGTERM and SIGINT stop it, and the process is
    prepared first (``prepare_process``). A component run inside another process (the in-process test tier) is
    given its event instead and touches neither signal dispositions nor process limits.

    A unix socket is claimed first (``claim_unix_socket``: a live one is never taken over, SocketInUse); a
    component that must not touch its state while another instance serves claims it itself before loading and
    passes ``claim``, which it then releases itself (``run_main``). On the way out only our own socket file is
    removed.
    """
    if stop is None:
        prepare_process()
    # Over the limit, grpc answers RESOURCE_EXHAUSTED at once instead of queueing without bound.
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[SafeRequests(), *interceptors],
                             maximum_concurrent_rpcs=max_concurrent_rpcs or DEFAULT_MAX_CONCURRENT_RPCS)
    register(_GenericHandlersOnly(server))  # type: ignore[arg-type] - the server's methods but one
    ours = None  # a claim passed in is its maker's to release (run_main does, also when serve never ran)
    if endpoint.path is not None and claim is None:
        claim = ours = claim_unix_socket(endpoint.path, private_parent=private_parent)
    elif endpoint.path is None:
        warn_if_exposed(endpoint, component)
    try:
        await _serve_claimed(component, endpoint, server, claim, on_started, on_stop, stop)
    finally:
        if ours is not None:
            ours.release()


async def _serve_claimed(component: str, endpoint: Endpoint, server: grpc.aio.Server, claim: SocketClaim | None,
                         on_started: Callable[[], Awaitable[None]] | None,
                         on_stop: Callable[[], Awaitable[None]] | None, stop: asyncio.Event | None) -> None:
    # The stop signals are ours before the socket exists: a client that sees it serving may stop us at once
    # (a supervisor, a test), and the default action would kill us with the socket left behind.
    with stop_on_signals() if stop is None else contextlib.nullcontext(stop) as stopped:
        with socket_umask():
            target = f"unix://{claim.listen_path}" if claim is not None else endpoint.grpc_target
            try:
                port = server.add_insecure_port(target)
            except RuntimeError:
                port = 0  # grpc raises where it cannot bind
            if port == 0:
                raise OSError(f"cannot listen on {endpoint.grpc_target} (address in use or not permitted)")
            if claim is not None:
                claim.link()  # the path now names the socket grpc bound, and is ours to remove, only it
            await server.start()
        if endpoint.path is not None:
            secure_socket(endpoint.path)
        where = endpoint.grpc_target if endpoint.path is not None or endpoint.port else f"{endpoint.host}:{port}"
        log.info("%s serving on %s", component, where)
        try:
            if on_started is not None:
                await on_started()
            await stopped.wait()
            log.info("%s stopping", component)
        finally:
            await server.stop(STOP_GRACE_S)
            if on_stop is not None:
                await on_stop()
