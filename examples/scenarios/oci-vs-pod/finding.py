"""The oci-vs-pod scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder)."""

from __future__ import annotations

from cristack.harness.scenarios import Finding, Run, ids

OCI_IMPL = "github.com/cri-o/cri-o/internal/oci.(*runtimeOCI)."


def find(runs: list[Run]) -> Finding:
    shapes = {}
    shown: list[str] = []
    for r in runs:
        t = r.sync_traces("hello", "create")
        shapes[r.runtime_type] = {(s.service, s.name) for s in t[0]} if t else set()
        shown += ids(t[:1])
    conmon = {x for x in shapes.get("pod", set()) ^ shapes.get("oci", set())}
    # With pod, conmon-rs does creation and exec; with oci, CRI-O's runtimeOCI (runc) does.
    only_conmon = all(svc == "conmonrs" or name.startswith(("conmonrs-client", OCI_IMPL)) for svc, name in conmon)
    ok = bool(conmon) and only_conmon and not {x for x in shapes.get("oci", set()) if x[0] == "conmonrs"}
    return Finding(ok, f"the traces differ in {len(conmon)} span kinds, all conmonrs, conmonrs-client or "
                       "runtimeOCI; oci has no conmonrs span", shown, {"difference": sorted(conmon)})
