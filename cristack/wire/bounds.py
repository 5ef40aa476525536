"""Bounds on a request's maps, checked on its bytes before it is decoded.

A CRI request may carry maps (labels, annotations, label selectors, sysctls): protobuf's own decoder (upb)
builds a map of 300,000 entries in about 5 s, superlinearly (100,000: 0.08 s), and a sandbox that keeps such
a map costs every later ListPodSandbox as much again (a 4 MB RunPodSandbox made each relist take 6 s). The
kubelet never sends more than a handful: the API server caps a pod's annotations at 256 KiB and its labels
are few. Neither CRI-O nor containerd bounds them (Go decodes them in linear time); this bound is ours, sized
far above any real pod, and it is checked by walking the wire format (tags and lengths, no entry built),
stopping at the first map over the limit.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

MAX_MAP_ENTRIES = 16_384  # per map; what a pod carries is in the tens
MAX_TOTAL_MAP_ENTRIES = 4 * MAX_MAP_ENTRIES  # per request, all its maps together

_WITH_MAPS: dict[str, bool] = {}


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def has_maps(desc: Descriptor, _seen: frozenset[str] = frozenset()) -> bool:
    """Whether a message of this type can hold a map, at any depth (cached per type)."""
    known = _WITH_MAPS.get(desc.full_name)
    if known is not None:
        return known
    if desc.full_name in _seen:  # a recursive type: whatever it holds is found on the way in
        return False
    seen = _seen | {desc.full_name}
    found = any(_is_map(f) or (f.message_type is not None and has_maps(f.message_type, seen)) for f in desc.fields)
    _WITH_MAPS[desc.full_name] = found
    return found


class _Varint(ValueError):
    """Bytes that are not the wire format: left to the decoder, which says so."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Varint()
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


class _Budget:
    def __init__(self) -> None:
        self.total = 0


def _walk(data: bytes, start: int, end: int, desc: Descriptor, path: str, budget: _Budget) -> str | None:
    counts: dict[int, int] = {}
    pos = start
    while pos < end:
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            continue
        if wire == 1:
            pos += 8
            continue
        if wire == 5:
            pos += 4
            continue
        if wire != 2:
            raise _Varint()  # groups: not in these protocols
        length, pos = _varint(data, pos)
        field = desc.fields_by_number.get(number)
        if field is not None and field.message_type is not None:
            name = f"{path}{field.name}"
            if _is_map(field):
                counts[number] = counts.get(number, 0) + 1
                budget.total += 1
                if counts[number] > MAX_MAP_ENTRIES:
                    return f"{name} has more than {MAX_MAP_ENTRIES:,} entries (the most a map may have here)"
                if budget.total > MAX_TOTAL_MAP_ENTRIES:
                    return (f"the request's maps have more than {MAX_TOTAL_MAP_ENTRIES:,} entries together "
                            f"(at {name})")
            elif has_maps(field.message_type):
                problem = _walk(data, pos, min(pos + length, end), field.message_type, name + ".", budget)
                if problem:
                    return problem
        pos += length
    return None


def oversized_map(data: bytes, desc: Descriptor) -> str | None:
    """Why a request of type ``desc`` encoded as ``data`` is refused, or None (also when ``data`` is not the wire
    format at all: the decoder reports that)."""
    if not has_maps(desc):
        return None
    try:
        return _walk(data, 0, len(data), desc, "", _Budget())
    except _Varint:
        return None
