"""What comes in: an OTLP trace export (an OTLP/HTTP body or a gRPC message) checked and cut into the pieces the
store keeps, without ever building the whole request as objects.

The request is read with a shallow schema (``_SHALLOW``): the same field numbers as trace_service.proto, with
every span left as the bytes it came as. upb reads that in C, one copy of the body; each span is then parsed on its
own (which checks it whole, at upb's depth limit of 100 messages) and kept as those bytes. A request is checked
whole before any of it is stored, so a refused request leaves nothing behind, and stored in chunks, so that what a
request costs on top of its body does not grow with its span count.

Limits are the OpenTelemetry Collector's where it has one: 20 MiB of body, counted again after gzip
(``config/confighttp/server.go``: ``defaultMaxRequestBodySize``; ``compression.go`` wraps the inflated body in
``http.MaxBytesReader``), 4 MiB for a gRPC message (grpc-go's default, which ``configgrpc`` keeps), and span ids of
the length the protocol gives them (``pdata/internal/traceid.go``: an empty id is the zero id, any other length is
an error). OTLP/JSON is smaller here than there: Python's JSON decoder and protobuf's ``json_format`` build an
object per value, 10 to 100 times the text, so a JSON body is bounded in bytes and in objects and arrays.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from cristack.harness.sink.spans import attributes, service_of
from cristack.otel import otlpjson
from cristack.wording import cut

MiB = 1024 * 1024
MAX_HTTP_BODY = 20 * MiB
MAX_GRPC_MESSAGE = 4 * MiB
MAX_JSON_BODY = 4 * MiB
MAX_JSON_CONTAINERS = 100_000
CHUNK = 2048  # spans stored under one hold of the store's lock

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class Refused(Exception):
    """A request the sink will not store: the HTTP status and gRPC code that say why, and a message that never
    repeats more than a few dozen characters of the input."""

    def __init__(self, http: int, message: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT) -> None:
        super().__init__(message)
        self.http = http
        self.code = code


def _shallow_request_class():  # noqa: ANN202 - a generated message class
    """ExportTraceServiceRequest down to ScopeSpans, with resource, scope and each span as bytes."""
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="cristack/sink/shallow_trace_service.proto",
                                               package="cristack.sink.shallow", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        m = proto.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            added = m.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                added.type_name = type_name

    one, many = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    message("ScopeSpans", ("scope", 1, one, f.TYPE_BYTES, ""), ("spans", 2, many, f.TYPE_BYTES, ""),
            ("schema_url", 3, one, f.TYPE_STRING, ""))
    message("ResourceSpans", ("resource", 1, one, f.TYPE_BYTES, ""),
            ("scope_spans", 2, many, f.TYPE_MESSAGE, ".cristack.sink.shallow.ScopeSpans"),
            ("schema_url", 3, one, f.TYPE_STRING, ""))
    message("Request", ("resource_spans", 1, many, f.TYPE_MESSAGE, ".cristack.sink.shallow.ResourceSpans"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    find = pool.FindMessageTypeByName
    return (message_factory.GetMessageClass(find("cristack.sink.shallow.Request")),
            message_factory.GetMessageClass(find("cristack.sink.shallow.ResourceSpans")),
            message_factory.GetMessageClass(find("cristack.sink.shallow.ScopeSpans")))


_SHALLOW, _RESOURCE_SPANS, _SCOPE_SPANS = _shallow_request_class()


def inflate(body: bytes | memoryview, encoding: str, limit: int) -> bytes | memoryview:
    """The body as sent (Content-Encoding identity or gzip), never more than ``limit`` bytes once inflated: the
    inflater stops at the limit, so a few KiB that would inflate to GiB cost ``limit`` at most. Concatenated gzip
    members are read as one stream, as Go's gzip reader (and so the Collector) reads them."""
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise Refused(415, f"Content-Encoding {cut(encoding, 40)!r} is not supported (OTLP/HTTP bodies are plain "
                           "or gzip)")
    out = bytearray()
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as err:
            raise Refused(400, f"Content-Encoding gzip, but the body is not gzip: {err}") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise Refused(413, f"body over {limit:,} bytes once inflated", grpc.StatusCode.RESOURCE_EXHAUSTED)
        if not inflater.eof:
            raise Refused(400, "Content-Encoding gzip, but the gzip stream ends early")
        rest = inflater.unused_data
        if not rest:
            return bytes(out)


def protobuf_of(body: bytes | memoryview, kind: str) -> bytes | memoryview:
    """The request in protobuf's encoding: a protobuf body as it is, an OTLP/JSON one converted within bounds."""
    if kind == PROTOBUF:
        return body
    body = bytes(body)  # json reads bytes, not a view of a mapping
    if len(body) > MAX_JSON_BODY:
        raise Refused(413, f"an OTLP/JSON body of {len(body):,} bytes: at most {MAX_JSON_BODY:,} here (send "
                           "application/x-protobuf for more)", grpc.StatusCode.RESOURCE_EXHAUSTED)
    containers = body.count(b"{") + body.count(b"[")  # an upper bound: brackets inside strings count too
    if containers > MAX_JSON_CONTAINERS:
        raise Refused(413, f"an OTLP/JSON body with up to {containers:,} objects and arrays: at most "
                           f"{MAX_JSON_CONTAINERS:,} here (send application/x-protobuf for more)",
                      grpc.StatusCode.RESOURCE_EXHAUSTED)
    try:
        return otlpjson.loads(body).SerializeToString()
    except otlpjson.OtlpJsonError as err:
        raise Refused(400, f"cannot decode ExportTraceServiceRequest: {cut(str(err), 300)}") from None


