"""Golden trace snapshots: a trace normalised so that two runs of the same thing compare equal, and a
structural diff of two traces.

Normalising (``normalise``): span and trace ids become stable labels (``s1``, ``s2``, … in tree order;
an attribute whose value is one of the trace's ids gets the label too); timestamps become order
(spans are listed depth-first, siblings by service, name, then start time; events keep their order);
durations are dropped; a service named after an id (containerd's ``containerd-shim-<sandbox id>``, one per pod) has
the id masked; attribute values that vary from run to run by nature (``cristack.otel.tracediff``'s
masking: ids, uuids, digests, host paths, timestamps, durations, pids, ports) are masked with
``<id>``, ``<uuid>``, ``<path>``, ``<time>``, ``<duration>``, ``<ip>`` or ``<masked>``.

Comparing (``diff``): each span is keyed by its path from the root (``service:name > service:name``),
never by its label or position, and rendered as one line per fact (kind, scope, status, each attribute,
each distinct event, in order of first appearance: a repetition with the same masked attributes, such as
one more read of a container's output, is timing, not structure); the two renderings are compared as a
unified diff. A missing or extra span, a changed kind,
scope, parent, attribute key or value, or event shows as ``-``/``+`` lines under the span's path.

    cristack snapshot TRACE_FILE_OR_JAEGER_URL [--trace ID | --match SELECTOR] [-o SNAPSHOT]
    cristack diff A B        (snapshots or trace files; exit 0 same, 1 different, 2 bad input)
"""

from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cristack.harness.sink.store import Span
from cristack.otel.tracediff import MASKED_KEYS, event_name, service_name, variable

FORMAT = "cristack-snapshot/1"
SEPARATOR = " > "


class SnapshotError(ValueError):
    """Input that is not a trace or a snapshot (with the file and why)."""


