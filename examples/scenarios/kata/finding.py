"""The kata scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder)."""

from __future__ import annotations

from cristack.harness.scenarios import Finding, Run, ids
from cristack.harness.sink.store import Span


def find(runs: list[Run]) -> Finding:
    """Kata's traces are the shim's own: the pod's syncPod trace ends at CRI-O; the shim's rootSpan trace (service
    kata) holds the VM's work, with the agent's RPC spans under the shim's ttrpc spans; the agent's root-span is a
    trace of its own."""
    r = runs[0]
    syncs = r.sync_traces("vm-pod", "create")
    if not syncs:
        return Finding(False, "no syncPod trace for the kata pod")
    in_pod_trace = [s for s in syncs[0] if s.service in ("kata", "kata-agent")]
    shim = [t for t in r.traces() if any(s.service == "kata" and s.name == "rootSpan" and not s.parent_span_id
                                         for s in t)]
    agent_rpcs: list[Span] = []
    for t in shim:
        by_id = {s.span_id: s for s in t}
        agent_rpcs += [s for s in t if s.service == "kata-agent" and s.name == "create_container"
                       and by_id.get(s.parent_span_id) is not None
                       and by_id[s.parent_span_id].name == "ttrpc.CreateContainer"]
    agent_roots = [t for t in r.traces() if any(s.service == "kata-agent" and s.name == "root-span"
                                                and not s.parent_span_id for s in t)]
    ok = not in_pod_trace and bool(shim) and bool(agent_rpcs) and bool(agent_roots)
    return Finding(ok, f"the pod's syncPod trace has {len(in_pod_trace)} Kata spans: the shim (service kata) traces "
                       f"on its own, {len(shim)} rootSpan trace(s) holding the VM's work, with "
                       f"{len(agent_rpcs)} agent create_container span(s) under its ttrpc.CreateContainer; "
                       f"the agent's root-span is a trace of its own ({len(agent_roots)})",
                   ids(syncs[:1] + shim[:1] + agent_roots[:1]))
