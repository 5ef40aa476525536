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


def shim_trace(sandbox: str) -> list[Span]:
    """containerd's CLIENT span and the shim's SERVER span under it; the shim's service is named after the pod's
    sandbox, so two pods' shims have two names."""
    ids = ("c" * 16, "d" * 16)
    client = Span("a" * 32, ids[0], "", "containerd.task.v3.Task/Start", "CLIENT", 1, 4, "containerd",
                  "github.com/containerd/otelttrpc", {}, [], "UNSET", "", {"service.name": "containerd"})
    shim = f"containerd-shim-{sandbox}"
    server = Span("a" * 32, ids[1], ids[0], "containerd.task.v3.Task/Start", "SERVER", 2, 3, shim,
                  "github.com/containerd/otelttrpc", {}, [], "UNSET", "", {"service.name": shim})
    return [client, server]


def test_two_pods_shims_are_the_same_shape() -> None:
    one, other = normalise(shim_trace("1a" * 32)), normalise(shim_trace("2b" * 32))
    assert diff(one, other, "golden", "run") == []
    assert {s["service"] for s in one["spans"]} == {"containerd", "containerd-shim-<id>"}
    different = shim_trace("1a" * 32)
    different[1].name = "containerd.task.v3.Task/Create"
    assert diff(one, normalise(different), "golden", "run"), "a different call still differs"


def test_a_pods_ip_is_not_its_shape() -> None:
    """The pod IP containerd's CNI span carries comes from the node's pod CIDR in the order pods come: two runs of
    the same pod differ there by nature."""
    a, b = shim_trace("1a" * 32), shim_trace("2b" * 32)
    a[0].attributes["sandbox.ip"], b[0].attributes["sandbox.ip"] = "10.244.3.2", "10.0.28.8"
    assert diff(normalise(a), normalise(b), "golden", "run") == []
    b[0].attributes.pop("sandbox.ip")
    assert diff(normalise(a), normalise(b), "golden", "run"), "an IP missing still differs"