@dataclass(slots=True)
class Group:
    """The resource and scope a run of spans came under, as bytes (ResourceSpans and ScopeSpans without their
    children), shared by every span that came under them in one request."""

    resource: bytes
    scope: bytes
    service: str


# One span as the store keeps it, with what the store indexes it by: (its place in its request, trace id (16
# bytes), name, start, end, its encoding). A plain tuple: one is made for every span received.
Piece = tuple[int, bytes, str, int, int, bytes]
_ZERO_ID = bytes(16)


def _resource_of(rs) -> tuple[bytes, str]:  # noqa: ANN001 - a shallow ResourceSpans
    resource = Resource.FromString(rs.resource)
    return (_RESOURCE_SPANS(resource=rs.resource, schema_url=rs.schema_url).SerializeToString(),
            service_of(attributes(resource.attributes)))


def _groups(request) -> Iterator[tuple[Group, str, Any]]:  # noqa: ANN001 - a shallow request
    """Each (resource, scope) of a shallow request, checked, with where it is and its spans' encodings."""
    for r, rs in enumerate(request.resource_spans):
        try:
            resource, service = _resource_of(rs)
        except DecodeError:
            raise Refused(400, f"resourceSpans[{r}]: the resource is not a Resource message") from None
        for s, ss in enumerate(rs.scope_spans):
            try:
                InstrumentationScope.FromString(ss.scope)
            except DecodeError:
                raise Refused(400, f"resourceSpans[{r}].scopeSpans[{s}]: the scope is not an InstrumentationScope "
                                   "message") from None
            group = Group(resource, _SCOPE_SPANS(scope=ss.scope, schema_url=ss.schema_url).SerializeToString(),
                          service)
            yield group, f"resourceSpans[{r}].scopeSpans[{s}]", ss.spans


def _check(where: str, spans: Any) -> int:
    """Parses every span of a group (upb checks it whole) and its ids' lengths; returns how many there are."""
    parse = PbSpan.FromString
    for i, raw in enumerate(spans):
        try:
            span = parse(raw)
        except DecodeError as err:
            raise Refused(400, f"{where}.spans[{i}]: {err}") from None
        if (len(span.trace_id) not in (0, 16) or len(span.span_id) not in (0, 8)
                or len(span.parent_span_id) not in (0, 8)):
            raise Refused(400, f"{where}.spans[{i}]: ids of {len(span.trace_id)}, {len(span.span_id)} and "
                               f"{len(span.parent_span_id)} bytes (a trace id is 16 bytes, a span id 8)")
    return len(spans)


class Request:
    """A checked request: ``count`` spans, handed out in chunks of at most ``CHUNK`` pieces."""

    def __init__(self, encoded: bytes | memoryview) -> None:
        try:
            self._shallow = _SHALLOW.FromString(encoded)
        except DecodeError as err:
            raise Refused(400, f"cannot decode ExportTraceServiceRequest: {err}") from None
        self.count = sum(_check(where, spans) for _, where, spans in _groups(self._shallow))  # nothing kept yet

    def message(self) -> ExportTraceServiceRequest:
        """The whole request as a message (for callers that want one, at the cost of building it)."""
        return ExportTraceServiceRequest.FromString(self._shallow.SerializeToString())

    def chunks(self) -> Iterator[tuple[Group, list[Piece]]]:
        """The spans again, as (group, pieces), every piece of a chunk from the same group."""
        parse = PbSpan.FromString
        position = 0
        for group, _, spans in _groups(self._shallow):
            for at in range(0, len(spans), CHUNK):
                pieces = []
                for raw in spans[at:at + CHUNK]:
                    m = parse(raw)
                    pieces.append((position, m.trace_id or _ZERO_ID, m.name, m.start_time_unix_nano,
                                   m.end_time_unix_nano, raw))
                    position += 1
                yield group, pieces


def decode(body: bytes | memoryview, kind: str) -> Request:
    """A body of ``kind`` (PROTOBUF or JSON, already inflated) checked whole; Refused says why not."""
    return Request(protobuf_of(body, kind))


def response(refused: int) -> ExportTraceServiceResponse:
    """The answer to an export, over gRPC and HTTP alike: spans refused by the per-trace bounds are counted as the
    OTLP specification's partial success, the rest were kept."""
    out = ExportTraceServiceResponse()
    if refused:
        out.partial_success.rejected_spans = refused
        out.partial_success.error_message = (f"{refused} spans refused: their trace holds as many spans or bytes as "
                                             "the sink keeps of one trace")
    return out
