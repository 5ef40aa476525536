"""Assertions on traces, the same against any backend (the embedded sink, a Jaeger query API, a
Collector ``file`` export): select spans with a selector (``cristack.harness.selectors``), assert their count,
attributes and events, and fail with a message that says what was selected, what matched and, when
nothing did, which spans came closest and why they missed.

    from cristack.harness.assertions import expect

    expect(trace, 'span[service="kubelet" name="syncPod"]').one()
    expect(trace, 'span[service="crio" kind=server] child of span[name="syncPod"]').count(at_least=5) \\
        .where("rpc.grpc.status_code=0", "duration<5s")
    expect(trace, 'span[service="crio" name="/runtime.v1.RuntimeService/RunPodSandbox"]') \\
        .has_event("log", 'log.message contains "Running pod sandbox"')

Completeness: ``wait_for_trace(backend, expected)`` polls until one trace holds every span an
``Expected`` shape names (``pod_start(runtime_type)`` derives it from ``cristack.harness.expectations``), and
otherwise fails at the deadline with what was still missing; ``find_trace`` is the same wait without the failure
(``cristack check`` prints its own table). This is the one way the harness waits for a trace.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cristack.harness import expectations
from cristack.harness.selectors import Condition, Selector, compare, parse, parse_condition
from cristack.harness.sink.store import Event, Span


class TraceSource(Protocol):
    """What ``wait_for_trace`` reads: every trace held now (``cristack.harness.backends.Backend`` is one)."""

    def traces(self) -> list[list[Span]]: ...


class TraceAssertionError(AssertionError):
    """An assertion on spans failed; the message holds the selector, the matches and the closest spans."""


class TraceIncomplete(AssertionError):
    """``wait_for_trace`` reached its deadline; ``missing`` names what no trace held."""

    def __init__(self, message: str, missing: list[str], best: list[Span]) -> None:
        super().__init__(message)
        self.missing = missing
        self.best = best


def _spans(trace: Trace | Iterable[Span]) -> list[Span]:
    return list(trace.spans) if isinstance(trace, Trace) else list(trace)


def describe(span: Span) -> str:
    """One line naming a span: ``service: name [KIND] (span id)``."""
    return f"{span.service}: {span.name} [{span.kind}] (span {span.span_id[:8]})"


@dataclass
class Trace:
    """The spans of one trace, with selection and assertions."""

    spans: list[Span]

    @property
    def trace_id(self) -> str:
        return self.spans[0].trace_id if self.spans else ""

    @property
    def services(self) -> set[str]:
        return {s.service for s in self.spans}

    def select(self, selector: str | Selector) -> list[Span]:
        sel = parse(selector) if isinstance(selector, str) else selector
        return sel.select(self.spans)

    def expect(self, selector: str | Selector) -> SpanExpectation:
        return SpanExpectation(self.spans, selector)

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __getitem__(self, index: int) -> Span:
        return self.spans[index]


def expect(trace: Trace | Iterable[Span], selector: str | Selector) -> SpanExpectation:
    """Assertions on the spans of ``trace`` that ``selector`` picks."""
    return SpanExpectation(_spans(trace), selector)


class SpanExpectation:
    """The spans a selector picked; each method asserts and returns ``self`` (``one()`` the span)."""

    def __init__(self, spans: Sequence[Span], selector: str | Selector) -> None:
        self.selector = parse(selector) if isinstance(selector, str) else selector
        self.trace = list(spans)
        self.matched = self.selector.select(self.trace)

    # -- counts

    def count(self, n: int | None = None, *, at_least: int | None = None,
              at_most: int | None = None) -> SpanExpectation:
        """Exactly ``n`` spans, or between ``at_least`` and ``at_most``."""
        got = len(self.matched)
        if n is not None:
            ok, want = got == n, f"exactly {n} span{'s' * (n != 1)}"
        else:
            lo = 0 if at_least is None else at_least
            ok = got >= lo and (at_most is None or got <= at_most)
            want = f"at least {lo}" if at_most is None else f"between {lo} and {at_most}"
            want += " spans"
        if not ok:
            raise TraceAssertionError(self._report(f"expected {want}, matched {got}"))
        return self

    def exists(self) -> SpanExpectation:
        """At least one span."""
        return self.count(at_least=1)

    def none(self) -> SpanExpectation:
        """No span at all."""
        return self.count(0)

    def one(self) -> Span:
        """Exactly one span; returns it."""
        self.count(1)
        return self.matched[0]

    # -- attributes and events

    def where(self, *conditions: str) -> SpanExpectation:
        """Every matched span (at least one) satisfies every condition (``key op value``, as inside
        a selector's brackets: ``'k8s.pod.name="hello"'``, ``"duration<2s"``, ``"rpc.grpc.status_code=0"``)."""
        parsed = [parse_condition(c) for c in conditions]
        self.exists()
        failures = []
        for span in self.matched:
            for cond in parsed:
                if not cond.test(span):
                    failures.append(f"  {describe(span)}: {cond} is false ({cond.key} is {_actual(cond, span)})")
        if failures:
            raise TraceAssertionError(self._report(f"{len(failures)} condition(s) failed on matched spans",
                                                   failures))
        return self

    def has_attributes(self, expected: dict[str, Any]) -> SpanExpectation:
        """Every matched span has these attributes with these values (equality)."""
        return self.where(*(str(Condition(k, "=", v)) for k, v in expected.items()))

    def has_event(self, name: str, *conditions: str) -> SpanExpectation:
        """Every matched span (at least one) has an event called ``name`` whose attributes satisfy every
        condition (``'log.message contains "Request"'``; ``name`` in a condition is the event's name)."""
        parsed = [parse_condition(c) for c in conditions]
        self.exists()
        failures = []
        for span in self.matched:
            named = [e for e in span.events if e.name == name]
            if not named:
                others = sorted({e.name for e in span.events})
                failures.append(f"  {describe(span)}: no event {name!r} (its events: {others or 'none'})")
                continue
            if not any(all(_event_test(c, e) for c in parsed) for e in named):
                best = max(named, key=lambda e: sum(_event_test(c, e) for c in parsed))
                failed = [f"{c} ({c.key} is {_show(_event_value(c, best))})"
                          for c in parsed if not _event_test(c, best)]
                failures.append(f"  {describe(span)}: {len(named)} {name!r} event(s), none with "
                                + "; ".join(failed))
        if failures:
            raise TraceAssertionError(self._report(f"event {name!r} missing or not as expected", failures))
        return self

    # -- the failure report

    def _report(self, headline: str, details: Sequence[str] = ()) -> str:
        lines = [f"selector: {self.selector}", headline]
        lines += details
        if self.matched and not details:
            lines.append("matched:")
            lines += [f"  {describe(s)}" for s in self.matched[:10]]
            if len(self.matched) > 10:
                lines.append(f"  … and {len(self.matched) - 10} more")
        if not self.matched:
            lines += closest(self.trace, self.selector)
        services = ", ".join(sorted({s.service for s in self.trace})) or "none"
        lines.append(f"trace: {len(self.trace)} spans; services: {services}")
        return "\n".join(lines)


def _show(v: Any) -> str:
    return "absent" if v is None else repr(v)


def _actual(cond: Condition, span: Span) -> str:
    return _show(cond.actual(span))


def _event_value(cond: Condition, event: Event) -> Any:
    return event.name if cond.key == "name" else event.attributes.get(cond.key.lstrip("@"))


def _event_test(cond: Condition, event: Event) -> bool:
    present = cond.key == "name" or cond.key.lstrip("@") in event.attributes
    return compare(cond, _event_value(cond, event), present=present)


def closest(spans: Sequence[Span], selector: Selector, limit: int = 3) -> list[str]:
    """Why nothing matched: the spans that satisfy most of the subject's conditions, each with the
    conditions it fails (and their actual values) or the relation it lacks."""
    subject = selector.subject
    if not spans:
        return ["closest: the trace has no spans"]
    scored = []
    for s in spans:
        failed = [c for c in subject.conditions if not c.test(s)]
        scored.append((len(failed), s.start, s, failed))
    scored.sort(key=lambda x: (x[0], x[1]))
    lines = ["closest:"]
    by_id = {s.span_id: s for s in spans}
    for _, _, span, failed in scored[:limit]:
        if failed:
            why = "; ".join(f"{c} (is {_actual(c, span)})" for c in failed)
        elif len(selector.steps) > 1:
            parent = by_id.get(span.parent_span_id)
            where = f"its parent is {parent.service}: {parent.name}" if parent else "it is a root"
            anchor = selector.steps[-2]
            why = f"matches {subject} but is not a {selector.relations[-1]} of {anchor} ({where})"
        else:
            why = "matches the conditions but not the position (:first/:last/:nth_child)"
        lines.append(f"  {describe(span)}: {why}")
    return lines


# -- completeness


@dataclass(frozen=True)
class Expected:
    """A trace shape to wait for: selectors that must each pick at least one span, and edges
    (parent → child between service/name pairs) that must each be present."""

    selectors: tuple[str, ...] = ()
    edges: tuple[expectations.Edge, ...] = ()
    name: str = "trace"

    def missing(self, spans: Sequence[Span]) -> list[str]:
        """What ``spans`` still lacks, one line each (empty: complete)."""
        have = {(expectations.role(s.service), s.name) for s in spans}
        out = []
        for e in self.edges:
            for service, name in ((e.parent_service, e.parent), (e.child_service, e.child)):
                line = f"span {service}: {name}"
                if (service, name) not in have and line not in out:
                    out.append(line)
        found = expectations.found_edges(spans)
        out += [f"edge {e}" for e in self.edges
                if expectations.Edge(e.parent_service, e.parent, e.child_service, e.child) not in found
                and (e.parent_service, e.parent) in have and (e.child_service, e.child) in have]
        out += [f"selector {s}" for s in self.selectors if not parse(s).select(spans)]
        return out

    def __add__(self, other: Expected) -> Expected:
        return Expected(self.selectors + other.selectors, self.edges + other.edges, f"{self.name}+{other.name}")


def pod_start(runtime_type: str = "pod", *, runtime: str = "crio") -> Expected:
    """Every span and edge ``cristack.harness.expectations`` says a pod start has on ``runtime`` with CRI-O's
    ``runtime_type`` (``pod``, ``oci``): ``pod_start(runtime="containerd")`` is fake-containerd's and its shim's
    (``pod_start("containerd")`` too)."""
    shape = expectations.shape(runtime, runtime_type)
    return Expected(edges=tuple(expectations.expected(shape)), name=f"pod start ({shape})")


def spans_named(*pairs: tuple[str, str]) -> Expected:
    """A shape of (service, span name) pairs, e.g. ``spans_named(("kubelet", "syncPod"))``."""
    return Expected(selectors=tuple(f'span[service="{s}" name="{n}"]' for s, n in pairs))


def spans_from(*services: str) -> Expected:
    """A shape with at least one span from each service, e.g. ``spans_from("kubelet")`` for a trace whose
    runtime side is not traced."""
    return Expected(selectors=tuple(f'span[service="{s}"]' for s in services), name=f"spans from {', '.join(services)}")


Match = str | Callable[[Sequence[Span]], bool] | None


def _matches(match: Match) -> Callable[[Sequence[Span]], bool]:
    if match is None:
        return lambda spans: True
    if isinstance(match, str):
        sel = parse(match)
        return lambda spans: bool(sel.select(list(spans)))
    return match


@dataclass
class Found:
    """What ``find_trace`` found: the trace (complete, or the most complete candidate; empty when none matched)
    and what it still lacks (empty: complete)."""

    trace: Trace
    missing: list[str]
    matched: bool  # whether any trace was accepted by ``match``

    @property
    def complete(self) -> bool:
        return self.matched and not self.missing


def find_trace(source: TraceSource, expected: Expected, *, match: Match = None, timeout: float = 30.0,
               poll: float = 0.1, grace: float | None = None) -> Found:
    """Polls ``source`` until a trace that ``match`` (a selector, or a predicate on a trace's spans) accepts
    holds everything ``expected`` names, and returns it. At ``timeout`` (or ``grace`` seconds after the first
    accepted trace appeared, when given) returns the most complete candidate with what it lacks."""
    accept = _matches(match)
    deadline = time.monotonic() + timeout
    best: list[Span] = []
    best_missing: list[str] | None = None
    while True:
        for spans in source.traces():
            if not accept(spans):
                continue
            missing = expected.missing(spans)
            if not missing:
                return Found(_ordered(spans), [], True)
            if best_missing is None and grace is not None:
                deadline = min(deadline, time.monotonic() + grace)
            if best_missing is None or len(missing) < len(best_missing):
                best, best_missing = spans, missing
        if time.monotonic() >= deadline:
            break
        time.sleep(poll)
    if best_missing is None:
        return Found(Trace([]), [f"trace {match if isinstance(match, str) else ''}".strip()], False)
    return Found(_ordered(best), best_missing, True)


def _ordered(spans: Iterable[Span]) -> Trace:
    return Trace(sorted(spans, key=lambda s: (s.start, s.span_id)))


def wait_for_trace(source: TraceSource, expected: Expected, *, match: Match = None, timeout: float = 30.0,
                   poll: float = 0.1) -> Trace:
    """Returns, as soon as it has arrived, the trace that ``match`` (a selector, or a predicate on a
    trace's spans) accepts and that holds everything ``expected`` names. At the deadline raises
    TraceIncomplete naming what the most complete candidate still lacked."""
    found = find_trace(source, expected, match=match, timeout=timeout, poll=poll)
    if found.complete:
        return found.trace
    if not found.matched:
        what = f"no trace matching {match}" if isinstance(match, str) else "no matching trace"
        raise TraceIncomplete(f"{expected.name}: {what} reached {source} within {timeout:g}s", found.missing, [])
    best = found.trace.spans
    lines = [f"{expected.name}: trace {best[0].trace_id} still lacks {len(found.missing)} item(s) after "
             f"{timeout:g}s at {source}:"]
    lines += [f"  ✗ {m}" for m in found.missing]
    lines.append(f"it has {len(best)} spans from {', '.join(sorted({s.service for s in best}))}")
    raise TraceIncomplete("\n".join(lines), found.missing, best)


POD_START_SYNC = 'span[service="kubelet" name="syncPod" k8s.pod.update_type="create"]'


def pod_uid(uid: str) -> str:
    """A ``match`` selector for the pod-start trace of the pod with this uid (its first sync: later syncs are traces
    of their own, and a shape such as ``spans_from("kubelet")`` would accept them too)."""
    return POD_START_SYNC.replace("]", f' k8s.pod.uid="{uid}"]')
