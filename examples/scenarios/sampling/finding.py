"""The sampling scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder)."""

from __future__ import annotations

from cristack.harness.scenarios import Finding, Run, ids


def find(runs: list[Run]) -> Finding:
    r = runs[0]
    pods = r.scenario.pods
    sampled = r.sync_traces(update_type="create")
    crio_roots = [s for s in r.spans() if s.service == "crio" and not s.parent_span_id]
    crio_outside = [s for s in r.spans() if s.service == "crio" and s.trace_id not in
                    {t[0].trace_id for t in r.traces() if any(x.service == "kubelet" for x in t)}]
    share = len(sampled) / pods
    ok = 0 < len(sampled) <= pods * 0.3 and not crio_roots and not crio_outside
    return Finding(ok, f"{len(sampled)} of {pods} pod starts traced ({share:.0%}, rate 10%); every crio span sits "
                       "under a sampled kubelet span; crio started no trace of its own", ids(sampled[:3]),
                   {"sampled": len(sampled), "pods": pods})
