"""Span templates compiled into OTLP protobuf bytes once, re-issued by filling holes.

A trace kind is compiled into *emissions*: the spans that end within one 100 ms export period of each other
(as a component's batch processor would send them together), grouped by service and instrumentation scope.
Each group is one ``ScopeSpans`` message in protobuf's wire format, written by ``cristack.otel.otlpwire``'s
encoder, in which every id, time and marker is a hole of fixed length: trace ids (16 bytes), span and parent ids
(8), times (fixed64) and the markers' text, whose lengths are part of the compile (a kind compiles once per
set of marker lengths). The bytes are a ``bytes`` %-format (``%b`` per hole, ``%%`` for a literal ``%``), so
issuing a group is one C call on a tuple of values; only the ``ResourceSpans`` around it (the node's resource,
whose length differs per node) is added per issue.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

from cristack.harness.fleet.catalogue import MARKER_CLOSE, MARKER_OPEN, Kind, SpanTemplate
from cristack.otel.otlpwire import _field, key_value, varint

EMIT_PERIOD_NS = 100_000_000  # the components' batch processors export every 100 ms
_MARKER = re.compile(re.escape(MARKER_OPEN) + r"([a-z.]+[0-9]*)" + re.escape(MARKER_CLOSE))
_PACK = struct.Struct("<Q").pack
# Holes are found by encoding twice, with two different fillers: the bytes that differ are the holes'.
_FILLERS = ((0x00, "a"), (0xFF, "b"))

# Hole kinds: ("T", trace index) 16 bytes, ("S", span index) 8 bytes, ("t", anchor, offset) 8 bytes,
# ("m", marker name) its compile-time length.
Hole = tuple


def markers_in(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(_MARKER.findall(value))
    if isinstance(value, list):
        return set().union(*(markers_in(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(markers_in(v) for v in value.values())) if value else set()
    return set()


def fill_markers(value: Any, values: dict[str, str]) -> Any:
    """``value`` with each marker replaced by its value from ``values`` (for what is filled rarely: a resource)."""
    if isinstance(value, str):
        return _MARKER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, list):
        return [fill_markers(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill_markers(v, values) for k, v in value.items()}
    return value


def kind_markers(kind: Kind) -> list[str]:
    """The markers a kind's issue needs values for: those of its spans and of the services they belong to."""
    found: set[str] = set()
    for s in kind.spans:
        found |= markers_in(s.service) | markers_in(s.name) | markers_in(s.attributes) | markers_in(s.status[1])
        for e in s.events:
            found |= markers_in(e.name) | markers_in(e.attributes)
    return sorted(found)


@dataclass
class Group:
    """One ScopeSpans of one emission: its %-format and the holes' recipes, in order."""

    service: str
    fmt: bytes
    recipe: tuple[Hole, ...]
    spans: int


@dataclass
class Emission:
    """What one export period of a kind's issue sends: when (anchor, offset of its last span end) and its groups."""

    anchor: str
    offset: int
    groups: list[Group]

    @property
    def spans(self) -> int:
        return sum(g.spans for g in self.groups)


class _Text:
    """A string with markers, split into literal parts and marker holes."""

    def __init__(self, text: str, lengths: dict[str, int]) -> None:
        self.parts: list[str | tuple[str, int]] = []
        pos = 0
        for m in _MARKER.finditer(text):
            if m.start() > pos:
                self.parts.append(text[pos:m.start()])
            self.parts.append((m.group(1), lengths[m.group(1)]))
            pos = m.end()
        if pos < len(text):
            self.parts.append(text[pos:])

    def placeholder(self, holes: list[Hole], filler: str) -> str:
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                holes.append(("m", p[0]))
                out.append(filler * p[1])
        return "".join(out)


class _Encoding:
    """One encoding pass: the fillers it writes in the holes, and the holes in byte order."""

    def __init__(self, lengths: dict[str, int], filler: tuple[int, str]) -> None:
        self.lengths = lengths
        self.byte, self.char = filler
        self.holes: list[Hole] = []

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return _Text(value, self.lengths).placeholder(self.holes, self.char) if MARKER_OPEN in value else value
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value


