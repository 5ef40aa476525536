"""Probes (pkg/kubelet/prober/worker.go): one prober task per running container with a readiness or liveness
probe, ExecSync every period outside any sync (each probe a trace of its own, as in the kubelet); readiness is
reported, liveness failures stop the container for the restart policy to act on."""

from __future__ import annotations

import asyncio
import logging

import grpc
from opentelemetry import context as otel_context

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_kubelet.cri import ContainerState, operation
from fake_kubelet.manifests import Container
from fake_kubelet.pod_state import PodState

log = logging.getLogger(__name__)


class Prober(PodState):
    def manage_probes(self, c: ContainerState) -> None:
        """A prober for ``c`` while it runs (if its spec has probes), none once it does not."""
        spec = self.spec(c.name)
        if spec is None or (spec.readiness_probe is None and spec.liveness_probe is None):
            return
        if c.state == pb.CONTAINER_RUNNING and c.id not in self.probes:
            self.probes[c.id] = asyncio.create_task(self._probe(spec, c.id), name=f"probe-{spec.name}")
        elif c.state != pb.CONTAINER_RUNNING and c.id in self.probes:
            self.probes.pop(c.id).cancel()

    def stop_probes(self) -> None:
        for task in self.probes.values():
            task.cancel()
        self.probes.clear()

    async def _probe(self, spec: Container, container_id: str) -> None:
        otel_context.attach(otel_context.Context())
        operation.set("prober")
        view = self.view.containers[spec.name]
        probes = [(kind, p) for kind, p in (("readiness", spec.readiness_probe), ("liveness", spec.liveness_probe))
                  if p is not None]
        await asyncio.sleep(min(p.initial_delay for _, p in probes))
        failures = {kind: 0 for kind, _ in probes}
        while True:
            for kind, probe in probes:
                try:
                    resp = await self.cri.call("ExecSync", pb.ExecSyncRequest(
                        container_id=container_id, cmd=list(probe.command), timeout=probe.timeout),
                        timeout=probe.timeout + 5)
                    ok = resp.exit_code == 0
                except grpc.aio.AioRpcError as err:
                    if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                        return  # the container is gone; PLEG takes it from here
                    ok = False
                failures[kind] = 0 if ok else failures[kind] + 1
                if kind == "readiness" and view.ready != ok and (ok or failures[kind] >= probe.failure_threshold):
                    view.ready = ok
                    log.info("pod %s: container %s %s", self.pod.full_name, spec.name, "ready" if ok else "not ready")
                    self.on_view(self.view)
                if kind == "liveness" and failures[kind] >= probe.failure_threshold:
                    log.warning("pod %s: container %s failed its liveness probe %d times; restarting it",
                                self.pod.full_name, spec.name, failures[kind])
                    await self.cri.call("StopContainer", pb.StopContainerRequest(
                        container_id=container_id, timeout=self.pod.termination_grace_period))
                    return
            await asyncio.sleep(min(p.period for _, p in probes))