_VALUE_MASKS = [
    (re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"), "<uuid>"),
    (re.compile(r"[0-9a-f]{12,}"), "<id>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"/+(tmp|var|run|root|home|proc|sys|usr|etc|opt|srv|mnt)(/[^\s\"',\]\[)}]*)?"), "<path>"),
    (re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b"), "<ip>"),
    (re.compile(r"\b\d+(\.\d+)?(ns|µs|us|ms|s)\b"), "<duration>"),
]


def mask_value(key: str, value: Any, labels: dict[str, str]) -> Any:
    """``value`` with what varies from run to run replaced by a placeholder."""
    if isinstance(value, str) and value.lower() in labels:
        return labels[value.lower()]
    if isinstance(value, list):
        return [mask_value(key, v, labels) for v in value]
    if isinstance(value, dict):
        return {k: mask_value(k, v, labels) for k, v in sorted(value.items())}
    if not variable(key, value):
        return value
    if isinstance(value, str) and key not in MASKED_KEYS:
        masked = value
        for pattern, placeholder in _VALUE_MASKS:
            masked = pattern.sub(placeholder, masked)
        if masked != value:
            return masked
    return "<masked>"


def _tree_order(spans: Sequence[Span]) -> list[Span]:
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    roots = []
    for s in spans:
        if s.parent_span_id and s.parent_span_id in by_id and s.parent_span_id != s.span_id:
            children[s.parent_span_id].append(s)
        else:
            roots.append(s)
    out: list[Span] = []
    seen: set[str] = set()

    def key(s: Span) -> tuple:
        return (s.service, s.name, s.start, s.span_id)

    stack = sorted(roots, key=key, reverse=True)
    while stack:
        s = stack.pop()
        if s.span_id in seen:
            continue
        seen.add(s.span_id)
        out.append(s)
        stack.extend(sorted(children.get(s.span_id, []), key=key, reverse=True))
    return out


def normalise(spans: Iterable[Span]) -> dict[str, Any]:
    """The snapshot of one trace (a JSON-able dict; see the module docstring)."""
    ordered = _tree_order(list(spans))
    labels: dict[str, str] = {}
    for i, s in enumerate(ordered, 1):
        labels[s.span_id.lower()] = f"s{i}"
    for i, trace_id in enumerate(dict.fromkeys(s.trace_id for s in ordered), 1):
        labels[trace_id.lower()] = f"t{i}"
    out = []
    paths: dict[str, str] = {}
    for s in ordered:
        parent = labels.get(s.parent_span_id.lower()) if s.parent_span_id else None
        service = service_name(s.service)
        paths[s.span_id] = (paths[s.parent_span_id] + SEPARATOR if parent else "") + f"{service}:{s.name}"
        out.append({
            "label": labels[s.span_id.lower()], "parent": parent, "path": paths[s.span_id],
            "service": service, "name": s.name, "kind": s.kind, "scope": s.scope, "status": s.status,
            "attributes": {k: mask_value(k, v, labels) for k, v in sorted(s.attributes.items())},
            "events": [{"name": event_name(e.name),
                        "attributes": {k: mask_value(k, v, labels) for k, v in sorted(e.attributes.items())}}
                       for e in sorted(s.events, key=lambda e: e.time)],
        })
    resources: dict[str, dict[str, Any]] = {}
    for s in ordered:
        resources.setdefault(service_name(s.service),
                             {k: mask_value(k, v, labels) for k, v in sorted(s.resource.items())})
    return {"format": FORMAT, "spans": out, "resources": dict(sorted(resources.items()))}


def dumps(snapshot: dict[str, Any]) -> str:
    return json.dumps(snapshot, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def render(snapshot: dict[str, Any]) -> list[str]:
    """One line per fact, spans grouped by path (never by label or time), for a stable line diff."""
    blocks: dict[str, list[str]] = defaultdict(list)
    for s in snapshot["spans"]:
        lines = [f"  kind {s['kind']}", f"  scope {s['scope']!r}", f"  status {s['status']}"]
        lines += [f"  attr {k} = {json.dumps(v, ensure_ascii=False)}" for k, v in s["attributes"].items()]
        events = []
        for e in s["events"]:
            attrs = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in e["attributes"].items())
            events.append(f"  event {e['name']!r} {{{attrs}}}")
        # An event that repeats with the same (masked) attributes counts once: how many reads a container's
        # output took, and so how many "Read <n> bytes" a conmon-rs stdout span holds, is timing.
        lines += dict.fromkeys(events)
        blocks[s["path"]].append("\n".join(lines))
    out = []
    for path in sorted(blocks):
        same = sorted(blocks[path])  # spans sharing a path compare by content, whatever their order in time
        for i, block in enumerate(same, 1):
            out.append(f"span {path}" + (f" #{i}" if len(same) > 1 else ""))
            out += block.split("\n")
    for service, attrs in snapshot.get("resources", {}).items():
        out += [f"resource {service}: {k} = {json.dumps(v, ensure_ascii=False)}" for k, v in attrs.items()]
    return out


def diff(a: dict[str, Any], b: dict[str, Any], a_name: str = "a", b_name: str = "b") -> list[str]:
    """The unified diff of two snapshots (empty: structurally equal)."""
    return list(difflib.unified_diff(render(a), render(b), a_name, b_name, lineterm="", n=2))


# -- reading traces and snapshots


def _spans_from_file(path: Path) -> list[Span]:
    from cristack.harness.backends import spans_from_otlp_json
    from cristack.harness.sink.jaeger import spans_from_jaeger
    from cristack.harness.sink.store import Event

    text = path.read_text()
    stripped = text.lstrip()
    if stripped.startswith("{") and "\n{" not in stripped.rstrip():  # one JSON document
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise SnapshotError(f"{path}: not JSON: {err.msg} (line {err.lineno})") from None
        if isinstance(doc.get("data"), list):  # a Jaeger API answer
            return [s for t in doc["data"] for s in spans_from_jaeger(t)]
        docs = [doc]
    else:
        docs = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    docs.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise SnapshotError(f"{path}:{n}: not JSON: {err.msg}") from None
    spans: list[Span] = []
    for n, doc in enumerate(docs, 1):
        try:
            if "resourceSpans" in doc:
                spans += spans_from_otlp_json(doc)
            elif "span_id" in doc and "name" in doc:  # the recordings' one-span-per-line shape
                spans.append(Span(doc.get("trace_id", ""), doc["span_id"], doc.get("parent_id") or "", doc["name"],
                                  str(doc.get("kind", "INTERNAL")), int(doc.get("start", 0)), int(doc.get("end", 0)),
                                  str(doc.get("service", "")), doc.get("scope", ""), dict(doc.get("attributes") or {}),
                                  [Event(e["name"], 0, dict(e.get("attributes") or {}))
                                   for e in doc.get("events") or []],
                                  {0: "UNSET", 1: "OK", 2: "ERROR"}.get(doc.get("status", 0), "UNSET"), "",
                                  dict(doc.get("resource") or {})))
            else:
                raise SnapshotError(f"{path}: item {n} is neither OTLP/JSON, a Jaeger trace nor a span record")
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, SnapshotError):
                raise
            raise SnapshotError(f"{path}: item {n}: {err}") from None
    return spans


def pick_trace(spans: Sequence[Span], trace_id: str | None = None, match: str | None = None,
               source: str = "input") -> list[Span]:
    """The one trace of ``spans`` named by ``trace_id``, or holding a span ``match`` selects; without
    either, the only trace there is."""
    from cristack.harness.selectors import parse

    traces: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        traces[s.trace_id.lower().rjust(32, "0")].append(s)
    if trace_id:
        wanted = trace_id.lower().rjust(32, "0")
        if wanted not in traces:
            raise SnapshotError(f"{source}: no trace {trace_id}")
        return traces[wanted]
    candidates = list(traces.values())
    if match:
        sel = parse(match)
        candidates = [t for t in candidates if sel.select(t)]
        if not candidates:
            raise SnapshotError(f"{source}: no trace has a span matching {match}")
    if not candidates:
        raise SnapshotError(f"{source}: no spans")
    if len(candidates) > 1:
        raise SnapshotError(f"{source}: {len(candidates)} traces; choose one with --trace ID or --match SELECTOR")
    return candidates[0]


def load(source: str, trace_id: str | None = None, match: str | None = None) -> dict[str, Any]:
    """A snapshot from a snapshot file, a trace file (OTLP/JSON lines, a Jaeger API answer, span records)
    or a Jaeger query API URL (``http://HOST:16686``, with ``trace_id`` or ``match``)."""
    if source.startswith(("http://", "https://")):
        from cristack.harness.backends import JaegerBackend

        try:
            spans = [s for t in JaegerBackend(source).traces() for s in t]
        except Exception as err:  # noqa: BLE001 - any failure to read is the user's bad input here
            raise SnapshotError(f"{source}: {err}") from None
        return normalise(pick_trace(spans, trace_id, match, source))
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as err:
        raise SnapshotError(f"{source}: {err.strerror}") from None
    if text.lstrip().startswith("{") and f'"format": "{FORMAT}"' in text[:200]:
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise SnapshotError(f"{source}: broken snapshot: {err.msg} (line {err.lineno})") from None
    return normalise(pick_trace(_spans_from_file(path), trace_id, match, source))


def assert_matches_snapshot(trace: Any, path: Path, *, update: bool = False) -> None:
    """The normalised ``trace`` (a ``Trace`` or spans) equals the snapshot at ``path``; ``update`` writes
    it instead. A missing snapshot fails and says how to write it."""
    spans = list(getattr(trace, "spans", trace))
    snap = normalise(spans)
    path = Path(path)
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(snap))
        return
    if not path.exists():
        raise AssertionError(f"no snapshot at {path}; run pytest with --snapshot-update to write it")
    try:
        golden = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AssertionError(f"{path}: broken snapshot ({err.msg}); rewrite it with --snapshot-update") from None
    lines = diff(golden, snap, str(path), "this run")
    if lines:
        raise AssertionError(f"the trace differs from the snapshot {path} (--snapshot-update rewrites it):\n"
                             + "\n".join(lines))
