"""The multi-container scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder)."""

from __future__ import annotations

from cristack.harness.scenarios import Finding, Run, ids, sync_rows
from cristack.harness.sink.store import Span

# Where a probe's command runs: conmon-rs's span on CRI-O, the pod's shim's SERVER span on containerd.
EXEC = {"crio": "exec_sync_container", "containerd": "the shim's containerd.task.v3.Task/Exec"}


def find(runs: list[Run]) -> Finding:
    r = runs[0]

    def is_exec(s: Span) -> bool:
        if r.runtime == "containerd":
            return s.name == "containerd.task.v3.Task/Exec" and s.kind == "SERVER" and s.service.startswith(
                "containerd-shim-")
        return s.name == "exec_sync_container"

    syncs = r.sync_traces("web")
    creates = [sum(1 for x in t if x.service == "kubelet" and x.name.endswith("CreateContainer")) for t in syncs]
    first = syncs[0] if syncs else []
    init_first = sum(1 for s in first if s.name.endswith("CreateContainer") and s.service == "kubelet") == 1
    later = [t for t in syncs[1:] if sum(1 for s in t if s.service == "kubelet" and s.name.endswith(
        "CreateContainer")) == 2]
    probes = [t for t in r.traces() if any(
        s.name == "runtime.v1.RuntimeService/ExecSync" and s.service == "kubelet" and not s.parent_span_id
        for s in t) and any(is_exec(s) for s in t)]
    ok = init_first and bool(later) and bool(probes)
    return Finding(ok, f"first syncPod starts the init container only; a later one starts both containers; "
                       f"{len(probes)} readiness probe(s), each an ExecSync root trace down to {EXEC[r.runtime]}",
                   ids(syncs[:1] + later[:1] + probes[:1]), {"creates": creates}, sync_rows(r, "web"))
