"""OTLP/JSON for traces, as the OTLP specification defines it (opentelemetry-proto docs/specification.md,
"JSON Protobuf Encoding"): protobuf's JSON mapping with lowerCamelCase keys, except that

- ``traceId``, ``spanId`` and ``parentSpanId`` (in spans and links) are case-insensitive **hex** strings, not
  the base64 that protobuf's mapping gives ``bytes``;
- enum values are integers (``"kind": 2``), never names;
- a receiver ignores fields it does not know.

``google.protobuf.json_format`` gets the first two wrong on its own, so this module moves the ids between
hex and base64 around it. Other ``bytes`` (an attribute's ``bytesValue``) stay base64, as the spec says.

A document nested deeper than ``MAX_DEPTH`` objects and arrays is refused before ``json_format`` reads it:
its reader recurses in Python a few frames per level and would raise RecursionError; upb, which reads the
protobuf encoding, likewise stops at 100 nested messages.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from cristack.wording import cut

# Only message fields carry these keys: attribute keys live in "key" values, never as JSON object keys.
ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})
# Objects and arrays inside one another: a kvlist attribute 20 deep in a span is about 90.
MAX_DEPTH = 100


class OtlpJsonError(ValueError):
    """A document that is not an OTLP/JSON ExportTraceServiceRequest; the message says where and why, and
    ``value`` holds the offending text when one value is to blame."""

    def __init__(self, message: str, value: str = "") -> None:
        super().__init__(message)
        self.value = value


def _walk(node: Any, convert, depth: int = 1) -> Any:  # noqa: ANN001 - convert: (key, str) -> str
    if isinstance(node, (dict, list)) and depth > MAX_DEPTH:
        raise OtlpJsonError(f"objects and arrays nested more than {MAX_DEPTH} deep")
    if isinstance(node, dict):
        return {k: convert(k, v) if k in ID_KEYS and isinstance(v, str) else _walk(v, convert, depth + 1)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(x, convert, depth + 1) for x in node]
    return node


def _to_hex(_key: str, value: str) -> str:
    return base64.b64decode(value).hex()


def _from_hex(key: str, value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise OtlpJsonError(f"{key} {cut(value, 40)!r} is not a hex string (OTLP/JSON writes ids in hex)",
                            value) from None
    return base64.b64encode(raw).decode()


def to_dict(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """An export request as an OTLP/JSON object (hex ids, integer enums, int64 as decimal strings)."""
    plain = json_format.MessageToDict(request, use_integers_for_enums=True)
    return _walk(plain, _to_hex)


def dumps(request: ExportTraceServiceRequest, indent: int | None = None) -> str:
    """An export request as OTLP/JSON text: one compact line (as the Collector's file exporter writes them)
    unless ``indent`` is given."""
    if indent is None:
        return json.dumps(to_dict(request), separators=(",", ":"))
    return json.dumps(to_dict(request), indent=indent)


def from_dict(data: Any) -> ExportTraceServiceRequest:
    """An OTLP/JSON object as an export request; unknown fields are ignored, as the spec asks of receivers."""
    if not isinstance(data, dict):
        raise OtlpJsonError(f"expected a JSON object with resourceSpans, found {type(data).__name__}")
    try:
        return json_format.ParseDict(_walk(data, _from_hex), ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except json_format.ParseError as err:  # its messages quote the value they could not read
        raise OtlpJsonError(cut(str(err), 300)) from None


def loads(text: str | bytes) -> ExportTraceServiceRequest:
    """OTLP/JSON text as an export request."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OtlpJsonError(f"not JSON: {cut(str(err), 200)}") from None
    except RecursionError:  # the decoder's own guard, far past MAX_DEPTH
        raise OtlpJsonError(f"objects and arrays nested more than {MAX_DEPTH} deep") from None
    return from_dict(data)

