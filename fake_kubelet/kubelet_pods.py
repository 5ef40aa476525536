"""The pod's status as the kubelet reports it (pkg/kubelet/kubelet_pods.go: convertToAPIContainerStatuses,
getPhase): each container's waiting/running/terminated state from the runtime's, and the pod's phase."""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_kubelet import events
from fake_kubelet.cri import ContainerState
from fake_kubelet.pod_state import BACKOFF_REASONS, FAILED, RUNNING, SUCCEEDED, ContainerView, PodState

log = logging.getLogger(__name__)


class PodStatusView(PodState):
    def observe(self, c: ContainerState) -> None:
        """The runtime's state of container ``c`` into the pod's view (an exit recorded once as an event)."""
        view = self.view.containers.get(c.name)
        if view is None:
            return
        self.manage_probes(c)
        view.container_id, view.restart_count = c.id, c.attempt
        if c.state == pb.CONTAINER_RUNNING:
            new = ("running", "", None)
        elif c.state == pb.CONTAINER_EXITED:
            new = ("terminated", c.reason or ("Completed" if c.exit_code == 0 else "Error"), c.exit_code)
        else:
            new = ("waiting", "ContainerCreating", None)
        spec = self.spec(c.name)
        if c.state != pb.CONTAINER_RUNNING:
            view.ready = False
        elif spec is not None and spec.readiness_probe is None:
            view.ready = True  # no readiness probe: ready while it runs
        if (view.state, view.reason, view.exit_code) != new:
            view.state, view.reason, view.exit_code = new
            view.message = c.message
            if view.state == "terminated" and self.first((events.EXITED, c.id)):
                log.info("pod %s: container %s terminated: %s (exit code %d)", self.pod.full_name, c.name,
                         view.reason, c.exit_code)
                self.event("Normal" if c.exit_code == 0 else "Warning", events.EXITED,
                           f"Container {c.name} exited with code {c.exit_code} ({view.reason})", c.name,
                           **{events.EXIT_CODE: str(c.exit_code)})

    def waiting(self, view: ContainerView, reason: str, message: str) -> None:
        # syncPod fails with this error, as the kubelet's does: the span shows it.
        span = trace.get_current_span()
        span.add_event("exception", {"exception.type": reason, "exception.message": message})
        span.set_status(Status(StatusCode.ERROR, f'failed to "StartContainer" for "{view.name}" with {reason}'))
        if (view.state, view.reason) != ("waiting", reason):
            log.warning("pod %s: container %s waiting: %s: %s", self.pod.full_name, view.name, reason, message)
        view.state, view.reason, view.message, view.exit_code = "waiting", reason, message, None

    def set_phase(self, phase: str, why: str = "") -> None:
        if phase != self.view.phase:
            log.info("pod %s: phase %s -> %s%s", self.pod.full_name, self.view.phase, phase,
                     f" ({why})" if why else "")
            self.view.phase = phase

    def update_phase(self) -> None:
        """getPhase, from the regular containers' views."""
        pod = self.pod
        views = [self.view.containers[c.name] for c in pod.containers]
        if any(v.state == "running" for v in views):
            self.set_phase(RUNNING)
        elif pod.restart_policy != "Always" and all(v.state == "terminated" for v in views):
            if all(not v.exit_code for v in views):
                self.set_phase(SUCCEEDED)
            elif pod.restart_policy == "Never":
                self.set_phase(FAILED)
        # Otherwise the phase stands: Pending until something ran, Running while restarting.

    def finished_reason(self) -> str | None:
        """For --runonce: None while the pod is still working towards an outcome, '' when it
        succeeded (or, with restartPolicy Always, runs), else why it failed."""
        if self.view.phase == SUCCEEDED:
            return ""
        if self.view.phase == FAILED:
            bad = [f"{v.name}: {v.reason} (exit code {v.exit_code})" for v in self.view.containers.values()
                   if v.state == "terminated" and v.exit_code]
            return "; ".join(bad) or "failed"
        if self.view.sandbox_error:
            return self.view.sandbox_error
        for v in self.view.containers.values():
            if v.state == "waiting" and v.reason in (*BACKOFF_REASONS, "ErrImagePull", "ErrImageNeverPull",
                                                      "CreateContainerError", "RunContainerError"):
                return f"{v.name}: {v.reason}: {v.message}"
        if self.pod.restart_policy == "Always" and all(
                self.view.containers[c.name].state == "running" for c in self.pod.containers):
            return ""
        return None
