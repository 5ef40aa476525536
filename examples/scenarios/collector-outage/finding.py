"""The collector-outage scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder)."""

from __future__ import annotations

from cristack.harness.scenarios import Finding, Run, ids


def find(runs: list[Run]) -> Finding:
    r = runs[0]
    traced = {p: bool(r.sync_traces(p, "create")) for p in ("before", "during", "after")}
    ran = {p: f"{p}/main" in r.pod_logs for p in traced}
    warnings = sum(text.count("cannot export spans") for text in r.logs.values())
    ok = traced == {"before": True, "during": False, "after": True} and all(ran.values())
    return Finding(ok, f"traced: {', '.join(p for p, t in traced.items() if t)}; lost: "
                       f"{', '.join(p for p, t in traced.items() if not t) or 'none'}; all three pods ran; "
                       f"{warnings} warning line(s) in all", ids(r.sync_traces("before", "create")[:1] +
                                                                  r.sync_traces("after", "create")[:1]))
