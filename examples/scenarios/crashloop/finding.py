"""The crashloop scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder).

The kubelet restarts at once after the first crash, then waits a back-off counted from each exit: base, 2×base,
4×base, ... (doubling exactly, as flowcontrol.Backoff does). That is checked as order and causality, never as a
wall-clock window (how late a restart comes is the machine's business):

- never early: each restart's CreateContainer starts no sooner than the exit plus its back-off (the kubelet asks
  "still backing off?" before it creates);
- never a window too long: every sync the kubelet refused (CrashLoopBackOff) began inside the window, so the
  first sync after the window restarted the container;
- the delay the kubelet says in each refusal is that window's, doubling from the base.

The exit is the time the runtime records. CRI-O's is the exit file's mtime: it lies between the start and the end
of conmonrs's ``write_exit_path``, less up to one tick of the kernel's coarse clock that stamps files (TICK_NS).
containerd's is the shim's TaskExit ``exited_at``: it lies inside the container's ``task.Wait`` span, the root span
containerd's CRI opens (``task.id`` = the container's id) before it starts the task and ends once the wait has
answered the exit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cristack.config.durations import parse_duration
from cristack.harness.scenarios import Finding, Run, SyncRow, sync_rows
from cristack.harness.sink.store import Span

TICK_NS = 10_000_000  # a file's mtime comes from the coarse clock: up to a tick (HZ >= 100) before the write


@dataclass
class Window:
    """One crash and what followed until the next start (or the run's end)."""

    delay: float  # the back-off the kubelet keeps after this crash (0: it restarts at its next sync)
    exited: tuple[int, int]  # ns: the exit file was stamped in [first, second] (first less TICK_NS)
    refused: list[SyncRow] = field(default_factory=list)  # its CrashLoopBackOff syncs
    restarted_at: int | None = None  # ns: the next start's CreateContainer (None: the run ended first)

    @property
    def wait(self) -> float | None:
        """Seconds from the exit to the restart's CreateContainer (for people: the checks use the bounds)."""
        return None if self.restarted_at is None else (self.restarted_at - self.exited[0]) / 1e9


def said_delay(row: SyncRow) -> float | None:
    """The back-off a refused sync's message states ("back-off 800ms restarting ..." or "back-off 0.8s ...")."""
    m = re.search(r"back-off (\S+)", row.message)
    try:
        return parse_duration(m.group(1)) if m else None
    except ValueError:
        return None


def _exit_stamp(r: Run, trace: list[Span]) -> tuple[int, int] | None:
    """When the container started in ``trace`` exited, as bounds (see above); None when the run ended first."""
    if r.runtime == "containerd":
        started = {str(s.attributes.get("container.id")) for s in trace if s.service == "containerd"
                   and s.kind == "SERVER" and s.name.endswith("/StartContainer")}
        waits = [s for s in r.spans() if s.name == "task.Wait" and not s.parent_span_id
                 and s.attributes.get("task.id") in started]
        return (min(s.start for s in waits), max(s.end for s in waits)) if waits else None
    writes = [s for s in trace if s.name == "write_exit_path"]
    return (min(s.start for s in writes) - TICK_NS, max(s.end for s in writes)) if writes else None


def _created_at(trace: list[Span]) -> int | None:
    return min((s.start for s in trace if s.service == "kubelet" and s.kind == "CLIENT"
                and s.name.endswith("/CreateContainer")), default=None)


def windows(r: Run, base: float) -> list[Window]:
    """Every crash of the crasher container with its back-off, refusals and restart, in order."""
    timeline = sync_rows(r, "crasher")
    starts = [row for row in timeline if "StartContainer" in row.calls]
    out = []
    for i, row in enumerate(starts):
        stamp = _exit_stamp(r, r.store.trace(row.trace_id))
        if stamp is None:  # the run ended before this container's exit
            break
        nxt = starts[i + 1] if i + 1 < len(starts) else None
        w = Window(0.0 if i == 0 else base * 2 ** (i - 1), stamp)
        w.refused = [s for s in timeline if s.error == "CrashLoopBackOff" and row.start < s.start
                     and (nxt is None or s.start < nxt.start)]
        w.restarted_at = _created_at(r.store.trace(nxt.trace_id)) if nxt is not None else None
        out.append(w)
    return out


def problems(ws: list[Window]) -> list[str]:
    """What in ``ws`` breaks the kubelet's back-off, one line each (none: it kept it)."""
    out = []
    for i, w in enumerate(ws):
        at = f"crash {i + 1} (back-off {w.delay:g}s)"
        if w.restarted_at is not None and w.restarted_at < w.exited[0] + w.delay * 1e9:
            out.append(f"{at}: restarted {(w.exited[0] + w.delay * 1e9 - w.restarted_at) / 1e9:.3f}s early")
        late = [row for row in w.refused if row.start >= w.exited[1] + w.delay * 1e9]
        if late:
            out.append(f"{at}: {len(late)} sync(s) refused after the window had closed")
        wrong = sorted({str(said_delay(row)) for row in w.refused if said_delay(row) != w.delay})
        if wrong:
            out.append(f"{at}: refusals said back-off {', '.join(wrong)}")
        if any(row.calls for row in w.refused):
            out.append(f"{at}: a refused sync made CRI calls")
    return out


def find(runs: list[Run]) -> Finding:
    r = runs[0]
    timeline = sync_rows(r, "crasher")
    starts = [row for row in timeline if "StartContainer" in row.calls]
    loops = [row for row in timeline if row.error == "CrashLoopBackOff"]
    ws = windows(r, parse_duration(r.scenario.backoff_base))
    wrong = problems(ws)
    gaps = [(b.start - a.start) / 1e9 for a, b in zip(starts, starts[1:], strict=False)]
    waits = [w.wait for w in ws if w.wait is not None]
    ok = len(starts) >= 4 and bool(loops) and not wrong
    return Finding(ok, f"{len(starts)} starts, each in its own syncPod trace, "
                       f"{', '.join(f'{g:.1f}s' for g in gaps)} apart; waits from an exit to the next start "
                       f"{', '.join(f'{w:.1f}s' for w in waits)} (first restart at once, then doubling); "
                       f"{len(loops)} CrashLoopBackOff sync(s), no CRI calls in them"
                       + (f"; but {'; '.join(wrong)}" if wrong else ""),
                   [row.trace_id for row in starts[1:2] + loops[:1]],
                   {"gaps": gaps, "waits": waits, "starts": len(starts), "windows": ws, "problems": wrong},
                   timeline)
