"""A structural diff of two sets of traces: the real components' recordings against ours.

Spans are compared by *shape*, never by identity: each span is named by its **path**, the chain of
``service:name`` from the root of its trace down to it (``cri-tools:runtime.v1.RuntimeService/RunPodSandbox
> crio:runtime.v1.RuntimeService/RunPodSandbox > crio:/runtime.v1.RuntimeService/RunPodSandbox``). For every
path the diff compares, between the real recording and ours:

- how many spans have it (``counted`` mode, for a scripted sequence such as a crictl session) or only
  whether it exists (``distinct`` mode, for a long run whose periodic roots vary in number);
- kinds, instrumentation scopes (and their versions where both sides record one);
- attribute keys, and the values of attributes that are the same on every real span of that path, unless
  the value is variable by nature (ids, digests, uuids, timestamps, durations, pids, ports, paths);
- event names (with their numbers in counted mode) and each event's attribute keys;
- span status codes; and, per service, the resource's attribute keys and constant values.

Every difference is one line, ``TYPE  PATH :: DETAIL``; a summary follows (shapes real / reproduced /
extra, agreeing attribute keys and event names). Differences kept on purpose live in an allowlist (TOML,
``tests/data/real/deliberate-differences.toml``) with the reason for each; the allowlist can also *detach*
a service, comparing its spans from the first span of that service down (conmon-rs 0.8.0 never joins
CRI-O's traces, while ours do, by design).

Input is JSON lines, one span per line as the ground-truth recipes' ``otlp_sink.py`` writes them, or
OTLP/JSON export requests one per line (the sink's ``--jsonl``); ``records_from_otlp`` converts protobuf.

    python -m cristack.otel.tracediff REAL.jsonl OURS.jsonl [--mode counted|distinct] [--allow FILE]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cristack.config.tomlconf import read_toml

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR", "UNSET": "UNSET", "OK": "OK", "ERROR": "ERROR"}
SEPARATOR = " > "


@dataclass(frozen=True)
class SpanRecord:
    """One span, flattened with its service and resource (the recordings' JSON-lines shape)."""

    service: str
    name: str
    kind: str
    scope: str
    span_id: str
    parent_id: str | None
    trace_id: str = ""
    scope_version: str | None = None  # None: not recorded (older recordings omit it)
    start: int = 0
    end: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    status: str = "UNSET"
    resource: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpanRecord:
        kind = d.get("kind", "INTERNAL")
        return cls(service=str(d.get("service") or d.get("resource", {}).get("service.name", "")),
                   name=d["name"], kind=KINDS.get(kind, str(kind)), scope=d.get("scope", ""),
                   span_id=d["span_id"], parent_id=d.get("parent_id") or None, trace_id=d.get("trace_id", ""),
                   scope_version=d.get("scope_version"), start=int(d.get("start", 0)), end=int(d.get("end", 0)),
                   attributes=dict(d.get("attributes") or {}),
                   events=tuple((e["name"], dict(e.get("attributes") or {})) for e in d.get("events") or ()),
                   status=STATUS.get(d.get("status", 0), str(d.get("status"))), resource=dict(d.get("resource") or {}))

    def to_dict(self) -> dict[str, Any]:
        """The recordings' JSON-lines shape, so our runs can be saved and re-read like a recording."""
        return {"service": self.service, "resource": self.resource, "scope": self.scope,
                "scope_version": self.scope_version or "", "trace_id": self.trace_id, "span_id": self.span_id,
                "parent_id": self.parent_id, "name": self.name, "kind": self.kind, "start": self.start,
                "end": self.end, "attributes": self.attributes,
                "events": [{"name": n, "attributes": a} for n, a in self.events],
                "status": {"UNSET": 0, "OK": 1, "ERROR": 2}.get(self.status, 0)}


def any_value(v: Any) -> Any:
    """An OTLP AnyValue as plain Python (bytes as hex, lists, dicts)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which)


def records_from_otlp(request: Any) -> list[SpanRecord]:
    """The spans of an OTLP ``ExportTraceServiceRequest`` (or anything with ``resource_spans``)."""
    out: list[SpanRecord] = []
    for rs in request.resource_spans:
        res = {kv.key: any_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(SpanRecord(
                    service=str(res.get("service.name", "")), name=s.name, kind=KINDS.get(s.kind, str(s.kind)),
                    scope=ss.scope.name, scope_version=ss.scope.version, span_id=s.span_id.hex(),
                    parent_id=s.parent_span_id.hex() or None, trace_id=s.trace_id.hex(),
                    start=s.start_time_unix_nano, end=s.end_time_unix_nano,
                    attributes={kv.key: any_value(kv.value) for kv in s.attributes},
                    events=tuple((e.name, {kv.key: any_value(kv.value) for kv in e.attributes}) for e in s.events),
                    status=STATUS.get(s.status.code, str(s.status.code)), resource=res))
    return out


def load_jsonl(path: str | Path) -> list[SpanRecord]:
    """Spans from a JSON-lines file: one span per line, or one OTLP/JSON export request per line."""
    from cristack.otel import otlpjson

    out: list[SpanRecord] = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not JSON: {err}") from None
        if isinstance(data, dict) and "resourceSpans" in data:
            try:
                out.extend(records_from_otlp(otlpjson.from_dict(data)))
            except otlpjson.OtlpJsonError as err:
                raise ValueError(f"{path}:{n}: not OTLP/JSON: {err}") from None
        else:
            out.append(SpanRecord.from_dict(data))
    return out


def save_jsonl(spans: Iterable[SpanRecord], path: str | Path) -> None:
    """Writes spans in the recordings' format (one span per line)."""
    with Path(path).open("w") as f:
        for s in spans:
            f.write(json.dumps(s.to_dict()) + "\n")


# -- what is variable by nature, and so never compared as a value

MASKED_KEYS = frozenset({
    "host.name", "process.pid", "thread.id", "busy_ns", "idle_ns", "network.peer.port", "network.peer.address",
    "client.address", "server.port", "code.line.number", "code.lineno", "rpc.message.compressed_size",
    "rpc.message.uncompressed_size", "message.uncompressed_size", "uuid", "id", "container_id", "exec_id", "pid",
    # containerd writes some pids as their JSON text ("5645"): still pids
    "task.pid", "sandbox.pid",
    # the pod's IP (containerd's CNI span): handed out from the node's pod CIDR in the order pods come
    "sandbox.ip",
})
_VARIABLE = [
    re.compile(r"[0-9a-f]{12,}"),  # ids, digests
    re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),  # uuids
    re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d"),  # timestamps
    re.compile(r"(^|[\s\"'=:(\[])/+(tmp|var|run|root|home|proc|sys|usr|etc|opt|srv|mnt)\b"),  # host paths
    re.compile(r"\b\d+(\.\d+)?(ns|µs|us|ms|s)\b"),  # durations
]


