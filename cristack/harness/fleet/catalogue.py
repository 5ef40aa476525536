"""The trace-kind catalogue of one runtime: ``catalogue/<runtime>.jsonl.gz`` (``zcat`` reads it), written by
``capture`` from live runs.

Line 1 is the header: the runtime, how and when it was captured, each service's resource (``host.name`` and
``process.pid`` are the node's), and the kinds. Every other line is one span template:

- ``trace``/``span``/``parent``: indexes within the kind (fresh ids are drawn per issue, the same index
  getting the same id, so parents and traces stay joined); ``flags`` as exported (remote parent or not);
- ``start``/``end`` and each event's time: ``[anchor, offset_ns]``; the anchors are ``r`` (the issue: a node's
  or a pod's periodic root), ``t0`` (the pod's manifest written) and ``t1`` (its manifest removed);
- strings hold markers ``{{name}}`` where the capture had a concrete name, id or path: ``node``, ``base`` (the
  node's temp dir), ``pod``, ``uid``, ``ip``, ``idN`` (64-hex sandbox and container ids), ``pidN``,
  ``uuidN``; everything else is as the live components exported it.

Kinds: ``node`` (a node's periodic root, ``rate`` per second per node), ``episode`` (a pod's life:
``start_s`` before its running window, ``lifetime_s`` as captured) and ``pod-periodic`` (a root a running pod
of episode ``of`` makes, ``rate`` per second per pod).

Adding a runtime is capturing it (``python -m cristack.harness.fleet.capture --runtime NAME``, once its path
exists in ``live``) and naming it in ``RUNTIMES``.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

FORMAT = "cristack-fleet-catalogue/1"
# The runtimes a fleet node can be; each has a catalogue captured from its live path.
RUNTIMES = ("crio", "containerd")
MARKER_OPEN, MARKER_CLOSE = "{{", "}}"


def catalogue_path(runtime: str) -> Path:
    return Path(str(resources.files("cristack.harness.fleet") / "catalogue" / f"{runtime}.jsonl.gz"))


Stamp = tuple[str, int]  # (anchor, offset in ns)


@dataclass
class EventTemplate:
    time: Stamp
    name: str
    attributes: dict[str, Any]


@dataclass
class SpanTemplate:
    kind: str  # the trace kind it belongs to
    trace: int
    span: int
    parent: int | None
    flags: int
    service: str
    scope: tuple[str, str]
    name: str
    span_kind: int
    start: Stamp
    end: Stamp
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[EventTemplate] = field(default_factory=list)
    status: tuple[int, str] = (0, "")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "trace": self.trace, "span": self.span, "parent": self.parent, "flags": self.flags,
                "service": self.service, "scope": list(self.scope), "name": self.name, "span_kind": self.span_kind,
                "start": list(self.start), "end": list(self.end), "attributes": self.attributes,
                "events": [[list(e.time), e.name, e.attributes] for e in self.events], "status": list(self.status)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SpanTemplate:
        return cls(kind=d["kind"], trace=int(d["trace"]), span=int(d["span"]), parent=d["parent"],
                   flags=int(d["flags"]), service=d["service"], scope=(d["scope"][0], d["scope"][1]), name=d["name"],
                   span_kind=int(d["span_kind"]), start=(d["start"][0], int(d["start"][1])),
                   end=(d["end"][0], int(d["end"][1])), attributes=dict(d["attributes"]),
                   events=[EventTemplate((t[0], int(t[1])), n, dict(a)) for t, n, a in d["events"]],
                   status=(int(d["status"][0]), str(d["status"][1])))


@dataclass
class Kind:
    name: str
    role: str  # node | episode | pod-periodic
    rate: float = 0.0  # node, pod-periodic: issues per second per node / per running pod
    of: str = ""  # pod-periodic: the episode whose running pods make it
    start_s: float = 0.0  # episode: t0 -> its running window (a pod lives at least this long)
    lifetime_s: float = 0.0  # episode: t0 -> t1 as captured
    title: str = ""
    spans: list[SpanTemplate] = field(default_factory=list)

    @property
    def traces(self) -> int:
        return len({s.trace for s in self.spans})

    def header(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "role": self.role}
        if self.role in ("node", "pod-periodic"):
            out["rate"] = round(self.rate, 6)
        if self.of:
            out["of"] = self.of
        if self.role == "episode":
            out.update(start_s=self.start_s, lifetime_s=round(self.lifetime_s, 3))
        if self.title:
            out["title"] = self.title
        out.update(traces=self.traces, spans=len(self.spans))
        return out


@dataclass
class Catalogue:
    runtime: str
    captured: dict[str, Any]
    resources: dict[str, dict[str, Any]]  # service -> attributes (host.name, process.pid: the node's)
    kinds: dict[str, Kind]

    def of_role(self, role: str) -> list[Kind]:
        return [k for k in self.kinds.values() if k.role == role]

    def periodic_of(self, episode: str) -> list[Kind]:
        return [k for k in self.kinds.values() if k.role == "pod-periodic" and k.of == episode]

    def write(self, path: Path) -> None:
        head = {"catalogue": FORMAT, "runtime": self.runtime, "captured": self.captured, "resources": self.resources,
                "kinds": [k.header() for k in self.kinds.values()]}
        lines = [json.dumps(head, sort_keys=False)]
        for k in self.kinds.values():
            lines += [json.dumps(s.to_json(), separators=(",", ":")) for s in k.spans]
        path.parent.mkdir(parents=True, exist_ok=True)
        data = ("\n".join(lines) + "\n").encode()
        # mtime 0: the same capture gives the same bytes.
        path.write_bytes(gzip.compress(data, 9, mtime=0) if path.suffix == ".gz" else data)


class CatalogueError(ValueError):
    """A catalogue file that cannot be read (names the file and the line)."""


def read(path: Path) -> Catalogue:
    try:
        data = path.read_bytes()
        lines = (gzip.decompress(data) if path.suffix == ".gz" else data).decode().splitlines()
    except OSError as err:
        raise CatalogueError(f"{path}: {err.strerror or err}") from None
    try:
        head = json.loads(lines[0])
        if head.get("catalogue") != FORMAT:
            raise CatalogueError(f"{path}:1: not a {FORMAT} catalogue")
        kinds = {}
        for k in head["kinds"]:
            kinds[k["name"]] = Kind(k["name"], k["role"], float(k.get("rate", 0.0)), k.get("of", ""),
                                    float(k.get("start_s", 0.0)), float(k.get("lifetime_s", 0.0)), k.get("title", ""))
        for n, line in enumerate(lines[1:], 2):
            if line.strip():
                span = SpanTemplate.from_json(json.loads(line))
                if span.kind not in kinds:
                    raise CatalogueError(f"{path}:{n}: span of unknown kind {span.kind!r}")
                kinds[span.kind].spans.append(span)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        if isinstance(err, CatalogueError):
            raise
        raise CatalogueError(f"{path}: {type(err).__name__}: {err}") from None
    return Catalogue(head["runtime"], head.get("captured", {}), head["resources"], kinds)


def load(runtime: str) -> Catalogue:
    """The shipped catalogue of ``runtime`` (one of ``RUNTIMES``)."""
    if runtime not in RUNTIMES:
        raise CatalogueError(f"no catalogue for runtime {runtime!r} (known: {', '.join(RUNTIMES)})")
    return read(catalogue_path(runtime))


def marker(name: str) -> str:
    return f"{MARKER_OPEN}{name}{MARKER_CLOSE}"
