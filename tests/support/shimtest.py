"""What the shim tests share: an OCI bundle on disk, and a stand-in for containerd's ttrpc side (its
Events service, with otelttrpc SERVER spans, collecting what shims forward)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import empty_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cristack.otel.ttrpctrace import server_interceptor
from cristack.wire.pb.containerd.events import task_pb2 as events
from cristack.wire.pb.containerd.services.ttrpc.events.v1 import events_pb2
from cristack.wire.pb.containerd.types import event_pb2
from cristack.wire.ttrpc import MD, CallContext, Method, Server

SANDBOX_ANNOTATION = "io.kubernetes.cri.sandbox-id"


def write_bundle(root: Path, cid: str, args: list[str], sandbox: str = "", env: list[str] | None = None) -> Path:
    bundle = root / cid
    bundle.mkdir(parents=True, exist_ok=True)
    annotations = {SANDBOX_ANNOTATION: sandbox} if sandbox else {}
    (bundle / "config.json").write_text(json.dumps({
        "ociVersion": "1.2.0", "process": {"args": args, "env": env or ["PATH=/usr/bin:/bin"], "cwd": "/"},
        "annotations": annotations}))
    return bundle


def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p, exporter


@dataclass
class EventsSink:
    """containerd's ttrpc Events service: every forwarded envelope with the metadata it came with."""

    envelopes: list[tuple[event_pb2.Envelope, MD]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def server(self, tracer_provider: TracerProvider | None = None) -> Server:
        server = Server(interceptor=server_interceptor(tracer_provider) if tracer_provider else None)

        async def forward(ctx: CallContext, req: events_pb2.ForwardRequest) -> empty_pb2.Empty:
            async with self.changed:
                self.envelopes.append((req.envelope, ctx.metadata))
                self.changed.notify_all()
            return empty_pb2.Empty()

        server.register("containerd.services.events.ttrpc.v1.Events",
                        {"Forward": Method(events_pb2.ForwardRequest, forward)})
        return server

    async def wait_for(self, topic: str, count: int = 1, timeout: float = 30.0) -> None:
        async def enough() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: len(self.topics(topic)) >= count)

        await asyncio.wait_for(enough(), timeout)

    def topics(self, only: str = "") -> list[str]:
        return [e.topic for e, _ in self.envelopes if not only or e.topic == only]

    def decoded(self) -> list[tuple[str, object]]:
        """(topic, event) pairs, each event decoded by the type its Any names."""
        types = {m.DESCRIPTOR.full_name: m for m in (events.TaskCreate, events.TaskStart, events.TaskExit,
                                                      events.TaskDelete, events.TaskExecAdded, events.TaskExecStarted)}
        out = []
        for env, _ in self.envelopes:
            msg = types[env.event.type_url]()
            msg.ParseFromString(env.event.value)
            out.append((env.topic, msg))
        return out
