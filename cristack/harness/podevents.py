"""fake-kubelet's pod events (its ``--events-file``, see fake_kubelet/events.py) as one short
terminal line each, for ``cristack up``: when, which pod, what happened, and the trace it
happened in, so that the line leads straight to the trace in the sink or the live view."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cristack.harness.render.escape import visible

TRACE_ID_WIDTH = 32


@dataclass
class PodEvent:
    """The fields of one core/v1 Event line that a terminal line shows."""

    reason: str
    message: str
    kind: str  # Normal | Warning
    namespace: str
    pod: str
    container: str
    time: str  # HH:MM:SS, local time
    trace_id: str
    notes: dict[str, str]
    uid: str = ""  # the pod's
    at: float | None = None  # eventTime, seconds since the epoch (None when it does not parse)


def parse(line: str) -> PodEvent | None:
    """One line of the events file; None for a line that is not an event (a partial write, garbage)."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("kind") != "Event":
        return None
    obj = doc.get("involvedObject") or {}
    field_path = str(obj.get("fieldPath", ""))
    container = field_path.partition("{")[2].rstrip("}") if "{" in field_path else ""
    notes = (doc.get("metadata") or {}).get("annotations") or {}
    try:
        when = datetime.fromisoformat(str(doc.get("eventTime", "")).replace("Z", "+00:00")).astimezone()
        clock, at = when.strftime("%H:%M:%S"), when.timestamp()
    except ValueError:
        clock, at = "--:--:--", None
    return PodEvent(reason=str(doc.get("reason", "")), message=str(doc.get("message", "")),
                    kind=str(doc.get("type", "")), namespace=str(obj.get("namespace", "")),
                    pod=str(obj.get("name", "")), container=container, time=clock,
                    trace_id=str(notes.get("cristack.io/trace-id", "")), notes=notes, uid=str(obj.get("uid", "")),
                    at=at)


# Routine steps of a start: "running" (Started) says it all; a failed pull says "failed".
QUIET = {"Created", "Pulled", "Pulling"}


def describe(ev: PodEvent) -> str | None:
    """What happened to the pod (or its container), in a few words (None: not worth a line)."""
    if ev.reason in QUIET:
        return None
    manifest = Path(ev.notes.get("cristack.io/manifest", "")).name
    texts = {
        "PodAdded": f"added ({manifest})" if manifest else "added",
        "PodRemoved": f"removed ({manifest} gone)" if manifest else "removed",
        "Started": "running",
        "ContainerExited": f"exited with code {ev.notes.get('cristack.io/exit-code', '?')}",
        "Killing": "stopping",
        "FailedValidation": f"manifest rejected: {ev.message}",
    }
    if ev.reason == "BackOff":
        what = "pull back-off" if "pulling image" in ev.message else "back-off"  # before a restart
        return f"{what} {ev.notes.get('cristack.io/back-off', '')}".rstrip()
    if ev.reason == "Failed":
        delay = ev.notes.get("cristack.io/back-off", "")
        return f"failed{f' (back-off {delay})' if delay else ''}: {ev.message.removeprefix('Error: ')}"
    return texts.get(ev.reason, f"{ev.reason}: {ev.message}")


def format_line(ev: PodEvent, width: int = 80) -> str | None:
    """``HH:MM:SS pod/container what  trace-id``, the trace ids in one column. Nothing is cut: a reason too
    long for ``width`` (a failed pull's error) runs on, and the terminal wraps it."""
    text = describe(ev)
    if text is None:
        return None
    text = visible(text)  # names and messages from a manifest: shown, never obeyed by the terminal
    # pod/container, as `kubectl logs` would name them; the namespace only when it is not the default one.
    who = visible("/".join(x for x in (ev.namespace if ev.namespace != "default" else "", ev.pod, ev.container)
                           if x))
    head = f"{ev.time} {who + ' ' if who else ''}{text}"
    if not ev.trace_id:
        return head
    # Trace ids line up in one column where the words allow (the column an 80-column terminal puts them in).
    return f"{head.ljust(min(width, 80) - TRACE_ID_WIDTH - 2)}  {ev.trace_id}"


def follow(path: Path, emit: Callable[[PodEvent], None], stop: threading.Event, period: float = 0.1) -> None:
    """Calls ``emit`` for every event appended to ``path`` (which may not exist yet) until ``stop`` is set;
    a line still being written is read once it is whole."""
    offset, pending = 0, b""
    while True:
        last = stop.is_set()  # one more read after the stop: the events written just before it count
        try:
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        offset += len(data)
        pending += data
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            ev = parse(raw.decode(errors="replace"))
            if ev is not None:
                emit(ev)
        if last:
            return
        stop.wait(period)
