"""GetContainerEvents (CRI-O's server/container_events.go): the evented PLEG's stream. The events themselves
are made by ``ServerBase.generate_event`` (server.go generateCRIEvent)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase


class ContainerEventsCall(ServerBase):
    async def get_container_events(self, request: pb.GetEventsRequest) -> AsyncIterator[pb.ContainerEventResponse]:
        # The stream stays open until the client leaves; with pod events off it ends at once, empty.
        async for event in self.events.stream():
            yield event