_NAME_MASKS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"[0-9a-f]{12,}"), "<id>"),
    (re.compile(r"/+(tmp|var|run|root|home|proc|sys|usr|etc|opt|srv|mnt)(/[^\s\"',\]\[)]*)?"), "<path>"),
    (re.compile(r"\d+"), "<n>"),
]


def event_name(name: str) -> str:
    """An event name with its variable parts masked: conmon-rs names events by their message, which
    carries ids, paths, pids and sizes ("Running child on PID: 12824" -> "Running child on PID: <n>")."""
    for pattern, mask in _NAME_MASKS:
        name = pattern.sub(mask, name)
    return name


def service_name(name: str) -> str:
    """A service name with an id in it masked: containerd's shims are ``containerd-shim-<sandbox id>``, one per
    pod, so the same shim of two runs has two names."""
    return _NAME_MASKS[1][0].sub("<id>", name)


def variable(key: str, value: Any) -> bool:
    """Whether a value differs from run to run by nature, so only its key is compared."""
    if key in MASKED_KEYS:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return key not in {"rpc.message.id", "http.response.status_code", "rpc.grpc.status_code"}
    text = json.dumps(value) if not isinstance(value, str) else value
    return any(p.search(text) for p in _VARIABLE)


# -- the allowlist of differences kept on purpose


@dataclass(frozen=True)
class Allowed:
    """One kept difference: which lines it covers (globs) and why."""

    type: str
    paths: tuple[str, ...]
    detail: str
    recordings: tuple[str, ...]
    reason: str

    def covers(self, diff: Difference, recording: str) -> bool:
        return (fnmatch.fnmatchcase(diff.type, self.type) and any(fnmatch.fnmatchcase(diff.path, p) for p in self.paths)
                and fnmatch.fnmatchcase(diff.detail, self.detail)
                and (not self.recordings or any(fnmatch.fnmatchcase(recording, r) for r in self.recordings)))


