"""``--runonce --result-file FILE``: what became of each static pod, for a program to read (``cristack demo``
does) instead of the kubelet's log: its phase, why it failed (the reason and message a user would see in
``kubectl describe``), and the trace of each sync the kubelet ran for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cristack.files import write_atomic
from fake_kubelet.pod_workers import PodWorker


def pod_result(worker: PodWorker, outcome: str | None) -> dict[str, Any]:
    """One pod's entry: ``outcome`` is "" when it succeeded (or runs), the failure text, or None (interrupted)."""
    view = worker.view
    reason = message = ""
    if outcome:
        for c in view.containers.values():
            if c.state == "terminated" and c.exit_code:
                reason, message = c.reason or "Error", f"container {c.name} exited with code {c.exit_code}"
                break
            if c.state == "waiting" and c.reason not in ("ContainerCreating", "PodInitializing"):
                reason, message = c.reason, f"container {c.name}: {c.message}".rstrip(": ")
                break
        else:
            reason, message = ("SandboxFailed" if view.sandbox_error else "Failed"), outcome
    elif outcome is None:
        reason, message = "Interrupted", "the kubelet was stopped before the pod finished"
    return {"pod": worker.pod.full_name, "uid": worker.pod.uid, "phase": view.phase,
            "ok": outcome == "", "reason": reason, "message": message,
            "syncs": [{"function": name, "traceId": trace_id} for name, trace_id in view.traces]}


def write_result(path: Path, workers: list[PodWorker], outcome: dict[str, str], exit_code: int) -> None:
    """Writes the result file whole (never half-written: a reader sees the old file or the new one)."""
    doc = {"exitCode": exit_code, "pods": [pod_result(w, outcome.get(w.pod.uid)) for w in workers]}
    write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())
