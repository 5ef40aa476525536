"""The selector language and the assertions built on it, on a small hand-made trace."""

from __future__ import annotations

import pytest

from cristack.harness.assertions import (
    Expected,
    TraceAssertionError,
    TraceIncomplete,
    expect,
    find_trace,
    pod_start,
    pod_uid,
    spans_from,
    wait_for_trace,
)
from cristack.harness.selectors import SelectorError, parse, parse_condition, select
from cristack.harness.sink.store import Event, Span

TRACE = "ab" * 16


def span(sid: str, parent: str, service: str, name: str, kind: str = "INTERNAL", start: int = 0,
         dur_ms: int = 10, attrs: dict | None = None, events: list[Event] | None = None, status: str = "UNSET") -> Span:
    return Span(TRACE, sid, parent, name, kind, start, start + dur_ms * 1_000_000, service, "", attrs or {},
                events or [], status, "")


SPANS = [
    span("01", "", "kubelet", "syncPod", attrs={"k8s.pod.name": "hello", "k8s.pod.uid": "u-1"}),
    span("02", "01", "kubelet", "runtime.v1.RuntimeService/RunPodSandbox", "CLIENT", 1,
         attrs={"rpc.response.status_code": "OK", "rpc.message.id": 1}),
    span("03", "02", "crio", "runtime.v1.RuntimeService/RunPodSandbox", "SERVER", 2, dur_ms=1500,
         events=[Event("log", 5, {"log.message": "Running pod sandbox", "log.severity": "info"})]),
    span("04", "03", "crio", "/runtime.v1.RuntimeService/RunPodSandbox", start=3, status="ERROR",
         attrs={"tags": ["a", "b"], "name": "an attribute called name"}),
    span("05", "01", "kubelet", "runtime.v1.RuntimeService/CreateContainer", "CLIENT", 4),
]


def ids(selector: str) -> list[str]:
    return [s.span_id for s in select(SPANS, selector)]


@pytest.mark.parametrize("selector, expected", [
    ('span[name="syncPod"]', ["01"]),
    ("span[service=crio]", ["03", "04"]),
    ("span[kind=client]", ["02", "05"]),
    ("span[kind=CLIENT]", ["02", "05"]),
    ("span[status=error]", ["04"]),
    ('span[k8s.pod.name="hello"]', ["01"]),
    ("span[k8s.pod.uid]", ["01"]),
    ("span[rpc.message.id=1]", ["02"]),
    ('span[rpc.message.id="1"]', ["02"]),  # types differ between backends: a string compares with the text
    ('span[name contains "Sandbox" service=kubelet]', ["02"]),
    ('span[name=~"Create|^/"]', ["04", "05"]),
    ('span[name!~"runtime"]', ["01"]),
    ('span[tags contains "b"]', ["04"]),
    ('span[@name="an attribute called name"]', ["04"]),
    ("span[duration>=1s]", ["03"]),
    ("span[duration<1s service=crio]", ["04"]),
    ('span[event="log"]', ["03"]),
    ('span[service="crio"] child of span[service="kubelet" kind=client]', ["03"]),
    ('span[service="crio"] descendant of span[name="syncPod"]', ["03", "04"]),
    ('span[name="syncPod"] > span[service="crio"]', []),
    ('span[name="syncPod"] span[service="crio"]', ["03", "04"]),
    ('span[name="syncPod"] > span[kind=client]:last', ["05"]),
    ("span:first", ["01"]),
    ("span[kind=client]:nth_child(2)", ["05"]),
    ('span[tracetest.span.name="syncPod"]', ["01"]),
    ("span", ["01", "02", "03", "04", "05"]),
])
def test_selectors_pick(selector, expected):
    assert ids(selector) == expected


@pytest.mark.parametrize("selector, message, column", [
    ("", "empty selector", 1),
    ("span[name=", "expected a value", 11),
    ('span[name="x"', "unclosed '['", 5),
    ('span[name="x]', "unterminated string", 11),
    ("spans", "expected '>', 'child of'", 5),
    ("span[kind=rpc]", "unknown kind", 6),
    ("span[status=failed]", "unknown status", 6),
    ('span[duration<"5"]', "duration compares with a duration", 15),
    ('span[name<"x"]', "< needs a number or a duration", 10),
    ('span[name=~"("]', "bad regular expression", 12),
    ("span:second", "unknown pseudo-class", 6),
    ("span:nth_child(0)", ":nth_child takes a number from 1", 16),
    ("span child of span > span", "use one style", 1),
    ("span >", "expected 'span'", 7),
])
def test_bad_selectors_say_where(selector, message, column):
    with pytest.raises(SelectorError) as err:
        parse(selector)
    assert message in str(err.value)
    assert f"at character {column}" in str(err.value)
    assert str(err.value).splitlines()[-1].index("^") == column + 1  # the caret under the character


def test_conditions_print_back_as_parsed():
    for text in ('k8s.pod.name="hello"', "duration<500ms", 'name=~"^a"', 'log.message contains "x"', "kind=client"):
        assert str(parse_condition(text)) == text


