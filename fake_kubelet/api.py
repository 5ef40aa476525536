"""The kubelet's HTTP API, the part fake-kubelet serves, traced like the real one's go-restful
filter (otelrestful v0.65.0, pkg/kubelet/server/server.go installs it on every web service):

- ``readOnlyPort`` (plain HTTP): ``/pods`` (route ``/pods/``) and ``/healthz`` (not traced);
- ``port``: ``/pods``, ``/containerLogs/{podNamespace}/{podID}/{containerName}`` (the CRI log
  file, found through ContainerStatus) and ``/stats/summary``. The real kubelet serves this port
  over TLS with HTTP/2; we serve plain HTTP/1.1 (a deliberate difference: no certificates to make).

Each traced request is a SERVER span named by its route, with ``http.request.method``,
``url.scheme``, ``url.path``, ``http.route``, ``server.address`` ("kubelet", the name the filter
is given), ``server.port``, ``client.address``, ``network.peer.address``/``port``,
``network.protocol.version``, ``user_agent.original`` and ``http.response.status_code``; a 5xx
marks it ERROR with an empty message.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from cristack.containers import crilog
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wording import cut
from fake_kubelet import stats
from fake_kubelet.cri import CriClient

log = logging.getLogger(__name__)

OTELRESTFUL_SCOPE = "go.opentelemetry.io/contrib/instrumentation/github.com/emicklei/go-restful/otelrestful"
OTELRESTFUL_VERSION = "0.65.0"
MAX_HEADER_BYTES = 16 * 1024


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    stream: Iterator[bytes] | None = None  # instead of ``body``: sent as it comes (chunked), never held whole


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# (route, compiled pattern): go-restful's routes for the endpoints we serve.
ROUTES = (
    ("/pods/", re.compile(r"^/pods/?$")),
    ("/containerLogs/{podNamespace}/{podID}/{containerName}", re.compile(r"^/containerLogs/([^/]+)/([^/]+)/([^/]+)$")),
    ("/stats/summary", re.compile(r"^/stats/summary/?$")),
)


class KubeletApi:
    """The request handlers; ``pods`` gives the kubelet's PodList items."""

    def __init__(self, cri: CriClient, tracer: trace.Tracer, node_name: str,
                 pods: Callable[[], list[dict[str, Any]]]) -> None:
        self.cri = cri
        self.tracer = tracer
        self.node_name = node_name
        self.pods = pods

    async def serve(self, host: str, port: int, *, read_only: bool) -> asyncio.AbstractServer:
        """Listens on host:port (port 0 picks one); ``read_only`` serves only /pods and /healthz."""
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self._one_request(reader, writer, read_only)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()

        return await asyncio.start_server(on_client, host, port, limit=MAX_HEADER_BYTES)

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, read_only: bool) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = (lines[0].split(" ") + ["", "", ""])[:3]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        path = unquote(urlsplit(target).path)
        otel_context.attach(otel_context.Context())  # each request is a trace of its own
        if path == "/healthz":
            return await self._write(writer, Response(200, b"ok", "text/plain"))
        route, match = next(((r, m) for r, pattern in ROUTES if (m := pattern.match(path))), ("", None))
        if match is None or (read_only and route != "/pods/"):
            return await self._write(writer, Response(404, b"404 page not found\n", "text/plain"))
        if method != "GET":
            return await self._write(writer, Response(405, b"405: Method Not Allowed", "text/plain"))
        sock = writer.get_extra_info("sockname") or ("", 0)
        peer = writer.get_extra_info("peername") or ("", 0)
        attrs: dict[str, Any] = {
            "http.request.method": method, "url.scheme": "http", "server.address": "kubelet",
            "server.port": sock[1], "network.peer.address": peer[0], "network.peer.port": peer[1],
            "client.address": peer[0], "url.path": path, "http.route": route,
            "network.protocol.version": version.partition("/")[2] or "1.1",
        }
        if headers.get("user-agent"):
            attrs["user_agent.original"] = headers["user-agent"]
        with self.tracer.start_as_current_span(route, kind=SpanKind.SERVER, attributes=attrs,
                                               record_exception=False, set_status_on_exception=False) as span:
            handler: Callable[..., Awaitable[Response]] = {
                "/pods/": self.get_pods, "/stats/summary": self.get_summary}.get(route, self.get_container_logs)
            try:
                response = await handler(*match.groups())
            except HttpError as err:
                response = Response(err.status, (str(err) + "\n").encode(), "text/plain")
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        await self._write(writer, response)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: Response) -> None:
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}
        length = "Transfer-Encoding: chunked" if response.stream is not None else \
            f"Content-Length: {len(response.body)}"
        writer.write(f"HTTP/1.1 {response.status} {reason.get(response.status, 'Error')}\r\n"
                     f"Content-Type: {response.content_type}\r\n{length}\r\n"
                     "Connection: close\r\n\r\n".encode() + (response.body if response.stream is None else b""))
        await writer.drain()
        if response.stream is None:
            return
        try:
            for piece in response.stream:  # each a bounded read of the file: the loop goes on between them
                if piece:  # an empty chunk would end the body
                    writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    await writer.drain()
        except ConnectionError:
            raise  # the client went away
        except (OSError, ValueError) as err:
            # The status is sent: as the kubelet's ReadLogs, stop where the log goes wrong and say so here.
            log.warning("containerLogs: stopped reading a container log: %s", err)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    # -- handlers

    async def get_pods(self) -> Response:
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": self.pods()}
        return Response(200, json.dumps(body).encode())

    async def get_summary(self) -> Response:
        try:
            body = await stats.summary(self.cri, self.node_name)
        except stats.StatsError as err:
            log.error("HTTP InternalServerError serving /stats/summary: failed to get imageFs stats: %s", err)
            raise HttpError(500, f"Internal Error: failed to get imageFs stats: {err}") from None
        return Response(200, json.dumps(body).encode())

    async def get_container_logs(self, namespace: str, pod_name: str, container: str) -> Response:
        """The container's log as plain text: the pod and container by name, the log path from
        ContainerStatus, then the CRI log file reassembled."""
        item = next((p for p in self.pods() if p["metadata"]["namespace"] == namespace
                     and pod_name in (p["metadata"]["name"], f"{p['metadata']['name']}-{self.node_name}")), None)
        if item is None:
            raise HttpError(404, f'pod "{pod_name}" not found')
        status = next((c for c in item["status"]["containerStatuses"] if c["name"] == container), None)
        container_id = (status or {}).get("containerID", "").partition("://")[2]
        if not container_id:
            raise HttpError(404, f'container "{container}" in pod "{pod_name}" is not available')
        try:
            resp = await self.cri.call("ContainerStatus", pb.ContainerStatusRequest(container_id=container_id))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise HttpError(404, err.details() or "container not found") from None
            raise HttpError(500, err.details() or err.code().name) from None
        try:
            # Opened here, so that a log that cannot be read is a 500; read as it is sent, never whole (a log
            # may be tens of MiB: read whole, it took ~4x its size in memory and blocked the kubelet a second).
            pieces = crilog.iter_output(resp.status.log_path)
            first = next(pieces, b"")
        except (OSError, ValueError) as err:
            raise HttpError(500, f"failed to read the log of {cut(container)}: {cut(str(err), 200)}") from None
        return Response(200, b"", "text/plain", stream=itertools.chain((first,), pieces))
