"""The slow-storage scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder)."""

from __future__ import annotations

from cristack.harness.scenarios import Finding, Run, children, ids


def find(runs: list[Run]) -> Finding:
    r = runs[0]
    traces = r.sync_traces("hello", "create")
    # CRI-O creates the container's storage inside createSandboxContainer (no span of its own).
    slow = [s for t in traces for s in t if s.name.endswith("(*Server).createSandboxContainer")]
    if not slow:
        return Finding(False, "no createSandboxContainer span found")
    trace = next(t for t in traces if slow[0] in t)
    parent = next(s for s in trace if s.span_id == slow[0].parent_span_id)
    siblings = children(trace, parent)
    longest = max(siblings, key=lambda s: s.duration_ns)
    ok = longest is slow[0] and slow[0].duration_ns >= 0.6e9
    return Finding(ok, f"{slow[0].name.rsplit('/', 1)[-1]} took {slow[0].duration_ns / 1e6:.0f} ms, the longest "
                       f"child of {parent.name.rsplit('/', 1)[-1]}", ids([trace]))
