"""OTLP trace export requests written straight in protobuf's wire format.

The SDK's encoder (``opentelemetry.exporter.otlp.proto.common``) builds a protobuf object for every span,
attribute, event and value, and hashes each span's Resource as JSON to group them: about 100 µs of Python per
span. Our components make several spans per CRI call, so a kubelet relist in which a thousand pods changed
spends more CPU encoding spans than serving the calls. Here each span is a handful of byte strings joined
once, and the (key, value) pairs that repeat from span to span (``rpc.system.name=grpc``, a pod's name) are
encoded once and remembered.

The bytes decode to the request the SDK's encoder builds (``tests/unit/test_otlpwire.py`` holds the two side
by side over generated spans), so what a collector receives is the same. Field numbers are those of
opentelemetry-proto's trace.proto, common.proto and resource.proto (v1).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack
_SMALL = [bytes((n,)) for n in range(128)]  # one-byte varints, the common case for lengths and counts

# Span.kind: SpanKind's values are the API's; the proto's enum starts at 1 for INTERNAL.
_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
# Span.flags: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, plus SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK for a remote parent.
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
_SPAN_FLAGS_TAG = b"\x85\x01"  # field 16, fixed32: the one tag above 15, two bytes

_CACHE_LIMIT = 8192  # remembered (key, value) encodings; cleared when full (values that never repeat)


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint; a negative int64 is its 64-bit two's complement (ten bytes)."""
    if 0 <= n < 128:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_SMALL[n] if n < 128 else varint(n)) + payload


