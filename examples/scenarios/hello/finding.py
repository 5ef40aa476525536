"""The hello scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder).

On CRI-O the start crosses kubelet, crio and conmonrs; on containerd it crosses kubelet, containerd and the pod's
shim (service ``containerd-shim-<sandbox id>``, one per pod), whose SERVER spans are children of containerd's
otelttrpc CLIENT spans."""

from __future__ import annotations

from cristack.harness import expectations
from cristack.harness.scenarios import Finding, Run, ids

ACROSS = {"crio": "kubelet, crio and conmonrs", "containerd": "kubelet, containerd and the pod's shim"}


def find(runs: list[Run]) -> Finding:
    r = runs[0]
    traces = r.sync_traces("hello", "create")
    ok = bool(traces) and all(ok for _, ok in expectations.check(traces[0], r.shape)) and \
        "hi" in r.pod_logs.get("hello/hello", [])
    if r.runtime == "containerd" and traces:
        shims = {s.service for s in traces[0] if expectations.role(s.service) == expectations.SHIM}
        ok = ok and len(shims) == 1  # one shim for the pod, all its tasks
    n = len(traces[0]) if traces else 0
    return Finding(ok, f"one syncPod trace of {n} spans across {ACROSS[r.runtime]}; the container said hi",
                   ids(traces[:1]))
