"""The kubelet's pod events, written where a user (``cristack up``) can follow them.

The real kubelet records Kubernetes Events (core/v1 ``Event``) through its event recorder; the
reasons are the constants of pkg/kubelet/events/event.go (Pulling, Pulled, Created, Started,
Killing, BackOff, Failed, FailedValidation, ...). A standalone kubelet has no API server to send
them to, so it only logs them. fake-kubelet writes them instead, one JSON ``Event`` object per
line, to the file its mock-only ``--events-file`` flag names: a file (rather than an endpoint of
the kubelet's HTTP API) because it holds every event from the start even when its reader comes
late, needs no polling protocol, and stays behind with the other logs for a look afterwards.

Each line is a core/v1 Event (``type``, ``reason``, ``message``, ``involvedObject``, ``source``,
``eventTime``) whose annotations carry what the real one has no field for: the trace id of the
kubelet span that was current when it was recorded (``cristack.io/trace-id``: the syncPod that
started the container, the syncTerminatingPod that stopped it), and a few facts a terminal line
shows (exit code, back-off). Where the real kubelet records no event (a static pod added or
removed, a container that exited), we use reasons of our own, listed in ``CRISTACK_REASONS``.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from opentelemetry import trace

log = logging.getLogger(__name__)

# An event's message (note) may have at most 1,024 characters: pkg/apis/core/validation/events.go NoteLengthLimit.
NOTE_LENGTH_LIMIT = 1024

# pkg/kubelet/events/event.go (Kubernetes v1.36): the reasons fake-kubelet records.
PULLING, PULLED, CREATED, STARTED = "Pulling", "Pulled", "Created", "Started"
KILLING, BACKOFF, FAILED, FAILED_VALIDATION = "Killing", "BackOff", "Failed", "FailedValidation"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
# Ours, where the real kubelet only logs ("SyncLoop ADD"/"SyncLoop REMOVE", PLEG's ContainerDied).
ADDED, REMOVED, EXITED = "PodAdded", "PodRemoved", "ContainerExited"
CRISTACK_REASONS = (ADDED, REMOVED, EXITED)

TRACE_ID = "cristack.io/trace-id"
EXIT_CODE = "cristack.io/exit-code"
BACK_OFF = "cristack.io/back-off"
SOURCE = "cristack.io/manifest"


class EventRecorder:
    """Appends events to ``path`` (nothing when it is None); safe to call from any task."""

    def __init__(self, path: Path | None, node_name: str) -> None:
        self.node_name = node_name
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        if path is not None:
            self._file = path.open("a", buffering=1)

    def record(self, obj: dict[str, str], kind: str, reason: str, message: str,
               annotations: dict[str, str] | None = None) -> None:
        """One event about ``obj`` (an involvedObject: kind, namespace, name, uid, fieldPath)."""
        if self._file is None:
            return
        if len(message) > NOTE_LENGTH_LIMIT:
            # An image name or a runtime's error can be megabytes; the API refuses a longer note.
            message = message[:NOTE_LENGTH_LIMIT - 3] + "..."
        ctx = trace.get_current_span().get_span_context()
        notes = dict(annotations or {})
        if ctx.is_valid:
            notes[TRACE_ID] = trace.format_trace_id(ctx.trace_id)
        now = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        event: dict[str, Any] = {
            "kind": "Event", "apiVersion": "v1", "metadata": {"annotations": notes},
            "involvedObject": obj, "reason": reason, "message": message, "type": kind,
            "source": {"component": "kubelet", "host": self.node_name}, "eventTime": now,
            "reportingComponent": "kubelet", "reportingInstance": self.node_name,
        }
        line = json.dumps(event, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                self._file.write(line)
            except OSError as err:  # a full disk must not stop the pods
                log.warning("cannot write pod events: %s", err)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def pod_ref(namespace: str, name: str, uid: str, container: str = "", *, init: bool = False) -> dict[str, str]:
    """The involvedObject the kubelet gives a pod's (or one container's) events."""
    ref = {"kind": "Pod", "namespace": namespace, "name": name, "uid": uid, "apiVersion": "v1"}
    if container:
        ref["fieldPath"] = f"spec.{'initContainers' if init else 'containers'}{{{container}}}"
    return ref