def any_value(value: Any) -> bytes:
    """An AnyValue message: the SDK's choice of oneof member for each Python type."""
    if value is None:
        return b""
    if isinstance(value, bool):  # before int: a bool is an int
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _field(b"\x0a", value.encode("utf-8", "surrogatepass"))
    if isinstance(value, int):
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join(_field(b"\x0a", key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"cannot encode {type(value).__name__} value {value!r}")


def key_value(key: str, value: Any) -> bytes:
    """A KeyValue message."""
    return (_field(b"\x0a", key.encode()) if key else b"") + _field(b"\x12", any_value(value))


class SpanEncoder:
    """Encodes batches of finished SDK spans as ExportTraceServiceRequest bytes. Keeps the encodings of
    (key, value) pairs it has seen: one encoder per exporter (it is not shared between threads)."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[bytes, str, type, Any], bytes] = {}

    def attributes(self, tag: bytes, attributes: Mapping[str, Any] | None) -> list[bytes]:
        """Each attribute as a KeyValue field with ``tag``."""
        if not attributes:
            return []
        out = []
        pairs = self._pairs
        for key, value in attributes.items():
            kind = type(value)
            # (Not floats: 0.0 and -0.0 are equal keys with different encodings.)
            if kind is str or kind is int or kind is bool:
                cached = pairs.get((tag, key, kind, value))
                if cached is None:
                    if len(pairs) >= _CACHE_LIMIT:
                        pairs.clear()
                    cached = pairs[(tag, key, kind, value)] = _field(tag, key_value(key, value))
                out.append(cached)
            else:
                out.append(_field(tag, key_value(key, value)))
        return out

    def span(self, span: ReadableSpan) -> bytes:
        """A Span message."""
        ctx = span.get_span_context()
        parts = [b"\x0a\x10" + ctx.trace_id.to_bytes(16, "big"), b"\x12\x08" + ctx.span_id.to_bytes(8, "big")]
        if ctx.trace_state:
            parts.append(_field(b"\x1a", ",".join(f"{k}={v}" for k, v in ctx.trace_state.items()).encode()))
        parent = span.parent
        if parent is not None:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
        if span.name:
            parts.append(_field(b"\x2a", span.name.encode("utf-8", "surrogatepass")))
        parts.append(b"\x30" + _SMALL[_KIND[span.kind]])
        if span.start_time:
            parts.append(b"\x39" + _FIXED64(span.start_time))
        if span.end_time:
            parts.append(b"\x41" + _FIXED64(span.end_time))
        parts += self.attributes(b"\x4a", span.attributes)
        if span.dropped_attributes:
            parts.append(b"\x50" + varint(span.dropped_attributes))
        for event in span.events:
            body = [b"\x09" + _FIXED64(event.timestamp)] if event.timestamp else []
            if event.name:
                body.append(_field(b"\x12", event.name.encode("utf-8", "surrogatepass")))
            body += self.attributes(b"\x1a", event.attributes)
            if event.dropped_attributes:
                body.append(b"\x20" + varint(event.dropped_attributes))
            parts.append(_field(b"\x5a", b"".join(body)))
        if span.dropped_events:
            parts.append(b"\x60" + varint(span.dropped_events))
        for link in span.links:
            body = [b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big"),
                    b"\x12\x08" + link.context.span_id.to_bytes(8, "big")]
            body += self.attributes(b"\x22", link.attributes)
            if link.dropped_attributes:
                body.append(b"\x28" + varint(link.dropped_attributes))
            body.append(b"\x35" + _FIXED32(_HAS_IS_REMOTE | (_IS_REMOTE if link.context.is_remote else 0)))
            parts.append(_field(b"\x6a", b"".join(body)))
        if span.dropped_links:
            parts.append(b"\x70" + varint(span.dropped_links))
        status = span.status
        if status is not None:
            body = []
            if status.description:
                body.append(_field(b"\x12", status.description.encode("utf-8", "surrogatepass")))
            if status.status_code.value:
                body.append(b"\x18" + varint(status.status_code.value))
            parts.append(_field(b"\x7a", b"".join(body)))
        flags = _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)
        parts.append(_SPAN_FLAGS_TAG + _FIXED32(flags))
        return b"".join(parts)

    def request(self, spans: Sequence[ReadableSpan]) -> bytes:
        """An ExportTraceServiceRequest: the spans grouped by resource, then by instrumentation scope, in the
        order they first appear (as the SDK's encoder groups them)."""
        # Grouped by the Resource object itself (a provider's spans share one), not by hashing its attributes.
        groups: dict[int, tuple[Any, dict[tuple, tuple[Any, list[bytes]]]]] = {}
        for span in spans:
            resource = span.resource
            scopes = groups.setdefault(id(resource), (resource, {}))[1]
            scope = span.instrumentation_scope
            key = (scope.name, scope.version, scope.schema_url) if scope is not None else None
            scopes.setdefault(key, (scope, []))[1].append(self.span(span))
        out = []
        for resource, scopes in groups.values():
            body = [_field(b"\x0a", b"".join(self.attributes(b"\x0a", resource.attributes)))]
            for scope, encoded in scopes.values():
                scope_body = []
                if scope is not None:
                    if scope.name:
                        scope_body.append(_field(b"\x0a", scope.name.encode()))
                    if scope.version:
                        scope_body.append(_field(b"\x12", scope.version.encode()))
                    scope_body += self.attributes(b"\x1a", scope.attributes)
                parts = [_field(b"\x0a", b"".join(scope_body))]
                parts += [_field(b"\x12", s) for s in encoded]
                if scope is not None and scope.schema_url:
                    parts.append(_field(b"\x1a", scope.schema_url.encode()))
                body.append(_field(b"\x12", b"".join(parts)))
            if resource.schema_url:
                body.append(_field(b"\x1a", resource.schema_url.encode()))
            out.append(_field(b"\x0a", b"".join(body)))
        return b"".join(out)


class WireSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC span exporter (its retries, headers, compression and TLS settings), with requests
    built by ``SpanEncoder``: the bytes are parsed into the request message in C, which costs little beside
    the Python the SDK's encoder would spend."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._encoder = SpanEncoder()

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        return ExportTraceServiceRequest.FromString(self._encoder.request(data))
