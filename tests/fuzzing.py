"""Hypothesis strategies that build arbitrary protobuf messages from their descriptors: empty
messages, missing fields, huge and unicode strings, negative numbers, maps and lists."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor as F
from hypothesis import strategies as st

TEXT = st.one_of(
    st.just(""),
    st.text(max_size=40),
    st.sampled_from(["../../etc/passwd", "/etc", "a" * 64, "\x00", "ümlaut/ü", "busybox", "registry.invalid/x:1",
                     "unix:///etc", "sh", "-c", "sleep", "1"]),
    st.text(min_size=1, max_size=2).map(lambda s: s * 20000),  # tens of kilobytes
)
INT = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, -1, 2**31 - 1]))
UINT = st.integers(0, 2**32 - 1)


def _scalar(field: F) -> st.SearchStrategy:
    t = field.type
    if t == F.TYPE_STRING:
        return TEXT
    if t == F.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return INT
    if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return st.integers(-(2**63), 2**63 - 1)
    if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return UINT
    if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(allow_nan=False, width=32)
    if t == F.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values] + [99])
    raise TypeError(t)


def messages(cls, depth: int = 3) -> st.SearchStrategy:  # noqa: ANN001 - a generated message class
    """Messages of ``cls`` with a random subset of fields set, nested up to ``depth``."""
    desc = cls.DESCRIPTOR

    @st.composite
    def build(draw):  # noqa: ANN001, ANN202
        msg = cls()
        fields = list(desc.fields)
        chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields))) if fields else []
        for f in chosen:
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                value_field = f.message_type.fields_by_name["value"]
                if value_field.message_type is not None:
                    continue
                items = draw(st.dictionaries(TEXT, _scalar(value_field), max_size=3))
                getattr(msg, f.name).update(items)
            elif f.message_type is not None:
                if depth <= 0:
                    continue
                if f.is_repeated:
                    sub = getattr(msg, f.name)
                    elem_cls = type(sub.add())
                    del sub[-1]
                    for _ in range(draw(st.integers(0, 2))):
                        sub.add().CopyFrom(draw(messages(elem_cls, depth - 1)))
                else:
                    getattr(msg, f.name).CopyFrom(draw(messages(type(getattr(cls(), f.name)), depth - 1)))
            elif f.is_repeated:
                getattr(msg, f.name).extend(draw(st.lists(_scalar(f), max_size=4)))
            else:
                setattr(msg, f.name, draw(_scalar(f)))
        return msg

    return build()
