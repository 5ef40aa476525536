"""ttrpc's per-call metadata (metadata.go): string keys, each with one or more values.

``MD.set``/``append`` lower-case the key and ``get`` looks a key up lower-cased, as ttrpc's MD does;
pairs read off the wire keep the key as sent (``fromRequest``), so a peer's upper-case key is found
only by its exact spelling through ``items``. containerd puts its namespace here
(``containerd-namespace-ttrpc``) and otelttrpc the trace context (``traceparent``, ``tracestate``,
``baggage``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from cristack.wire.pb.ttrpc import request_pb2

MAX_PAIRS = 256  # a request carries a handful; more is a hostile peer


class MD:
    def __init__(self, pairs: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]] = ()) -> None:
        self._values: dict[str, list[str]] = {}
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        for key, value in items:
            self.append(key, *([value] if isinstance(value, str) else value))

    @classmethod
    def from_request(cls, request: request_pb2.Request) -> MD:
        md = cls()
        for kv in request.metadata[:MAX_PAIRS]:
            md._values.setdefault(kv.key, []).append(kv.value)
        return md

    def get(self, key: str) -> list[str]:
        return list(self._values.get(key.lower(), ()))

    def first(self, key: str) -> str | None:
        values = self._values.get(key.lower())
        return values[0] if values else None

    def set(self, key: str, *values: str) -> None:
        if values:
            self._values[key.lower()] = list(values)
        else:
            self._values.pop(key.lower(), None)

    def append(self, key: str, *values: str) -> None:
        if values:
            self._values.setdefault(key.lower(), []).extend(values)

    def keys(self) -> list[str]:
        return list(self._values)

    def items(self) -> Iterator[tuple[str, str]]:
        for key, values in self._values.items():
            for value in values:
                yield key, value

    def copy(self) -> MD:
        md = MD()
        md._values = {k: list(v) for k, v in self._values.items()}
        return md

    def to_pairs(self) -> list[request_pb2.KeyValue]:
        return [request_pb2.KeyValue(key=k, value=v) for k, v in self.items()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._values

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"MD({self._values!r})"
