"""The crashloop scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder)."""

from __future__ import annotations

from cristack.config.durations import parse_duration
from cristack.harness.scenarios import Finding, Run, sync_rows


def backoff_kept(wait: float, delay: float) -> bool:
    """Whether a restart ``wait`` seconds after the exit kept a back-off of ``delay``: never sooner (the kubelet
    does not restart inside the window), and late only by the time it takes to notice and sync (a relist period
    and a loaded machine's scheduling)."""
    return delay - 0.05 <= wait <= delay + 0.3 + 0.1 * delay


def find(runs: list[Run]) -> Finding:
    """The kubelet restarts at once after the first crash, then waits the back-off counted from each exit:
    base, 2×base, 4×base, ... (doubling exactly, as flowcontrol.Backoff does)."""
    r = runs[0]
    timeline = sync_rows(r, "crasher")
    starts = [row for row in timeline if "StartContainer" in row.calls]
    loops = [row for row in timeline if row.error == "CrashLoopBackOff"]
    # A container's exit: the end of conmonrs's wait_for_exit_code in the trace that started it.
    exits = []
    for row in starts:
        waited = [s for s in r.store.trace(row.trace_id) if s.name == "wait_for_exit_code"]
        exits.append(max(s.end for s in waited) / 1e9 if waited else None)
    waits = [b.start / 1e9 - e for e, b in zip(exits, starts[1:], strict=False) if e is not None]
    gaps = [(b.start - a.start) / 1e9 for a, b in zip(starts, starts[1:], strict=False)]
    base = parse_duration(r.scenario.backoff_base)
    doubling = len(waits) >= 3 and all(backoff_kept(w, base * 2 ** i) for i, w in enumerate(waits[1:]))
    ok = len(starts) >= 3 and doubling and bool(loops) and all(not row.calls for row in loops)
    return Finding(ok, f"{len(starts)} starts, each in its own syncPod trace, "
                       f"{', '.join(f'{g:.1f}s' for g in gaps)} apart; waits from an exit to the next start "
                       f"{', '.join(f'{w:.1f}s' for w in waits)} (first restart at once, then doubling); "
                       f"{len(loops)} CrashLoopBackOff sync(s), no CRI calls in them",
                   [row.trace_id for row in starts[1:2] + loops[:1]], {"gaps": gaps, "waits": waits,
                                                                      "starts": len(starts)}, timeline)
