"""``cristack trace-forwarder``: reads span frames (SpanData JSON, one span each) from Kata-style agents and
exports them over OTLP/gRPC as ``service.name = kata-agent``. Like Kata's forwarder it refuses to start when the
collector cannot be reached, and a malformed frame closes that agent's connection without affecting the
others."""

from __future__ import annotations

import asyncio
import logging
import socket

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tgrpc

from cristack.lifeline import stop_on_signals
from cristack.wire.endpoints import (
    Endpoint,
    SocketClaim,
    claim_unix_socket,
    parse_endpoint,
    secure_socket,
    socket_umask,
)
from cristack.wire.frames import Decoder, FrameError
from fake_kata.spandata import SpanDataError, decode, export_request

log = logging.getLogger(__name__)


DRAIN_S = 5.0  # how long a stopping forwarder waits for connected agents to finish sending


class CollectorUnreachable(RuntimeError):
    pass


def check_collector(endpoint: str, timeout: float = 2.0) -> None:
    ep = parse_endpoint(endpoint)
    try:
        with socket.create_connection((ep.host, ep.port), timeout=timeout):
            pass
    except OSError as err:
        raise CollectorUnreachable(f"cannot reach the collector at {endpoint}: {err.strerror or err}") from None


class Forwarder:
    def __init__(self, listen: Endpoint, otlp_endpoint: str) -> None:
        self.listen = listen
        self.otlp_endpoint = otlp_endpoint
        self.frames = 0
        self.rejected = 0
        self._agents: set[asyncio.Task] = set()

    async def run(self, stop: asyncio.Event) -> None:
        check_collector(self.otlp_endpoint)
        channel = grpc.aio.insecure_channel(parse_endpoint(self.otlp_endpoint).grpc_target)
        stub = tgrpc.TraceServiceStub(channel)
        claim: SocketClaim | None = None
        if self.listen.path is not None:
            claim = claim_unix_socket(self.listen.path, private_parent=False)
            with socket_umask():
                server = await asyncio.start_unix_server(lambda r, w: self._agent(r, w, stub),
                                                         path=str(claim.listen_path))
            claim.link()
            secure_socket(self.listen.path)
        else:
            server = await asyncio.start_server(lambda r, w: self._agent(r, w, stub), self.listen.host,
                                                self.listen.port)
        log.info("trace forwarder: frames on %s → OTLP %s", self.listen, self.otlp_endpoint)
        try:
            await stop.wait()
        finally:
            server.close()
            # An agent that exits sends its last frames as it goes: what is connected still gets exported
            # (bounded), so stopping the forwarder after the VMs loses nothing and needs no grace period.
            if self._agents:
                await asyncio.wait(self._agents, timeout=DRAIN_S)
            await channel.close()
            if claim is not None:
                claim.release()

    async def _agent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stub) -> None:  # noqa: ANN001
        task = asyncio.current_task()
        if task is not None:
            self._agents.add(task)
            task.add_done_callback(self._agents.discard)
        decoder = Decoder()
        try:
            while data := await reader.read(65536):
                spans = []
                for payload in decoder.feed(data):
                    try:
                        spans.append(decode(payload))
                    except SpanDataError as err:
                        raise FrameError(str(err)) from None
                    self.frames += 1
                if not spans:
                    continue
                request = export_request(spans)
                try:
                    await stub.Export(request, timeout=2.0)
                except grpc.aio.AioRpcError as err:
                    log.warning("trace forwarder: export failed (%s); %d spans dropped", err.code().name, len(spans))
            decoder.close()
        except FrameError as err:
            self.rejected += 1
            log.error("trace forwarder: dropping an agent connection: %s", err)
        finally:
            writer.close()


def main(listen: str, otlp_endpoint: str) -> int:
    """Runs until SIGTERM/SIGINT; 1 (with a message) when the collector is unreachable at start."""
    try:
        ep = parse_endpoint(listen)
        parse_endpoint(otlp_endpoint)
    except ValueError as err:
        print(f"cristack trace-forwarder: {err}", flush=True)
        return 2

    async def go() -> int:
        with stop_on_signals() as stop:
            try:
                await Forwarder(ep, otlp_endpoint).run(stop)
            except CollectorUnreachable as err:
                print(f"cristack trace-forwarder: {err}", flush=True)
                return 1
        return 0

    return asyncio.run(go())