@dataclass
class Allowlist:
    """``deliberate-differences.toml``: ``[[difference]]`` entries (type, path (one glob or a list), detail
    globs, optional recordings, reason) and ``[[detach]]`` entries (service, reason)."""

    entries: list[Allowed] = field(default_factory=list)
    detached: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Allowlist:
        data = read_toml(Path(path))
        out = cls()
        for i, e in enumerate(data.get("difference", [])):
            where = f"{path}: difference[{i}]"
            for key in ("type", "path", "reason"):
                if not str(e.get(key, "")).strip():
                    raise ValueError(f"{where}: {key} is required")
            unknown = set(e) - {"type", "path", "detail", "recordings", "reason"}
            if unknown:
                raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
            paths = (e["path"],) if isinstance(e["path"], str) else tuple(e["path"])
            out.entries.append(Allowed(e["type"], paths, e.get("detail", "*"), tuple(e.get("recordings", ())),
                                       e["reason"].strip()))
        for i, e in enumerate(data.get("detach", [])):
            if not e.get("service") or not str(e.get("reason", "")).strip():
                raise ValueError(f"{path}: detach[{i}]: service and reason are required")
            out.detached[e["service"]] = e["reason"].strip()
        return out

    def match(self, diff: Difference, recording: str) -> Allowed | None:
        return next((a for a in self.entries if a.covers(diff, recording)), None)

    def markdown(self) -> str:
        """The list as a Markdown table, for docs/trace-anatomy.md."""
        def cell(text: str) -> str:
            return " ".join(text.split()).replace("|", "\\|")

        rows = ["| what | where | why |", "|---|---|---|"]
        for service, reason in self.detached.items():
            rows.append(f"| spans compared from their own root | `{service}` | {cell(reason)} |")
        for a in self.entries:
            where = ", ".join(f"`{p}`" for p in a.paths)
            if a.detail != "*":
                where += f" ({cell(a.detail)})"
            if a.recordings:
                where += " in " + ", ".join(f"`{r}`" for r in a.recordings)
            rows.append(f"| {a.type} | {cell(where)} | {cell(a.reason)} |")
        return "\n".join(rows) + "\n"


# -- shapes


@dataclass
class Shape:
    """Everything known about the spans that share one path."""

    count: int = 0
    kinds: set[str] = field(default_factory=set)
    scopes: set[tuple[str, str | None]] = field(default_factory=set)
    attr_keys: set[str] = field(default_factory=set)
    attr_values: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    events: Counter = field(default_factory=Counter)
    event_keys: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    statuses: set[str] = field(default_factory=set)
    everywhere: set[str] = field(default_factory=set)  # attribute keys that every span of the path has

    def add(self, s: SpanRecord) -> None:
        self.count += 1
        self.kinds.add(s.kind)
        self.scopes.add((s.scope, s.scope_version))
        for k, v in s.attributes.items():
            self.attr_keys.add(k)
            self.attr_values[k].add(json.dumps(v, sort_keys=True))
        for name, attrs in s.events:
            self.events[event_name(name)] += 1
            self.event_keys[event_name(name)].update(attrs)
        self.statuses.add(s.status)

    def constants(self) -> dict[str, str]:
        """Attributes every span of this path has, with one value that is not variable by nature."""
        return {k: next(iter(values)) for k, values in self.attr_values.items()
                if len(values) == 1 and k in self.everywhere and not variable(k, json.loads(next(iter(values))))}


def shapes(spans: Sequence[SpanRecord], services: Iterable[str] | None = None,
           detached: Iterable[str] = ()) -> dict[str, Shape]:
    """Spans grouped by their path from the root. Spans of other ``services`` are left out (a kept span
    whose parent was left out starts a path); a ``detached`` service's spans start a path where their
    parent belongs to another service; a parent missing from the set (never exported) starts one too."""
    keep = set(services) if services is not None else None
    spans = [s for s in spans if keep is None or s.service in keep]
    by_id = {s.span_id: s for s in spans}
    detached = set(detached)
    paths: dict[str, str] = {}

    def path_of(s: SpanRecord) -> str:
        known = paths.get(s.span_id)
        if known is not None:
            return known
        chain, seen, cur = [], set(), s
        while True:
            chain.append(cur)
            seen.add(cur.span_id)
            parent = by_id.get(cur.parent_id or "")
            if parent is None or parent.span_id in seen:
                break
            if cur.service in detached and parent.service != cur.service:
                break
            cur = parent
        out = SEPARATOR.join(f"{x.service}:{x.name}" for x in reversed(chain))
        paths[s.span_id] = out
        return out

    result: dict[str, Shape] = {}
    present: dict[str, Counter] = defaultdict(Counter)
    for s in spans:
        p = path_of(s)
        result.setdefault(p, Shape()).add(s)
        present[p].update(s.attributes.keys())
    for p, shape in result.items():
        shape.everywhere = {k for k, n in present[p].items() if n == shape.count}
    return result


