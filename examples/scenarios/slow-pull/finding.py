"""The slow-pull scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder)."""

from __future__ import annotations

from cristack.harness.scenarios import Finding, Run, ids


def find(runs: list[Run]) -> Finding:
    r = runs[0]
    pulls = [s for s in r.spans() if s.name.endswith("(*Server).pullImage")]
    if not pulls:
        return Finding(False, "no pullImage span")
    trace = r.store.trace(pulls[0].trace_id)
    layers = [s for s in trace if s.parent_span_id == pulls[0].span_id and "copyLayer" in s.name]
    biggest = max(layers, key=lambda s: s.attributes.get("layer.size", 0)) if layers else None
    longest = max(layers, key=lambda s: s.duration_ns) if layers else None
    # How many layers were copied at once: the most spans open at any layer's start.
    overlap = max((sum(1 for o in layers if o.start <= s.start < o.end) for s in layers), default=0)
    ok = len(layers) == 12 and biggest is longest and pulls[0].duration_ns > 1e9
    return Finding(ok, f"pullImage {pulls[0].duration_ns / 1e9:.1f}s over {len(layers)} copyLayer spans, at most "
                       f"{overlap} at a time; the "
                       f"biggest layer ({(biggest.attributes.get('layer.size', 0) if biggest else 0) / 2**20:.0f} MiB)"
                       " took longest", ids([trace]))
