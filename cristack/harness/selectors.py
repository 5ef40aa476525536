"""Span selectors: a small language, modelled on Tracetest's, for picking spans out of a trace.

    span[service="crio" name="/runtime.v1.RuntimeService/CreateContainer"]
    span[service="kubelet" kind=client rpc.grpc.status_code=0 duration<2s]
    span[name="create_container"] child of span[name="conmonrs-client: CreateContainer"]
    span[service="kubelet" name="syncPod"] > span[kind=client]        (the same as "child of", CSS-style)
    span[name="syncPod"] span[service="conmonrs"]                      (descendant, CSS-style)
    span[name=~"^runtime\\.v1\\..*Container$"]:first

Grammar (whitespace separates tokens; inside brackets conditions are ANDed)::

    selector  := compound ( relation compound )*
    relation  := ">" | "child of" | "descendant of" | <whitespace>
    compound  := "span" [ "[" condition* "]" ] pseudo*
    pseudo    := ":first" | ":last" | ":nth_child(" INT ")"
    condition := key [ op value ]                     (a bare key: the span has that attribute)
    op        := "=" | "!=" | "contains" | "=~" | "!~" | "<" | "<=" | ">" | ">="
    value     := "double-quoted string" | number | duration (500ms, 2s) | true | false | bare-word

Keys: ``service``, ``name``, ``kind`` (internal/server/client/producer/consumer), ``status``
(unset/ok/error), ``status_message``, ``scope``, ``duration`` (compared as a duration), ``event`` (the
name of any of the span's events); every other key is a span attribute (``@name`` forces the attribute
``name``). Tracetest's ``tracetest.span.name`` and ``tracetest.span.duration`` are accepted for ``name``
and ``duration``.

``A > B`` and ``A B`` (CSS order, ancestor first) select B; so do ``B child of A`` and ``B descendant of
A`` (the subject first). Pseudo-classes pick among the matches of their compound, in start-time order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cristack.config.durations import parse_duration
from cristack.harness.sink.store import Span

FIELDS = {"service", "name", "kind", "status", "status_message", "scope", "duration", "event"}
ALIASES = {"tracetest.span.name": "name", "tracetest.span.duration": "duration"}
OPS = ("=~", "!~", "!=", "<=", ">=", "=", "<", ">", "contains")
PSEUDOS = ("first", "last", "nth_child")


class SelectorError(ValueError):
    """A selector that does not parse; the message points at the offending character."""

    def __init__(self, text: str, pos: int, why: str) -> None:
        self.text, self.pos, self.why = text, pos, why
        super().__init__(f"bad selector: {why} at character {pos + 1}\n  {text}\n  {' ' * pos}^")


@dataclass(frozen=True)
class Condition:
    """``key op value``; ``op`` is "" for a bare key (presence)."""

    key: str
    op: str = ""
    value: Any = None

    def __str__(self) -> str:
        if not self.op:
            return self.key
        v = self.value
        if isinstance(v, re.Pattern):
            shown = '"' + v.pattern + '"'
        elif isinstance(v, str) and self.key in ("kind", "status"):
            shown = v
        elif isinstance(v, str):
            shown = '"' + v.replace('"', '\\"') + '"'
        elif self.key == "duration":
            shown = _seconds(float(v))
        else:
            shown = _show(v)
        sep = " " if self.op == "contains" else ""
        return f"{self.key}{sep}{self.op}{sep}{shown}"

    def actual(self, span: Span) -> Any:
        """The value this condition looks at in ``span`` (None: absent)."""
        return _field(span, self.key)

    def test(self, span: Span) -> bool:
        return compare(self, _field(span, self.key), present=_has(span, self.key))


@dataclass(frozen=True)
class Compound:
    """``span[...]`` with its conditions and pseudo-classes."""

    conditions: tuple[Condition, ...] = ()
    pseudos: tuple[tuple[str, int], ...] = ()

    def __str__(self) -> str:
        inner = " ".join(map(str, self.conditions))
        out = f"span[{inner}]" if inner else "span"
        for name, n in self.pseudos:
            out += f":{name}({n})" if name == "nth_child" else f":{name}"
        return out

    def test(self, span: Span) -> bool:
        return all(c.test(span) for c in self.conditions)


@dataclass(frozen=True)
class Selector:
    """A parsed selector: ``steps[0]`` is the outermost ancestor, ``steps[-1]`` the subject; ``relations[i]``
    ("child" or "descendant") links ``steps[i]`` to ``steps[i + 1]``."""

    text: str
    steps: tuple[Compound, ...]
    relations: tuple[str, ...] = field(default=())

    @property
    def subject(self) -> Compound:
        return self.steps[-1]

    def __str__(self) -> str:
        return self.text

    def select(self, spans: Sequence[Span]) -> list[Span]:
        """The spans this selector picks, in start-time order."""
        ordered = sorted(spans, key=lambda s: (s.start, s.span_id))
        by_id = {s.span_id: s for s in ordered}
        current = _pick(self.steps[0], ordered)
        for relation, step in zip(self.relations, self.steps[1:], strict=True):
            anchors = {s.span_id for s in current}
            candidates = [s for s in ordered if step.test(s) and _related(s, anchors, by_id, relation)]
            current = _apply_pseudos(step, candidates)
        return current


def _pick(step: Compound, spans: Sequence[Span]) -> list[Span]:
    return _apply_pseudos(step, [s for s in spans if step.test(s)])


def _apply_pseudos(step: Compound, spans: list[Span]) -> list[Span]:
    for name, n in step.pseudos:
        if name == "first":
            spans = spans[:1]
        elif name == "last":
            spans = spans[-1:]
        else:
            spans = spans[n - 1:n]
    return spans


def _related(span: Span, anchors: set[str], by_id: dict[str, Span], relation: str) -> bool:
    parent = by_id.get(span.parent_span_id)
    if relation == "child":
        return parent is not None and parent.span_id in anchors
    seen: set[str] = set()
    while parent is not None and parent.span_id not in seen:
        if parent.span_id in anchors:
            return True
        seen.add(parent.span_id)
        parent = by_id.get(parent.parent_span_id)
    return False


# -- fields and comparisons


def _key(key: str) -> str:
    return ALIASES.get(key, key)


def _has(span: Span, key: str) -> bool:
    key = _key(key)
    if key.startswith("@"):
        return key[1:] in span.attributes
    if key == "event":
        return bool(span.events)
    return key in FIELDS or key in span.attributes


def _field(span: Span, key: str) -> Any:
    key = _key(key)
    if key.startswith("@"):
        return span.attributes.get(key[1:])
    if key == "service":
        return span.service
    if key == "name":
        return span.name
    if key == "kind":
        return span.kind.lower()
    if key == "status":
        return span.status.lower()
    if key == "status_message":
        return span.status_message
    if key == "scope":
        return span.scope
    if key == "duration":
        return span.duration_ns / 1e9
    if key == "event":
        return [e.name for e in span.events]
    return span.attributes.get(key)


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _seconds(v: float) -> str:
    """A duration in seconds as the selector language writes it (500ms, 2s)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if v >= scale or unit == "us":
            n = v / scale
            return f"{n:g}{unit}" if abs(n - round(n, 3)) < 1e-9 else f"{v * 1e9:.0f}ns"
    return f"{v}s"


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list):
        return any(_equal(a, expected) for a in actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected or str(actual).lower() == _show(expected).lower()
    if isinstance(expected, (int, float)) and not isinstance(actual, str):
        try:
            return float(actual) == float(expected)
        except (TypeError, ValueError):
            return False
    # Backends disagree on types (Jaeger and OTLP/JSON may hand back an int64 as a string), so a
    # string compares with the value's text.
    return _show(actual) == _show(expected)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def compare(cond: Condition, actual: Any, *, present: bool) -> bool:
    op, expected = cond.op, cond.value
    if not op:
        return present and actual is not None and actual != []
    if actual is None:
        return op in ("!=", "!~")
    if op == "=":
        return _equal(actual, expected)
    if op == "!=":
        return not _equal(actual, expected)
    if op == "contains":
        if isinstance(actual, (list, tuple)):
            return any(_equal(a, expected) or (isinstance(a, str) and str(expected) in a) for a in actual)
        return _show(expected) in _show(actual)
    if op in ("=~", "!~"):
        values = actual if isinstance(actual, list) else [actual]
        hit = any(expected.search(_show(a)) for a in values)
        return hit if op == "=~" else not hit
    a, b = _number(actual), _number(expected)
    if a is None or b is None:
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


# -- the parser (recursive descent over the text; positions kept for the error caret)


_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_DURATION = re.compile(r"(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))*")
_KEY = re.compile(r"@?[A-Za-z_][A-Za-z0-9_.\-/]*")
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_RELATION_WORDS = re.compile(r"(child|descendant)\s+of\b")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, why: str, pos: int | None = None) -> SelectorError:
        return SelectorError(self.text, self.pos if pos is None else pos, why)

    def skip_space(self) -> bool:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.pos > start

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self, s: str) -> bool:
        return self.text.startswith(s, self.pos)

    def expect(self, s: str, why: str) -> None:
        if not self.peek(s):
            raise self.fail(why)
        self.pos += len(s)

    def selector(self) -> Selector:
        self.skip_space()
        if self.at_end():
            raise self.fail("empty selector (write e.g. span[name=\"syncPod\"])")
        # Collected subject-first for "child of" chains and ancestor-first for CSS chains; both
        # end up ancestor-first below.
        steps = [self.compound()]
        relations: list[str] = []
        reverse: list[bool] = []
        while True:
            spaced = self.skip_space()
            if self.at_end():
                break
            if self.peek(">"):
                self.pos += 1
                self.skip_space()
                relations.append("child")
                reverse.append(False)
            elif m := _RELATION_WORDS.match(self.text, self.pos):
                self.pos = m.end()
                self.skip_space()
                relations.append(m.group(1))
                reverse.append(True)
            elif spaced and self.peek("span"):
                relations.append("descendant")
                reverse.append(False)
            else:
                raise self.fail("expected '>', 'child of', 'descendant of', or another span[...]")
            steps.append(self.compound())
        if reverse and any(reverse) and not all(reverse):
            raise self.fail("mix of 'child of'/'descendant of' with '>' or CSS-style nesting; use one style", 0)
        if reverse and all(reverse):
            steps.reverse()
            relations.reverse()
        return Selector(self.text, tuple(steps), tuple(relations))

    def compound(self) -> Compound:
        if not self.peek("span"):
            raise self.fail("expected 'span'")
        self.pos += 4
        conditions: list[Condition] = []
        if self.peek("["):
            open_at = self.pos
            self.pos += 1
            while True:
                self.skip_space()
                if self.at_end():
                    raise self.fail("unclosed '['", open_at)
                if self.peek("]"):
                    self.pos += 1
                    break
                conditions.append(self.condition())
        pseudos = []
        while self.peek(":"):
            self.pos += 1
            m = _BARE.match(self.text, self.pos)
            name = m.group(0) if m else ""
            if name not in PSEUDOS:
                raise self.fail(f"unknown pseudo-class {name!r} (known: :first, :last, :nth_child(N))")
            self.pos = m.end()
            n = 0
            if name == "nth_child":
                self.expect("(", "expected '(' after :nth_child")
                m = re.compile(r"\s*(\d+)\s*\)").match(self.text, self.pos)
                if not m or int(m.group(1)) < 1:
                    raise self.fail(":nth_child takes a number from 1, e.g. :nth_child(2)")
                n = int(m.group(1))
                self.pos = m.end()
            pseudos.append((name, n))
        return Compound(tuple(conditions), tuple(pseudos))

    def condition(self) -> Condition:
        start = self.pos
        if self.peek('"'):  # a quoted attribute key, for keys with unusual characters
            key = self.string()
        else:
            m = _KEY.match(self.text, self.pos)
            if not m:
                raise self.fail("expected an attribute or field name")
            key = m.group(0)
            self.pos = m.end()
        key = _key(key)
        self.skip_space()
        op = next((o for o in OPS if self.peek(o)), "")
        if op == "contains" and not re.match(r"contains\b", self.text[self.pos:]):
            op = ""
        if not op:
            return Condition(key)
        op_at = self.pos
        self.pos += len(op)
        self.skip_space()
        value = self.value(key, op)
        if op in ("<", "<=", ">", ">=") and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise self.fail(f"{op} needs a number or a duration", op_at)
        if key == "kind" and op in ("=", "!=") and str(value).lower() not in (
                "internal", "server", "client", "producer", "consumer", "unspecified"):
            raise self.fail(f"unknown kind {value!r} (internal, server, client, producer, consumer)", start)
        if key == "status" and op in ("=", "!=") and str(value).lower() not in ("unset", "ok", "error"):
            raise self.fail(f"unknown status {value!r} (unset, ok, error)", start)
        if key in ("kind", "status") and isinstance(value, str):
            value = value.lower()
        return Condition(key, op, value)

    def string(self) -> str:
        open_at = self.pos
        self.pos += 1
        out = []
        while True:
            if self.at_end():
                raise self.fail("unterminated string", open_at)
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if ch == '"':
                return "".join(out)
            out.append(ch)

    def value(self, key: str, op: str) -> Any:
        at = self.pos
        if self.peek('"'):
            text: Any = self.string()
        elif m := _DURATION.match(self.text, self.pos):
            self.pos = m.end()
            text = parse_duration(m.group(0))
            if key != "duration" and op not in ("<", "<=", ">", ">="):
                text = m.group(0)
        elif m := _NUMBER.match(self.text, self.pos):
            self.pos = m.end()
            text = float(m.group(0)) if any(c in m.group(0) for c in ".eE") else int(m.group(0))
        elif m := _BARE.match(self.text, self.pos):
            self.pos = m.end()
            text = {"true": True, "false": False}.get(m.group(0), m.group(0))
        else:
            raise self.fail("expected a value (\"text\", a number, a duration such as 500ms, true or false)")
        if op in ("=~", "!~"):
            try:
                return re.compile(str(text))
            except re.error as err:
                raise self.fail(f"bad regular expression: {err}", at) from None
        if key == "duration" and isinstance(text, str):
            raise self.fail("duration compares with a duration such as 500ms or 2s", at)
        return text


_CACHE: dict[str, Selector] = {}


def parse(text: str) -> Selector:
    """Parses a selector; SelectorError (a ValueError) with a caret under the problem when it is bad."""
    if not isinstance(text, str):
        raise TypeError(f"a selector is a string, not {type(text).__name__}")
    if text not in _CACHE:
        _CACHE[text] = _Parser(text).selector()
    return _CACHE[text]


def parse_condition(text: str) -> Condition:
    """One condition (``k8s.pod.name="hello"``, ``duration<2s``), as inside a selector's brackets."""
    p = _Parser(text)
    p.skip_space()
    if p.at_end():
        raise p.fail("empty condition")
    cond = p.condition()
    p.skip_space()
    if not p.at_end():
        raise p.fail("one condition expected here (several go in separate arguments)")
    return cond


def select(spans: Iterable[Span], selector: str | Selector) -> list[Span]:
    """The spans of ``spans`` that ``selector`` picks, in start-time order."""
    sel = parse(selector) if isinstance(selector, str) else selector
    return sel.select(list(spans))