def test_count_failure_shows_selector_and_closest_spans():
    with pytest.raises(TraceAssertionError) as err:
        expect(SPANS, 'span[service="crio" name="/runtime.v1.RuntimeService/CreateContainer"]').one()
    text = str(err.value)
    assert text.startswith('selector: span[service="crio" name="/runtime.v1.RuntimeService/CreateContainer"]\n'
                           "expected exactly 1 span, matched 0\nclosest:\n")
    # the closest candidates fail one condition each, and say what the value really is
    assert "crio: runtime.v1.RuntimeService/RunPodSandbox [SERVER] (span 03): " \
           'name="/runtime.v1.RuntimeService/CreateContainer" (is \'runtime.v1.RuntimeService/RunPodSandbox\')' in text
    assert text.endswith("trace: 5 spans; services: crio, kubelet")


def test_structure_failure_names_the_real_parent():
    with pytest.raises(TraceAssertionError) as err:
        expect(SPANS, 'span[name="/runtime.v1.RuntimeService/RunPodSandbox"] child of span[name="syncPod"]').exists()
    assert ('matches span[name="/runtime.v1.RuntimeService/RunPodSandbox"] but is not a child of '
            'span[name="syncPod"] (its parent is crio: runtime.v1.RuntimeService/RunPodSandbox)') in str(err.value)


def test_where_and_events():
    expect(SPANS, "span[kind=client]").count(2).where("duration<1s").has_attributes({})
    expect(SPANS, "span[service=crio kind=server]").has_event("log", 'log.message contains "pod sandbox"',
                                                              'log.severity="info"')
    with pytest.raises(TraceAssertionError, match=r"rpc.message.id=1 is false \(rpc.message.id is absent\)"):
        expect(SPANS, "span[kind=client]").where("rpc.message.id=1")
    with pytest.raises(TraceAssertionError, match=r"none with log.severity=\"error\" \(log.severity is 'info'\)"):
        expect(SPANS, "span[kind=server]").has_event("log", 'log.severity="error"')
    with pytest.raises(TraceAssertionError, match=r"no event 'log' \(its events: none\)"):
        expect(SPANS, 'span[name="syncPod"]').has_event("log")
    with pytest.raises(TraceAssertionError, match="expected at least 1 spans, matched 0"):
        expect(SPANS, 'span[name="nope"]').where("duration<1s")
    expect(SPANS, 'span[name="nope"]').none()


class _Backend:
    """A backend whose trace grows by one span per poll."""

    def __init__(self) -> None:
        self.polls = 0

    def traces(self):
        self.polls += 1
        return [SPANS[:self.polls]]

    def __str__(self) -> str:
        return "the test backend"


def test_wait_for_trace_returns_as_soon_as_the_shape_is_there():
    backend = _Backend()
    shape = Expected(selectors=('span[service="crio" kind=server]',))
    trace = wait_for_trace(backend, shape, match='span[k8s.pod.uid="u-1"]', timeout=30, poll=0.01)
    assert backend.polls == 3 and len(trace) == 3


def test_wait_for_trace_reports_what_is_missing():
    with pytest.raises(TraceIncomplete) as err:
        wait_for_trace(_Backend(), pod_start("pod"), timeout=0.2, poll=0.01)
    assert "span conmonrs: create_container" in err.value.missing
    assert "  ✗ span crio: conmonrs-client: CreateContainer" in str(err.value)
    # the edge kubelet syncPod -> RunPodSandbox is there, and so is not reported
    assert not any("syncPod → kubelet: runtime.v1.RuntimeService/RunPodSandbox" in m for m in err.value.missing)
    assert "still lacks" in str(err.value) and "the test backend" in str(err.value)


def test_wait_for_trace_without_any_match():
    with pytest.raises(TraceIncomplete, match="no trace matching span\\[name=\"x\"\\] reached the test backend"):
        wait_for_trace(_Backend(), Expected(), match='span[name="x"]', timeout=0.05, poll=0.01)


def test_find_trace_gives_up_grace_seconds_after_the_first_candidate_and_says_what_it_lacks():
    backend = _Backend()
    # grace 0: the first poll that finds a candidate is the last, long before the timeout
    found = find_trace(backend, pod_start("pod"), match='span[k8s.pod.uid="u-1"]', timeout=30, poll=0.01, grace=0)
    assert backend.polls == 1 and found.matched and not found.complete
    assert [s.span_id for s in found.trace] == ["01"] and "span conmonrs: create_container" in found.missing


def test_spans_from_waits_for_a_span_of_each_service():
    backend = _Backend()
    trace = wait_for_trace(backend, spans_from("kubelet", "crio"), timeout=30, poll=0.01)
    assert {s.service for s in trace} == {"kubelet", "crio"} and trace[0].name == "syncPod"
    assert backend.polls == next(i for i, s in enumerate(SPANS, 1) if s.service == "crio")


def test_pod_uid_accepts_the_pod_start_not_its_later_syncs():
    def sync(update_type: str, uid: str = "u-1") -> list[Span]:
        return [span("01", "", "kubelet", "syncPod", attrs={"k8s.pod.uid": uid, "k8s.pod.update_type": update_type})]

    assert [bool(select(t, pod_uid("u-1"))) for t in (sync("sync"), sync("create"), sync("create", "u-2"))] == \
        [False, True, False]