def resources(spans: Sequence[SpanRecord], services: Iterable[str] | None = None) -> dict[str, dict[str, set[str]]]:
    keep = set(services) if services is not None else None
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for s in spans:
        if keep is None or s.service in keep:
            for k, v in s.resource.items():
                out[s.service][k].add(json.dumps(v, sort_keys=True))
    return out


# -- the diff


@dataclass(frozen=True)
class Difference:
    type: str
    path: str
    detail: str

    def line(self) -> str:
        return f"{self.type:<18} {self.path} :: {self.detail}"


@dataclass
class DiffResult:
    recording: str
    mode: str
    differences: list[Difference]
    allowed: list[tuple[Difference, Allowed]]
    real_shapes: int
    reproduced: int
    extra: int
    attr_keys_real: int
    attr_keys_agreeing: int
    event_names_real: int
    event_names_agreeing: int
    unused: list[Allowed] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        def pct(a: int, b: int) -> str:
            return f"{100 * a / b:.0f}%" if b else "n/a"

        unit = "spans" if self.mode == "counted" else "distinct shapes"
        return (f"{self.recording}: real {self.real_shapes} {unit}, reproduced {self.reproduced} "
                f"({pct(self.reproduced, self.real_shapes)}), extra {self.extra}; attribute keys agreeing "
                f"{pct(self.attr_keys_agreeing, self.attr_keys_real)}, event names agreeing "
                f"{pct(self.event_names_agreeing, self.event_names_real)}; {len(self.differences)} difference(s), "
                f"{len(self.allowed)} allowed")

    def report(self, show_allowed: bool = False) -> str:
        lines = [d.line() for d in self.differences]
        if show_allowed:
            lines += [f"(allowed) {d.line()}" for d, _ in self.allowed]
        lines.append(self.summary())
        return "\n".join(lines)


def _fmt_scope(scope: tuple[str, str | None]) -> str:
    return f"{scope[0]!r}@{scope[1]!r}" if scope[1] is not None else repr(scope[0])


def _scopes_agree(real: set[tuple[str, str | None]], ours: set[tuple[str, str | None]]) -> bool:
    # A recording without scope versions compares names only.
    if any(v is None for _, v in real | ours):
        return {n for n, _ in real} == {n for n, _ in ours}
    return real == ours


