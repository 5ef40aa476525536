"""The hello scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder)."""

from __future__ import annotations

from cristack.harness import expectations
from cristack.harness.scenarios import Finding, Run, ids


def find(runs: list[Run]) -> Finding:
    r = runs[0]
    traces = r.sync_traces("hello", "create")
    ok = bool(traces) and all(ok for _, ok in expectations.check(traces[0], r.runtime_type)) and \
        "hi" in r.pod_logs.get("hello/hello", [])
    n = len(traces[0]) if traces else 0
    return Finding(ok, f"one syncPod trace of {n} spans across kubelet, crio and conmonrs; the container said hi",
                   ids(traces[:1]))