def _span_bytes(s: SpanTemplate, enc: _Encoding) -> bytes:
    """The Span message with placeholders, appending its holes (in byte order) to ``enc.holes``."""
    z8, z16 = bytes((enc.byte,)) * 8, bytes((enc.byte,)) * 16
    holes = enc.holes
    parts = [b"\x0a\x10" + z16, b"\x12\x08" + z8]
    holes += [("T", s.trace), ("S", s.span)]
    if s.parent is not None:
        parts.append(b"\x22\x08" + z8)
        holes.append(("S", s.parent))
    name = enc.fill(s.name)
    if name:
        parts.append(_field(b"\x2a", name.encode()))
    parts.append(b"\x30" + varint(s.span_kind))
    parts.append(b"\x39" + z8)
    parts.append(b"\x41" + z8)
    holes += [("t", *s.start), ("t", *s.end)]
    for k, v in s.attributes.items():
        parts.append(_field(b"\x4a", key_value(k, enc.fill(v))))
    for e in s.events:
        holes.append(("t", *e.time))
        body = [b"\x09" + z8]
        ename = enc.fill(e.name)
        if ename:
            body.append(_field(b"\x12", ename.encode()))
        for k, v in e.attributes.items():
            body.append(_field(b"\x1a", key_value(k, enc.fill(v))))
        parts.append(_field(b"\x5a", b"".join(body)))
    code, message = s.status
    body = []
    message = enc.fill(message)
    if message:
        body.append(_field(b"\x12", message.encode()))
    if code:
        body.append(b"\x18" + varint(code))
    parts.append(_field(b"\x7a", b"".join(body)))
    parts.append(b"\x85\x01" + struct.pack("<I", s.flags))
    return b"".join(parts)


_SIZES = {"T": 16, "S": 8, "t": 8}


def _to_format(a: bytes, b: bytes, holes: list[Hole], lengths: dict[str, int]) -> bytes:
    """The %-format of two encodings that differ only in their holes' fillers: ``%b`` where they differ (each
    run of differing bytes split into the holes it holds, in order), the rest literal (``%`` doubled)."""
    if len(a) != len(b):
        raise ValueError("compile: the two encodings differ in length")
    sizes = [_SIZES.get(h[0]) or lengths[h[1]] for h in holes]
    fmt = []
    last = pos = i = 0
    n = len(a)
    while i < len(holes):
        while pos < n and a[pos] == b[pos]:
            pos += 1
        start = pos
        while pos < n and a[pos] != b[pos]:
            pos += 1
        run, first = pos - start, i
        taken = 0
        while taken < run and i < len(holes):
            taken += sizes[i]
            i += 1
        if run == 0 or taken != run:
            raise ValueError(f"compile: the differing bytes at {start} do not line up with the holes")
        fmt += [a[last:start].replace(b"%", b"%%"), b"%b" * (i - first)]
        last = pos
    if a[last:] != b[last:]:
        raise ValueError("compile: more differing bytes than holes")
    fmt.append(a[last:].replace(b"%", b"%%"))
    return b"".join(fmt)


def compile_kind(kind: Kind, lengths: dict[str, int]) -> list[Emission]:
    """``kind``'s emissions with every marker of the given length (see the module docstring)."""
    buckets: dict[tuple[str, int], list[SpanTemplate]] = {}
    for s in kind.spans:
        anchor, off = s.end
        buckets.setdefault((anchor, -(-off // EMIT_PERIOD_NS)), []).append(s)
    order = {"r": 0, "t0": 1, "t1": 2}
    out = []
    for (anchor, _bucket), spans in sorted(buckets.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        groups: dict[tuple[str, tuple[str, str]], list[SpanTemplate]] = {}
        for s in spans:
            groups.setdefault((s.service, s.scope), []).append(s)
        compiled = []
        for (service, scope), members in groups.items():
            scope_body = b""
            if scope[0]:
                scope_body += _field(b"\x0a", scope[0].encode())
            if scope[1]:
                scope_body += _field(b"\x12", scope[1].encode())
            encoded = []
            for filler in _FILLERS:
                enc = _Encoding(lengths, filler)
                body = [_field(b"\x0a", scope_body)] + [_field(b"\x12", _span_bytes(s, enc)) for s in members]
                encoded.append((_field(b"\x12", b"".join(body)), enc.holes))  # ResourceSpans.scope_spans
            (a, holes), (b, _) = encoded
            compiled.append(Group(service, _to_format(a, b, holes, lengths), tuple(holes), len(members)))
        out.append(Emission(anchor, max(s.end[1] for s in spans), compiled))
    return out


def resource_bytes(attributes: dict[str, Any]) -> bytes:
    """ResourceSpans.resource (field 1) for these attributes."""
    return _field(b"\x0a", b"".join(_field(b"\x0a", key_value(k, v)) for k, v in attributes.items()))


def issue(group: Group, resource: bytes, traces: list[bytes], spans: list[bytes], anchors: dict[str, int],
          markers: dict[str, bytes]) -> bytes:
    """One ResourceSpans (request field 1) of ``group`` with every hole filled."""
    values = []
    for hole in group.recipe:
        kind = hole[0]
        if kind == "t":
            values.append(_PACK(anchors[hole[1]] + hole[2]))
        elif kind == "S":
            values.append(spans[hole[1]])
        elif kind == "T":
            values.append(traces[hole[1]])
        else:
            values.append(markers[hole[1]])
    body = resource + group.fmt % tuple(values)
    n = len(body)
    return b"\x0a" + (bytes((n,)) if n < 128 else varint(n)) + body