def diff(real: Sequence[SpanRecord], ours: Sequence[SpanRecord], *, mode: str = "counted",
         allow: Allowlist | None = None, recording: str = "", services: Iterable[str] | None = None) -> DiffResult:
    """Compares ``ours`` with ``real`` shape by shape (see the module docstring)."""
    if mode not in ("counted", "distinct"):
        raise ValueError(f"mode must be counted or distinct, not {mode!r}")
    allow = allow or Allowlist()
    real = [s if s.service == service_name(s.service) else replace(s, service=service_name(s.service)) for s in real]
    ours = [s if s.service == service_name(s.service) else replace(s, service=service_name(s.service)) for s in ours]
    if services is None:
        services = {s.service for s in real}
    services = {service_name(x) for x in services}
    rs = shapes(real, services, allow.detached)
    os_ = shapes(ours, services, allow.detached)
    found: list[Difference] = []
    real_total = reproduced = extra = 0
    keys_real = keys_ok = ev_real = ev_ok = 0

    for path in sorted(rs.keys() | os_.keys()):
        r, o = rs.get(path), os_.get(path)
        if r is not None:
            real_total += r.count if mode == "counted" else 1
        if r is None:
            extra += o.count if mode == "counted" else 1
            found.append(Difference("extra-span", path, f"ours {o.count}, real 0"))
            continue
        keys_real += len(r.attr_keys)
        ev_real += len(r.events)
        if o is None:
            found.append(Difference("missing-span", path, f"real {r.count}, ours 0"))
            continue
        if mode == "counted":
            reproduced += min(r.count, o.count)
            extra += max(0, o.count - r.count)
            if r.count != o.count:
                found.append(Difference("count", path, f"real {r.count}, ours {o.count}"))
        else:
            reproduced += 1
        if r.kinds != o.kinds:
            found.append(Difference("kind", path, f"real {sorted(r.kinds)}, ours {sorted(o.kinds)}"))
        if not _scopes_agree(r.scopes, o.scopes):
            found.append(Difference("scope", path, f"real {', '.join(map(_fmt_scope, sorted(r.scopes, key=str)))}; "
                                                  f"ours {', '.join(map(_fmt_scope, sorted(o.scopes, key=str)))}"))
        keys_ok += len(r.attr_keys & o.attr_keys)
        for k in sorted(r.attr_keys - o.attr_keys):
            found.append(Difference("attr-missing", path, k))
        for k in sorted(o.attr_keys - r.attr_keys):
            found.append(Difference("attr-extra", path, k))
        ours_values = o.attr_values
        for k, v in sorted(r.constants().items()):
            if k in o.attr_keys and ours_values[k] != {v}:
                shown = sorted(ours_values[k])[:3]
                found.append(Difference("attr-value", path, f"{k}: real {v}, ours {', '.join(shown)}"))
        ev_ok += len(r.events.keys() & o.events.keys())
        for name in sorted(r.events.keys() - o.events.keys()):
            found.append(Difference("event-missing", path, name))
        for name in sorted(o.events.keys() - r.events.keys()):
            found.append(Difference("event-extra", path, name))
        for name in sorted(r.events.keys() & o.events.keys()):
            if mode == "counted" and r.events[name] != o.events[name]:
                found.append(Difference("event-count", path, f"{name}: real {r.events[name]}, ours {o.events[name]}"))
            for k in sorted(r.event_keys[name] - o.event_keys[name]):
                found.append(Difference("event-attr-missing", path, f"{name}: {k}"))
            for k in sorted(o.event_keys[name] - r.event_keys[name]):
                found.append(Difference("event-attr-extra", path, f"{name}: {k}"))
        if r.statuses != o.statuses:
            found.append(Difference("status", path, f"real {sorted(r.statuses)}, ours {sorted(o.statuses)}"))

    rres, ores = resources(real, services), resources(ours, services)
    for service in sorted(rres.keys() | ores.keys()):
        rk, ok_ = rres.get(service, {}), ores.get(service, {})
        if not rk or not ok_:
            continue  # a service missing altogether already shows as missing or extra spans
        for k in sorted(rk.keys() - ok_.keys()):
            found.append(Difference("resource-missing", service, k))
        for k in sorted(ok_.keys() - rk.keys()):
            found.append(Difference("resource-extra", service, k))
        for k in sorted(rk.keys() & ok_.keys()):
            values = rk[k]
            if len(values) == 1 and not variable(k, json.loads(next(iter(values)))) and ok_[k] != values:
                found.append(Difference("resource-value", service, f"{k}: real {next(iter(values))}, "
                                                                   f"ours {', '.join(sorted(ok_[k]))}"))

    kept, allowed = [], []
    used: set[int] = set()
    for d in found:
        a = allow.match(d, recording)
        if a is None:
            kept.append(d)
        else:
            allowed.append((d, a))
            used.add(id(a))
    unused = [a for a in allow.entries if id(a) not in used
              and (not a.recordings or any(fnmatch.fnmatchcase(recording, r) for r in a.recordings))]
    return DiffResult(recording, mode, kept, allowed, real_total, reproduced, extra, keys_real, keys_ok,
                      ev_real, ev_ok, unused)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cristack.otel.tracediff", description=__doc__.split("\n\n")[0])
    ap.add_argument("real", type=Path, help="the recording (JSON lines)")
    ap.add_argument("ours", type=Path, help="our spans (JSON lines)")
    ap.add_argument("--mode", choices=("counted", "distinct"), default="counted")
    ap.add_argument("--allow", type=Path, help="deliberate-differences.toml")
    ap.add_argument("--recording", default="", help="the recording's name as the allowlist's 'recordings' see it")
    ap.add_argument("--services", help="comma-separated services to compare (default: the recording's)")
    ap.add_argument("--show-allowed", action="store_true")
    args = ap.parse_args(argv)
    try:
        allow = Allowlist.load(args.allow) if args.allow else None
        real, ours = load_jsonl(args.real), load_jsonl(args.ours)
    except (OSError, ValueError) as err:
        print(f"tracediff: {err}", file=sys.stderr)
        return 2
    services = args.services.split(",") if args.services else None
    result = diff(real, ours, mode=args.mode, allow=allow, recording=args.recording or args.real.name,
                  services=services)
    try:
        print(result.report(args.show_allowed))
    except BrokenPipeError:  # piped into head: the reader has what it wanted
        pass
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
