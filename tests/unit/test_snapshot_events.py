"""Snapshots compare events by what happened, not by how often a read loop went round: a conmon-rs stdout span
whose output came in two reads matches one whose output came in one."""

from __future__ import annotations

from cristack.harness.sink.store import Event, Span
from cristack.harness.snapshots import diff, normalise


def stdout_span(*events: tuple[str, dict]) -> list[Span]:
    return [Span(trace_id="a" * 32, span_id="b" * 16, parent_span_id="", name="stdout", kind="INTERNAL",
                 start=1, end=2, service="conmonrs", scope="conmonrs", attributes={}, status="UNSET",
                 status_message="", resource={"service.name": "conmonrs"},
                 events=[Event(name, i, attrs) for i, (name, attrs) in enumerate(events)])]


READ, WROTE = ("Read 6 bytes", {"level": "TRACE"}), ("Wrote log line of length 3", {"level": "TRACE"})
DONE = ("Nothing more to read", {"level": "DEBUG"})


def test_one_read_or_two_is_the_same_snapshot() -> None:
    one_read = normalise(stdout_span(READ, WROTE, WROTE, DONE))
    two_reads = normalise(stdout_span(READ, WROTE, READ, WROTE, DONE))
    assert diff(one_read, two_reads, "golden", "run") == []


def test_a_missing_or_new_event_still_differs() -> None:
    golden = normalise(stdout_span(READ, WROTE, DONE))
    assert any("+  event 'Exited <n>'" in line for line in diff(golden, normalise(
        stdout_span(READ, WROTE, DONE, ("Exited 0", {}))), "golden", "run"))
    assert any("-  event 'Nothing more to read'" in line for line in diff(golden, normalise(
        stdout_span(READ, WROTE)), "golden", "run"))
