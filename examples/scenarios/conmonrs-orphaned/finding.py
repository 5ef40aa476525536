"""The conmonrs-orphaned scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder)."""

from __future__ import annotations

from cristack.harness.scenarios import Finding, Run, ids


def find(runs: list[Run]) -> Finding:
    """The monitor's spans are not in the pod's trace: they share one trace of their own whose
    roots name a parent that was never exported (conmon-rs v0.8.0's backend span)."""
    r = runs[0]
    syncs = r.sync_traces("hello", "create")
    spans = r.spans()
    exported = {s.span_id for s in spans}
    rpcs = [s for s in spans if s.service == "conmonrs" and s.name in ("create_container", "version")]
    in_sync = [s for t in syncs for s in t if s.service == "conmonrs"]
    clients = [s for t in syncs for s in t if s.name == "conmonrs-client: CreateContainer"]
    childless = [c for c in clients if not any(s.parent_span_id == c.span_id for s in spans)]
    monitor_traces = {s.trace_id for s in rpcs}
    parents = {s.parent_span_id for s in rpcs}
    ok = (bool(syncs) and bool(rpcs) and not in_sync and len(childless) == len(clients) > 0
          and len(monitor_traces) == 1 and len(parents) == 1 and not parents & exported)
    return Finding(ok, f"{len(clients)} conmonrs-client: CreateContainer span(s) without children in the pod's "
                       f"trace; {len(rpcs)} conmonrs RPC span(s) in {len(monitor_traces)} trace(s) of their own, "
                       f"under {len(parents)} parent id(s) never exported",
                   ids(syncs[:1]) + sorted(monitor_traces),
                   {"monitor_traces": len(monitor_traces), "missing_parents": sorted(parents - exported)})
